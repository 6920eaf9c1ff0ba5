"""The lifecycle every pipeline stage shares.

A stage is constructed from its config section, then called once per frame with
``process(frame, timestamp_ms, *inputs)``: the frame and its timestamp first, then the outputs of
the stages before it that it reads, in pipeline order (segmentation's matte, depth's disparity,
focus); it returns its own outputs, read-only buffers it reuses on the next call (see
:class:`realtime.pipeline.Pipeline` for the whole flow). ``prefetch(frame)`` may start work on
the frame early (in the stage's own thread, while the stages before it run). ``reset()`` forgets
temporal state (new stream, scene cut); ``close()`` releases models and threads and may be called
any number of times; ``with Stage(cfg) as s:`` closes on exit.
"""

from __future__ import annotations

from typing import Any

from realtime.core.errors import ClosedError
from realtime.core.frames import check_timestamp


class Closable:
    """Idempotent ``close()`` that calls ``_release()`` exactly once; a context manager.

    Shared by stages, sources and sinks: whatever holds a model, a device, a file or a thread.
    """

    _closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._release()

    def _release(self) -> None:
        """Release resources (models, devices, files, threads). Called once, by :meth:`close`."""

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Stage(Closable):
    """Base class: the shared lifecycle plus timestamp bookkeeping."""

    name = "stage"

    def __init__(self) -> None:
        self._closed = False
        self._last_ts: int | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all temporal state; the next frame is treated as the first of a stream."""
        self._last_ts = None

    def prefetch(self, frame: Any) -> bool:
        """Start this stage's work on ``frame`` ahead of :meth:`process` (which then collects it),
        in the stage's own thread, so it overlaps the stages before it; True if started. Stages
        whose work needs their inputs start nothing."""
        return False

    def configure(self, config: Any) -> None:
        """Take a new config section while running (live controls, preset reload), keeping
        temporal state. Stages that derive values from their config override this."""
        self.config = config

    # -- helpers for subclasses -------------------------------------------------------------
    def _begin(self, timestamp_ms: Any) -> int:
        """Check the stage is open and the timestamp increases; returns it as ``int``."""
        if self._closed:
            raise ClosedError(f"{self.name} stage was used after close()")
        ts = check_timestamp(timestamp_ms, self._last_ts, self.name)
        self._last_ts = ts
        return ts
