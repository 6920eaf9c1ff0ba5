"""A live first start: frames flow at once through the quick portrait while the kernels compile.

On a cold Numba cache the lens cannot render for a minute or so (its kernels compile in child
processes, :class:`realtime.app.kernels.CompileJob`). A camera user should not stare at nothing
meanwhile: :class:`LensWhenReady` stands in for the pipeline in the frame loop, answering each
frame with :class:`realtime.app.quick.QuickPortrait` (no Numba) and saying so in the status
line ("compiling kernels, once: 12 s (simple blur until then)"). A background thread waits for
the children, loads the kernels from the cache and warms the pipeline up at the source's size;
from the next frame on the lens answers, on the same camera and the same loop.

While that thread warms the pipeline up it holds :attr:`LensWhenReady.warming`: the loop does
not let the live settings (session, hooks, the idle gate) touch the pipeline then.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import numpy as np

from realtime.app.kernels import CompileJob
from realtime.pipeline import Pipeline, Result
from realtime.app.quick import QuickPortrait

log = logging.getLogger(__name__)


class LensWhenReady:
    """The frame loop's processor during a first start: the quick portrait until the pipeline
    (``pipeline``, built, not warmed up) is ready, then the pipeline itself.

    ``say`` gets one line when the lens takes over. Close it before the pipeline: it stops the
    compile (children killed; what they finished stays cached) and joins its thread.
    """

    def __init__(self, pipeline: Pipeline, job: CompileJob, size: tuple[int, int],
                 say: Callable[[str], None] = lambda text: None) -> None:
        self.pipeline = pipeline
        self.warming = threading.Lock()
        self._job = job
        self._size = size
        self._say = say
        self._quick: QuickPortrait | None = QuickPortrait(pipeline.preset)
        self._quick.warmup(size)  # its model loaded before the loop times a frame
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._switched = False
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._prepare, name="portrait-cam-first-start", daemon=True)
        self._thread.start()

    # what the frame loop reads of a pipeline
    @property
    def preset(self):
        return self.pipeline.preset

    @property
    def current_stage(self) -> str | None:
        return self.pipeline.current_stage if self._switched else "simple blur"

    @property
    def lens(self) -> bool:
        """True once the pipeline answers the frames."""
        return self._switched

    @property
    def note(self) -> str:
        """The status line's word on the first start ('' once the lens is on)."""
        if self._switched:
            return ""
        if self._job.done() and not self._job.stopped:
            return "kernels compiled, loading them (simple blur until then)"
        return f"compiling kernels, once: {self._job.elapsed:.0f} s (simple blur until then)"

    def _prepare(self) -> None:
        try:
            while not self._job.wait(0.2):
                if self._closing.is_set():
                    return
            if self._closing.is_set() or self._job.stopped:
                return
            with self.warming:
                if self._closing.is_set():
                    return
                # loads the kernels the children cached (compiles here what a failed child left)
                self.pipeline.warmup(self._size)
        except BaseException as e:  # handed to the frame loop with the next frame
            self._error = e
        self._ready.set()

    def process(self, frame: np.ndarray, timestamp_ms: int) -> Result:
        if not self._switched and self._ready.is_set():
            if self._error is not None:
                raise self._error
            self._switched = True
            quick, self._quick = self._quick, None
            quick.close()
            self._say(f"kernels compiled in {self._job.elapsed:.0f} s and cached: the lens takes over")
        if self._switched:
            return self.pipeline.process(frame, timestamp_ms)
        self._quick.preset = self.pipeline.preset  # the live settings (effect on/off, blur size) apply
        return self._quick.process(frame, timestamp_ms)

    def pace(self, fps: float | None) -> bool:
        return self.pipeline.pace(fps)  # the quick portrait has no kernels to pace

    def hold_output(self, frame: np.ndarray) -> bool:
        return self._switched and self.pipeline.hold_output(frame)

    def reset(self) -> None:
        if self._switched:
            self.pipeline.reset()
        elif self._quick is not None:
            self._quick.reset()  # the pipeline's warm-up ends with its own reset

    def close(self) -> None:
        self._closing.set()
        self._job.close()
        self._thread.join()
        if self._quick is not None:
            self._quick.close()
            self._quick = None

    def __enter__(self) -> LensWhenReady:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
