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

import numba
import numpy as np

from realtime.core.config import Preset, load_preset
from realtime.stages.depth import DepthEstimator, DepthModel
from realtime.stages.focus import FocusTracker
from realtime.core.errors import StageError
from realtime.core.frames import check_frame, check_plane, readonly
from realtime.stages.render import Renderer
from realtime.stages.segmentation import SegmentationBackend, Segmenter
from realtime.core.stage import Stage
from realtime.core.threads import set_process_policy
from realtime.stages.temporal import Stabiliser

STAGES = ("segmentation", "depth", "temporal", "focus", "render")


def _checked(a: np.ndarray, shape: tuple[int, int], stage: str, what: str) -> np.ndarray:
    """A stage output fit for the next stage, or :class:`StageError` (fail closed upstream)."""
    try:
        check_plane(a, shape, what)
    except (TypeError, ValueError) as e:
        raise StageError(f"{stage} stage returned a bad {what}: {e}") from e
    # the sum is NaN/inf if any element is; no temporary array, ~0.2 ms at 720p
    if not np.isfinite(a.sum(dtype=np.float32)):
        raise StageError(f"{stage} stage returned a {what} with NaN or infinite values")
    return a


class _CheckedSegmentation:
    """An injected segmentation backend whose outputs are checked (shape, dtype) before use:
    a misbehaving plug-in must fail loudly, not be resized into a plausible matte."""

    def __init__(self, inner: SegmentationBackend) -> None:
        self.inner = inner
        self.input_size = inner.input_size

    def segment(self, rgb: np.ndarray, timestamp_ms: int) -> np.ndarray:
        conf = self.inner.segment(rgb, timestamp_ms)
        w, h = self.input_size
        if not isinstance(conf, np.ndarray) or conf.shape not in ((h, w), (h, w, 1)):
            got = conf.shape if isinstance(conf, np.ndarray) else type(conf).__name__
            raise StageError(f"segmentation backend returned {got}, expected confidence of shape {(h, w)}")
        if conf.dtype != np.float32:
            raise StageError(f"segmentation backend returned dtype {conf.dtype}, expected float32")
        return conf

    def close(self) -> None:
        self.inner.close()


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
                 depth_backend: DepthModel | None = None) -> None:
        super().__init__()
        set_process_policy()
        if preset is None or isinstance(preset, str):
            preset = load_preset(preset or "portrait")
        self.preset = preset
        self._backends = {
            "segmentation": _CheckedSegmentation(segmentation_backend) if segmentation_backend else None,
            "depth": depth_backend,
        }
        self._stages: dict[str, Stage] = {}
        try:
            for name in STAGES:
                self._stages[name] = self._build(name, preset)
        except BaseException:
            self.close()
            raise

    # Keys whose change needs the stage rebuilt (a model reloaded); others apply in place.
    _REBUILD_KEYS = {"segmentation": ("model", "model_path"), "depth": ("enabled", "backend", "model_path")}
    _SECTION = {"segmentation": "segmentation", "depth": "depth", "temporal": "temporal", "focus": "focus",
                "render": "render"}

    def _build(self, name: str, preset: Preset) -> Stage:
        if name == "segmentation":
            return Segmenter(preset.segmentation, backend=self._backends["segmentation"])
        if name == "depth":
            return DepthEstimator(preset.depth, backend=self._backends["depth"])
        if name == "temporal":
            return Stabiliser(preset.temporal)
        if name == "focus":
            return FocusTracker(preset.focus)
        return Renderer(preset.render)

    @property
    def segmenter(self) -> Segmenter:
        return self._stages["segmentation"]

    @property
    def depth(self) -> DepthEstimator:
        return self._stages["depth"]

    @property
    def temporal(self) -> Stabiliser:
        return self._stages["temporal"]

    @property
    def focus(self) -> FocusTracker:
        return self._stages["focus"]

    @property
    def renderer(self) -> Renderer:
        return self._stages["render"]

    def apply(self, preset: Preset) -> list[str]:
        """Switch to ``preset`` while running (live controls, preset reload).

        Sections whose model choice changed are rebuilt (the new stage is built before the old
        one is closed, so a failure leaves the pipeline as it was); other changed sections are
        applied in place and keep their temporal state. Returns the changed sections.
        """
        changed = []
        for name in STAGES:
            old_cfg, new_cfg = getattr(self.preset, self._SECTION[name]), getattr(preset, self._SECTION[name])
            if old_cfg == new_cfg:
                continue
            changed.append(name)
            keys = self._REBUILD_KEYS.get(name, ())
            if any(getattr(old_cfg, k) != getattr(new_cfg, k) for k in keys):
                fresh = self._build(name, preset)
                old, self._stages[name] = self._stages[name], fresh
                old.close()
            else:
                self._stages[name].configure(new_cfg)
        self.preset = preset
        return changed

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
        for s in self._stages.values():
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

    current_stage: str | None = None  # the stage running now (for stall messages)
    single_thread_while_overlapped = True

    def process(self, frame: np.ndarray, timestamp_ms: int) -> Result:
        """Run every stage on one frame. A stage that returns garbage (NaN, wrong shape or
        dtype) raises :class:`StageError` naming it, before the garbage reaches temporal state."""
        ts_in = self._begin(timestamp_ms)
        check_frame(frame)
        ts = self._stage_clock(ts_in)
        shape = frame.shape[:2]
        t: dict[str, float] = {}
        st = self._stages

        t0 = time.perf_counter()
        # the depth model starts on this frame in its own thread (second core) while we segment
        overlapped = st["depth"].prefetch(frame)
        self.current_stage = "segmentation"
        if overlapped and self.single_thread_while_overlapped:
            # one core is the model's now: a 2-thread kernel would wait on it for its other half
            prev = numba.get_num_threads()
            numba.set_num_threads(1)
            try:
                matte = st["segmentation"].process(frame, ts)
            finally:
                numba.set_num_threads(prev)
        else:
            matte = st["segmentation"].process(frame, ts)
        matte = _checked(matte, shape, "segmentation", "matte")
        t1 = time.perf_counter()
        self.current_stage = "depth"
        disparity = _checked(st["depth"].process(frame, ts, matte), shape, "depth", "disparity")
        t2 = time.perf_counter()
        self.current_stage = "temporal"
        matte, disparity = st["temporal"].process(frame, ts, matte, disparity)
        t3 = time.perf_counter()
        self.current_stage = "focus"
        focus = float(st["focus"].process(frame, ts, matte, disparity))
        if not np.isfinite(focus):
            raise StageError(f"focus stage returned {focus}")
        t4 = time.perf_counter()
        self.current_stage = "render"
        out, coc = st["render"].process(frame, ts, matte, disparity, focus)
        t5 = time.perf_counter()
        self.current_stage = None
        for name, a, b in zip(STAGES, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5)):
            t[name] = (b - a) * 1000.0
        return Result(readonly(out), readonly(matte), readonly(disparity), focus, readonly(coc), ts_in, t)

    def _release(self) -> None:
        for s in reversed(list(self._stages.values())):
            s.close()
