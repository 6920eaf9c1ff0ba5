"""What every output is: the frame it gets (:class:`OutputFrame`) and the lifecycle
(:class:`Sink`: opened with the output size, then every frame, then finished or discarded)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.core.stage import Closable


@dataclass(frozen=True)
class OutputFrame:
    frame: np.ndarray               # (H, W, 3) uint8 BGR: what viewers see
    matte: np.ndarray | None        # (H, W) float32 in [0, 1]; None when no matte is available
    disparity: np.ndarray | None    # (H, W) float32 in [0, 1]
    name: str                       # file stem for frame-named outputs
    index: int
    captured_at: float              # perf_counter at capture, for latency
    result: object = None           # the pipeline Result when processing succeeded (debug views)
    input: np.ndarray | None = None  # the raw camera frame: local debug views only, never sent out


class Sink(Closable):
    kind = "sink"
    wants_matte = False
    live_view = False   # shown to people live (virtual camera, preview): gets "camera unavailable" cards

    def __init__(self) -> None:
        self.quit_requested = False   # set by a preview window's q/Esc
        self.written = 0
        self.failed: str | None = None  # why the loop stopped this sink; a failed sink is never finished

    def open(self, width: int, height: int, fps: float) -> None:
        """Prepare for frames of this size; raises :class:`SinkError` with the fix on failure."""

    def write(self, out: OutputFrame) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """The stream ended normally: make file outputs final."""

    def readers_present(self) -> bool | None:
        """Anyone reading now? ``None``: cannot tell, or always consumed (:mod:`realtime.io.readers`)."""
        return None

    def hold(self, frame: np.ndarray, fps: float) -> None:
        """Nobody reads: show ``frame`` at ``fps`` until the next :meth:`write` (a keep-alive)."""

    # close() (from Closable) releases everything; an unfinished file output is discarded.

    def describe(self) -> str:
        return self.kind


class NullSink(Sink):
    kind = "null"

    def write(self, out: OutputFrame) -> None:
        self.written += 1
