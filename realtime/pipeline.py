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

import concurrent.futures
import contextlib
import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

import shaders
from shaders.checks import all_finite
from realtime.core.config import Preset, load_preset
from realtime.core.errors import StageError
from realtime.core.frames import check_frame, check_plane, readonly
from realtime.core.stage import Stage
from realtime.core.threads import PacedThreads, one_numba_thread, set_process_policy
from realtime.stages.depth import DepthEstimator, DepthModel
from realtime.stages.focus import FocusTracker
from realtime.stages.render import Renderer
from realtime.stages.segmentation import SegmentationBackend, Segmenter
from realtime.stages.temporal import Stabiliser

STAGES = ("segmentation", "depth", "temporal", "focus", "render")


def all_optimisations_off(preset: Preset) -> Preset:
    """``preset`` with every cost optimisation off (work reused or skipped between frames): the
    reference the benchmark and the tests compare the optimised output with."""
    return preset.replace({"depth": {"still_interval": 1}, "render": {"reuse_tiles": False}})


def _checked(a: np.ndarray, shape: tuple[int, int], stage: str, what: str, scratch: np.ndarray) -> np.ndarray:
    """A stage output fit for the next stage, or :class:`StageError` (fail closed upstream)."""
    try:
        check_plane(a, shape, what)
    except (TypeError, ValueError) as e:
        raise StageError(f"{stage} stage returned a bad {what}: {e}") from e
    # one pass over the bits, no temporary array
    if not all_finite(a, scratch):
        raise StageError(f"{stage} stage returned a {what} with NaN or infinite values")
    return a


@dataclass(frozen=True)
class Result:
    frame: np.ndarray          # (H, W, 3) uint8 BGR, the rendered output
    matte: np.ndarray          # (H, W) float32 in [0, 1]
    disparity: np.ndarray      # (H, W) float32 in [0, 1], larger = nearer
    focus: float               # focus disparity used for this frame
    coc: np.ndarray            # (H, W) float32 signed circle of confusion in pixels
    timestamp_ms: int
    timings_ms: dict[str, float] = field(default_factory=dict)  # per stage, this frame
    # threads the kernels ran on (a paced live stream may use one while the frame is early;
    # 0 = every thread, not paced): a one-thread frame's time says nothing of what the machine can do
    kernel_threads: int = 0


