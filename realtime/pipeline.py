"""The per-frame pipeline: segmentation -> depth -> temporal -> focus -> render.

::

    from realtime import Pipeline, load_preset
    with Pipeline(load_preset("portrait")) as pipe:
        r = pipe.process(frame_bgr, timestamp_ms)
        r.frame, r.matte, r.disparity, r.focus

Arrays in a :class:`Result` are read-only views of buffers the pipeline reuses on the next
call; copy them to keep them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .config import Preset, load_preset
from .depth import DepthBackend, DepthEstimator
from .focus import FocusTracker
from .frames import check_frame, readonly
from .render import Renderer
from .segmentation import SegmentationBackend, Segmenter
from .stage import Stage
from .temporal import Stabiliser

STAGES = ("segmentation", "depth", "temporal", "focus", "render")


@dataclass(frozen=True)
class Result:
    frame: np.ndarray          # (H, W, 3) uint8 BGR, the rendered output
    matte: np.ndarray          # (H, W) float32 in [0, 1]
    disparity: np.ndarray      # (H, W) float32 in [0, 1], larger = nearer
    focus: float               # focus disparity used for this frame
    coc: np.ndarray            # (H, W) float32 signed circle of confusion in pixels
    timestamp_ms: int
    timings_ms: dict[str, float] = field(default_factory=dict)  # per stage, this frame


class Pipeline(Stage):
    """All stages in order, built from one preset."""

    name = "pipeline"

    def __init__(self, preset: Preset | str | None = None, *,
                 segmentation_backend: SegmentationBackend | None = None,
                 depth_backend: DepthBackend | None = None) -> None:
        super().__init__()
        if preset is None or isinstance(preset, str):
            preset = load_preset(preset or "portrait")
        self.preset = preset
        self._stages: list[Stage] = []
        try:
            self.segmenter = self._add(Segmenter(preset.segmentation, backend=segmentation_backend))
            self.depth = self._add(DepthEstimator(preset.depth, backend=depth_backend))
            self.temporal = self._add(Stabiliser(preset.temporal))
            self.focus = self._add(FocusTracker(preset.focus))
            self.renderer = self._add(Renderer(preset.render))
        except BaseException:
            self.close()
            raise

    def _add(self, stage: Stage) -> Stage:
        self._stages.append(stage)
        return stage

    def warmup(self, size: tuple[int, int] | None = None) -> None:
        """Compile kernels and, given a frame size, run every stage on a synthetic frame of that
        size (buffers allocated, models initialised) so the first camera frame does not stall."""
        import shaders

        shaders.warmup()
        if size is None:
            return
        w, h = size
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:h, 0:w]
        base = ((xx * 255) // max(1, w - 1)).astype(np.uint8)
        frame = np.dstack([base, ((yy * 255) // max(1, h - 1)).astype(np.uint8), base[::-1, ::-1]])
        frame = np.ascontiguousarray(np.clip(frame + rng.integers(0, 8, frame.shape), 0, 255).astype(np.uint8))
        for i in range(2):
            self.process(frame, 1 + i)
        self.reset()

    def reset(self) -> None:
        """Forget temporal state (new stream). Timestamps may start again from any value."""
        super().reset()
        for s in self._stages:
            s.reset()
        # Models in VIDEO mode (MediaPipe) demand increasing timestamps for their whole life:
        # after a reset the stages run on a clock that continues from where it was.
        self._clock_offset = None

    _clock_offset: int | None = None
    _clock_last: int = -1

    def _stage_clock(self, ts: int) -> int:
        if self._clock_offset is None:
            self._clock_offset = self._clock_last + 1 - ts
        t = ts + self._clock_offset
        self._clock_last = t
        return t

    def process(self, frame: np.ndarray, timestamp_ms: int) -> Result:
        ts_in = self._begin(timestamp_ms)
        check_frame(frame)
        ts = self._stage_clock(ts_in)
        t = {}
        t0 = time.perf_counter()
        matte = self.segmenter.process(frame, ts)
        t1 = time.perf_counter()
        disparity = self.depth.process(frame, ts, matte)
        t2 = time.perf_counter()
        matte, disparity = self.temporal.process(frame, ts, matte, disparity)
        t3 = time.perf_counter()
        focus = self.focus.process(frame, ts, matte, disparity)
        t4 = time.perf_counter()
        out, coc = self.renderer.process(frame, ts, matte, disparity, focus)
        t5 = time.perf_counter()
        for name, a, b in zip(STAGES, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5)):
            t[name] = (b - a) * 1000.0
        return Result(readonly(out), readonly(matte), readonly(disparity), float(focus), readonly(coc), ts_in, t)

    def _release(self) -> None:
        for s in reversed(self._stages):
            s.close()