class Pipeline(Stage):
    """All stages in order, built from one preset.

    The data flow, one frame (every stage's ``process`` takes the frame and its timestamp, then
    the outputs of the stages before it that it reads; see :mod:`realtime.core.stage`)::

        segmenter.process(frame, ts)                              -> matte
        depth.process(frame, ts, matte)                           -> disparity, depth.matte
                                                                     (faded behind the person)
        temporal.process(frame, ts, depth.matte, disparity)       -> matte, disparity (stabilised)
        focus.process(frame, ts, matte, disparity)                -> focus
        renderer.process(frame, ts, matte, disparity, focus)      -> frame, coc
    """

    name = "pipeline"

    # (preset section, attribute) of each stage, in pipeline order
    _SECTIONS = (("segmentation", "segmenter"), ("depth", "depth"), ("temporal", "temporal"), ("focus", "focus"),
                 ("render", "renderer"))
    # Keys whose change needs the stage rebuilt (a model reloaded); others apply in place.
    _REBUILD_KEYS = {"segmentation": ("model", "model_path"), "depth": ("enabled", "backend", "model_path")}

    def __init__(self, preset: Preset | str | None = None, *,
                 segmentation_backend: SegmentationBackend | None = None,
                 depth_backend: DepthModel | None = None) -> None:
        super().__init__()
        set_process_policy()
        if preset is None or isinstance(preset, str):
            preset = load_preset(preset or "portrait")
        self.preset = preset
        self._segmentation_backend = segmentation_backend  # validated by the stage, like its own
        self._depth_backend = depth_backend
        with contextlib.ExitStack() as built:  # a stage that fails to build closes those before it
            self.segmenter: Segmenter = built.enter_context(self._build("segmentation", preset))
            self.depth: DepthEstimator = built.enter_context(self._build("depth", preset))
            self.temporal: Stabiliser = built.enter_context(self._build("temporal", preset))
            self.focus: FocusTracker = built.enter_context(self._build("focus", preset))
            self.renderer: Renderer = built.enter_context(self._build("render", preset))
            built.pop_all()
        self.current_stage: str | None = None  # the stage running now (for stall messages)
        self.paced: PacedThreads | None = None  # a live source's thread policy (see pace())
        self._clock_offset: int | None = None
        self._clock_last = -1
        self._finite = np.zeros(1, np.uint32)  # scratch of the output checks

    def _build(self, section: str, preset: Preset) -> Stage:
        if section == "segmentation":
            return Segmenter(preset.segmentation, backend=self._segmentation_backend)
        if section == "depth":
            return DepthEstimator(preset.depth, backend=self._depth_backend)
        if section == "temporal":
            return Stabiliser(preset.temporal)
        if section == "focus":
            return FocusTracker(preset.focus)
        return Renderer(preset.render)

    def stages(self) -> tuple[Stage, ...]:
        """The stages in pipeline order."""
        return self.segmenter, self.depth, self.temporal, self.focus, self.renderer

    def apply(self, preset: Preset) -> list[str]:
        """Switch to ``preset`` while running (live controls, preset reload).

        Sections whose model choice changed are rebuilt (the new stage is built before the old
        one is closed, so a failure leaves the pipeline as it was); other changed sections are
        applied in place and keep their temporal state. Returns the changed sections.
        """
        changed = []
        for section, attr in self._SECTIONS:
            old_cfg, new_cfg = getattr(self.preset, section), getattr(preset, section)
            if old_cfg == new_cfg:
                continue
            changed.append(section)
            keys = self._REBUILD_KEYS.get(section, ())
            if any(getattr(old_cfg, k) != getattr(new_cfg, k) for k in keys):
                fresh = self._build(section, preset)
                old = getattr(self, attr)
                setattr(self, attr, fresh)
                old.close()
            else:
                getattr(self, attr).configure(new_cfg)
        self.preset = preset
        if self.paced is not None:  # a live control may change it
            self.paced.share = preset.capture.one_thread_share
        return changed

    # Stages that hold a model (and its threads), by (section, attribute): closed while nobody watches.
    _MODEL_STAGES = (("segmentation", "segmenter"), ("depth", "depth"), ("focus", "focus"))
    suspended = False

    def _injected(self, section: str) -> bool:
        return (section == "segmentation" and self._segmentation_backend is not None) or \
            (section == "depth" and self._depth_backend is not None)

    def suspend(self) -> None:
        """Stop the models (idle: nobody reads the output): their stages are closed, memory and
        threads freed; :meth:`resume` (or the next :meth:`process`) builds them again. Stages
        given an injected backend are left as they are."""
        if self.suspended:
            return
        for section, attr in self._MODEL_STAGES:
            if not self._injected(section):
                getattr(self, attr).close()
        self.suspended = True

    def resume(self) -> None:
        """Build the stopped model stages again from the current preset; the temporal state
        starts afresh (the scene moved on while nobody watched)."""
        if not self.suspended:
            return
        todo = [(section, attr) for section, attr in self._MODEL_STAGES if not self._injected(section)]
        # the models load at once (their libraries release the GIL while loading): a reader waits
        with concurrent.futures.ThreadPoolExecutor(max(1, len(todo)), "portrait-cam-resume") as ex:
            futures = [(attr, ex.submit(self._build, section, self.preset)) for section, attr in todo]
        errors = [f.exception() for _, f in futures if f.exception() is not None]
        if errors:
            for _, f in futures:
                if f.exception() is None:
                    f.result().close()
            raise errors[0]
        for attr, f in futures:
            setattr(self, attr, f.result())
        self.suspended = False
        self.reset()

    def pace(self, fps: float | None) -> bool:
        """Frames come from a live source at ``fps``: from now on the kernels run on one thread
        while that leaves the frame well inside its interval (``capture.one_thread_share``; see
        :class:`~realtime.core.threads.PacedThreads`). ``None``: every thread (file jobs,
        benchmarks of the peak rate). The output is the same either way. True when this call
        started pacing; False when the pipeline was already paced at this rate (what it learnt
        is kept) or is now unpaced."""
        interval = 1000.0 / fps if fps and fps > 0 else None
        if self.paced is not None and interval is not None and abs(self.paced.interval_ms - interval) < 1e-6:
            return False
        if self.paced is not None:
            self.paced.close()
            self.paced = None
        if interval is None:
            return False
        self.paced = PacedThreads(interval, self.preset.capture.one_thread_share)
        return True

    def warmup(self, size: tuple[int, int] | None = None) -> None:
        """Compile kernels and, given a frame size, run every stage on a synthetic frame of that
        size (buffers allocated, models initialised) so the first camera frame does not stall."""
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
        for s in self.stages():
            s.reset()
        # Models in VIDEO mode (MediaPipe) demand increasing timestamps for their whole life:
        # after a reset the stages run on a clock that continues from where it was.
        self._clock_offset = None

    def _stage_clock(self, ts: int) -> int:
        if self._clock_offset is None:
            self._clock_offset = self._clock_last + 1 - ts
        t = ts + self._clock_offset
        self._clock_last = t
        return t

    def process(self, frame: np.ndarray, timestamp_ms: int) -> Result:
        """Run every stage on one frame. A stage that returns garbage (NaN, wrong shape or
        dtype) raises :class:`StageError` naming it, before the garbage reaches temporal state."""
        if self.suspended:
            self.resume()
        ts_in = self._begin(timestamp_ms)
        check_frame(frame)
        ts = self._stage_clock(ts_in)
        paced = self.paced
        if paced is None:
            return self._process(frame, ts, ts_in)
        t0 = time.perf_counter()
        threads = paced.threads
        with paced.kernels():
            result = self._process(frame, ts, ts_in)
        paced.observe((time.perf_counter() - t0) * 1000.0)
        return dataclasses.replace(result, kernel_threads=threads)

    def _process(self, frame: np.ndarray, ts: int, ts_in: int) -> Result:
        shape = frame.shape[:2]
        t0 = time.perf_counter()
        # stages that can start on this frame in their own thread do so now, to run on the second
        # core while we segment (today the depth model, with depth.overlap)
        overlapped = [s.prefetch(frame) for s in self.stages()[1:]]
        self.current_stage = "segmentation"
        if any(overlapped):
            with one_numba_thread():  # the other core is busy: see realtime.core.threads
                matte = self.segmenter.process(frame, ts)
        else:
            matte = self.segmenter.process(frame, ts)
        matte = _checked(matte, shape, "segmentation", "matte", self._finite)
        t1 = time.perf_counter()
        self.current_stage = "depth"
        disparity = _checked(self.depth.process(frame, ts, matte), shape, "depth", "disparity",
                             self._finite)
        matte = self.depth.matte  # faded where the depth puts an unsure matte behind the person
        t2 = time.perf_counter()
        self.current_stage = "temporal"
        matte, disparity = self.temporal.process(frame, ts, matte, disparity)
        t3 = time.perf_counter()
        self.current_stage = "focus"
        focus = float(self.focus.process(frame, ts, matte, disparity))
        if not np.isfinite(focus):
            raise StageError(f"focus stage returned {focus}")
        t4 = time.perf_counter()
        self.current_stage = "render"
        out, coc = self.renderer.process(frame, ts, matte, disparity, focus)
        t5 = time.perf_counter()
        self.current_stage = None
        t = {name: (b - a) * 1000.0 for name, a, b in zip(STAGES, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5))}
        return Result(readonly(out), readonly(matte), readonly(disparity), focus, readonly(coc), ts_in, t)

    def hold_output(self, frame: np.ndarray) -> bool:
        """Keep ``frame`` (a :class:`Result`'s ``frame``) valid until the next ``hold_output``:
        later calls render into another buffer (:meth:`Renderer.hold`). False if it is not the
        renderer's (then it may be overwritten by the next call, as usual)."""
        return self.renderer.hold(frame)

    def _release(self) -> None:
        self.pace(None)
        for s in reversed(self.stages()):
            s.close()
