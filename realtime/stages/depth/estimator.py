"""Monocular depth: TCMonoDepth small, turned into a stable disparity fused with the person matte.

Per model result (by default from a worker thread fed every frame, at most one run behind;
or in the caller's thread, every frame or every n-th):

1. the frame is box-averaged into the model's 320x192 input (letterboxed by default: the whole
   frame is seen, nothing is squashed);
2. the model's relative inverse depth is smoothed per pixel where the image is still and taken
   as is where it moved (noise does not flicker, motion does not lag);
3. a robust range (percentiles of the *background*, so a person walking in does not re-scale
   the scene) moves only when it leaves a dead band; it maps model units to disparity.

Per frame (always, with the current matte):

4. the disparity is split into two low-resolution layers, read where the model saw the person
   (the matte of the frame it ran on): the background, filled under the person from the
   background around it, and the person, filled from the person's interior (no background
   values leak in at the edges), moved to the person's plane (its own median, but at least
   ``person_margin`` nearer than the background prior: people in a webcam are in front of
   most of the room) and bounded to ``person_relief`` around it;
5. both layers are upsampled bilinearly and blended by the current full-resolution matte in
   one pass, so the disparity edge is exactly the matte's edge.

Without the model (``blur-only`` preset, or the model cannot be loaded, said once in the log)
the person gets disparity 1 and the background a constant: a uniform lens blur.
"""

from __future__ import annotations

import logging
import weakref

import cv2
import numpy as np

from realtime.core.buffers import PerSize
from realtime.core.config import DepthConfig
from realtime.core.errors import ModelError, StageError
from realtime.core.frames import check_frame, check_matte, readonly
from realtime.core.stage import Stage
from realtime.stages.filters import OneEuroFilter, RangeStabiliser
from shaders import depth as k

from .backends import DepthModel, model_spins, model_threads, open_backend
from .behind import BehindFade
from .fitting import SAMPLE_STRIDE, Grid, Slot, compute_fit, content
from .runner import AsyncInference

log = logging.getLogger(__name__)

FALLBACK_PERSON_DISPARITY = 1.0  # no-depth mode: the person is the nearest thing, at the focus plane
_MIN_SAMPLE_FRACTION = 0.05      # fewer background samples than this: use the whole frame
# the still check compares every this many model rows: a background change big enough to matter
# spans many rows, and half of them leave the share rule thousands of cells to count at 720p
STILL_ROW_STEP = 2


class DepthEstimator(Stage):
    """Frame + matte in, disparity ``(H, W) float32`` in [0, 1] (larger = nearer, read-only) out."""

    name = "depth"

    model_runs = 0  # model runs started since construction (skipped on a still background)

    def __init__(self, config: DepthConfig, *, backend: DepthModel | None = None) -> None:
        super().__init__()
        self.config = config
        self._backend = backend
        self._own_backend = backend is None
        self.available = True
        if backend is None and config.enabled:
            try:
                self._backend = open_backend(config)
            except ModelError as e:
                log.warning("depth model unavailable, using a uniform background blur instead: %s", e)
                self.available = False
        elif not config.enabled:
            log.info("depth disabled by the preset: uniform background blur behind the person")
        self._async: AsyncInference | None = None
        self._async_finalizer: weakref.finalize | None = None
        self._grids: PerSize[Grid] = PerSize(lambda h, w, fit: Grid(compute_fit(h, w, fit)))
        self._fallback_out: np.ndarray | None = None
        self._range = RangeStabiliser(config.range_smoothing, config.range_deadband)
        self._plane = OneEuroFilter(config.person_min_cutoff_hz, config.person_beta)
        # temporal state (what reset() forgets)
        self._state: np.ndarray | None = None      # temporally filtered model output (nh, nw)
        self._ref_luma: np.ndarray | None = None   # luma the state currently corresponds to
        self._src_matte: np.ndarray | None = None  # low-res matte of the frame the state came from
        self._run_luma: np.ndarray | None = None   # luma (model resolution) the model last ran on
        self._since_run = 0                        # frames since then
        self._ran = False
        self._held: np.ndarray | None = None       # the frame prefetch found no reason to run on
        self._frame_no = 0
        self._prefetched: tuple[np.ndarray, int] | None = None  # (frame, submission) started early
        self._submitted = 0  # asynchronous: sequence number of the last submission
        self._applied = 0    # ... and of the last result folded in
        self._person_plane: float | None = None
        self._lo_hi = (0.0, 1.0)
        self._folded = False  # a model result came in since the layers were last built
        self._fade: BehindFade | None = None  # fade_behind's buffers (per grid) and model result
        self._cut: np.ndarray | None = None   # the matte this frame's disparity was cut by
        if self.uses_model and config.asynchronous:
            self._start_async()

    def configure(self, config: DepthConfig) -> None:
        """Take new knobs while running, keeping the temporal state where it still means something.

        (``enabled``, ``backend`` and ``model_path`` changes rebuild the stage in the pipeline.)
        """
        old, self.config = self.config, config
        self._folded = True  # rebuild the layers with the new knobs on the next frame
        self._range.rate = 1.0 - config.range_smoothing
        self._range.deadband = config.range_deadband
        self._plane.min_cutoff = config.person_min_cutoff_hz
        self._plane.beta = config.person_beta
        session = (model_threads(config), model_spins(config))
        if session != (model_threads(old), model_spins(old)) and self._own_backend and self._backend is not None:
            self._stop_async()
            self._backend.close()
            self._backend = open_backend(config)
        if config.range_low_percentile != old.range_low_percentile or \
                config.range_high_percentile != old.range_high_percentile or config.headroom != old.headroom:
            self._range.reset()
        if config.asynchronous and self._async is None and self.uses_model:
            self._start_async()
        elif not config.asynchronous:
            self._stop_async()

    def _start_async(self) -> None:
        self._async = AsyncInference(self._backend)
        # a stage dropped without close() must not leave its thread waiting forever
        self._async_finalizer = weakref.finalize(self, self._async.close)

    def _stop_async(self) -> None:
        if self._async is not None:
            self._async_finalizer.detach()
            self._async.close()
            self._async = None

    # -- public state, for the focus tracker, tools and tests ------------------------------
    @property
    def uses_model(self) -> bool:
        return self.config.enabled and self._backend is not None

    @property
    def person_plane(self) -> float | None:
        """The person's disparity plane of the last frame (None without a person or a model)."""
        return self._person_plane

    @property
    def range(self) -> tuple[float, float] | None:
        """The current (far, near) model-output range that maps to disparity 0 and ``1 - headroom``."""
        if self._range.lo is None:
            return None
        return self._range.lo, self._range.hi

    def reset(self) -> None:
        super().reset()
        self._range.reset()
        self._plane.reset()
        if self._grids.current is not None:
            self._grids.current.edge_fresh = True
        if self._async is not None:
            self._async.discard()
        self._state = None
        self._ref_luma = None
        self._src_matte = None
        self._run_luma = None  # luma (model resolution) of the frame the model last ran on
        self._since_run = 0    # frames since then
        self._ran = False
        self._held = None      # the frame prefetch decided not to run the model on
        self._frame_no = 0
        self._prefetched = None  # its work was just discarded: never wait for it
        self._submitted = 0
        self._applied = 0
        self._person_plane = None
        self._lo_hi = (0.0, 1.0)
        self._folded = False
        if self._fade is not None:
            self._fade.ready = False

    @property
    def matte(self) -> np.ndarray | None:
        """The matte the last frame's disparity was cut by (read-only): the one passed in, or
        with ``fade_behind`` a copy faded where it is unsure, far from the person's core and the
        depth model puts it behind the person (:mod:`.behind`). The pipeline carries this one on."""
        return None if self._cut is None else readonly(self._cut)

    # -- per frame -------------------------------------------------------------------------
    def process(self, frame: np.ndarray, timestamp_ms: int, matte: np.ndarray) -> np.ndarray:
        ts = self._begin(timestamp_ms)
        check_frame(frame)
        h, w = frame.shape[:2]
        check_matte(matte, (h, w))
        if not matte.flags.c_contiguous:
            matte = np.ascontiguousarray(matte)
        if not self.uses_model:
            if self._fallback_out is None or self._fallback_out.shape != (h, w):
                self._fallback_out = np.empty((h, w), np.float32)
            k.compose_constant(readonly(matte), np.float32(FALLBACK_PERSON_DISPARITY),
                               np.float32(self.config.background_disparity), self._fallback_out)
            self._cut = matte
            return readonly(self._fallback_out)

        g = self._ensure_grid(h, w)
        self._update_model(frame, matte, g)
        if self.config.fade_behind and self._state is not None:
            matte = self._fade_behind(matte, g)
        self._cut = matte
        self._fuse(matte, g, ts)
        return readonly(g.out)

    def _fade_behind(self, matte: np.ndarray, g: Grid) -> np.ndarray:
        new = self._fade is None or self._fade.grid is not g
        if new:
            self._fade = BehindFade(g)
        if new or self._folded:  # a new model result (or new knobs) since the last frame
            self._fade.update(self._state, self._src_matte)
        return self._fade.apply(matte)

    def _ensure_grid(self, h: int, w: int) -> Grid:
        """The buffers of this frame size and fit (a new geometry starts the state over)."""
        g = self._grids.get(h, w, self.config.fit)
        if self._grids.fresh:
            self._state = None
            self._ref_luma = None
            self._src_matte = None
            self._range.reset()
        return g

    def _pack(self, frame: np.ndarray, matte: np.ndarray | None, g: Grid, slot: Slot) -> None:
        """The model's input for ``frame`` (and its luma and low-res matte) into ``slot``
        (without a matte yet when prefetching: it is filled in when the result is taken)."""
        f = g.fit
        k.pack_model_input(readonly(frame.reshape(f.frame_h, f.frame_w * 3)), g.row_bounds, g.col_bounds, g.step, f.dy, f.dx,
                         g.acc_frame, slot.x, slot.luma)
        slot.matte_pending = matte is None
        if matte is None:
            return
        # the matte at model resolution only says where the model saw the person: a bilinear
        # sample (2x2 pixels per cell at 720p) is enough, and cheaper than a box average
        cv2.resize(matte[g.crop], (f.nw, f.nh), dst=slot.matte, interpolation=cv2.INTER_LINEAR)

    def prefetch(self, frame: np.ndarray) -> bool:
        """Start the model on ``frame`` now, in its thread, so it runs while the caller segments
        the same frame; :meth:`process` on that frame then waits for exactly this result.

        Does nothing (returns False) unless ``asynchronous`` and ``overlap`` are on and the
        model is due on this frame.
        """
        self._prefetched = None
        if self._async is None or not self.config.overlap or self._closed:
            return False
        check_frame(frame)
        h, w = frame.shape[:2]
        if self._frame_no % self.config.every_n_frames != 0 and self._state is not None:
            return False
        g = self._ensure_grid(h, w)
        slot = self._async.slot(g.fit)
        if not self._pack_if_due(frame, None, g, slot):
            self._async.release(slot)
            self._held = frame
            return False
        self._prefetched = (frame, self._async.submit(slot))
        return True

    def _pack_if_due(self, frame: np.ndarray, matte: np.ndarray | None, g: Grid, slot: Slot) -> bool:
        """Whether the model must run on ``frame``, its input then packed into ``slot`` (and the
        run noted): the first frame, ``still_interval`` frames since the last run, or the
        background moved since then (a share of its cells, by the person's matte of that run,
        beyond ``still_change_levels``). Inside the person nothing is asked of the model: the
        person's depth comes from the matte. On a still scene only the luma of every
        ``STILL_ROW_STEP``-th model row is read for the check (a fraction of the pack's work)."""
        cfg = self.config
        shape = slot.luma.shape
        if not (self._state is None or self._run_luma is None or cfg.still_interval <= 1 or
                self._since_run + 1 >= cfg.still_interval or self._run_luma.shape != shape):
            f = g.fit
            k.pack_luma(readonly(frame.reshape(f.frame_h, f.frame_w * 3)), g.row_bounds, g.col_bounds, g.step,
                        STILL_ROW_STEP, g.acc_frame, slot.luma)
            rows = slice(None, None, STILL_ROW_STEP)
            diff = np.abs(slot.luma[rows] - self._run_luma[rows])
            # the person and a band around them (their matte at that run, widened like the
            # layers' clearance) are left out: the person's depth comes from the matte
            background = self._grids.current.union[rows] < np.float32(0.5)
            moved = np.count_nonzero((diff >= np.float32(cfg.still_change_levels)) & background)
            if moved <= cfg.still_change_share * diff.size:
                return False
        self._pack(frame, matte, g, slot)
        self._note_run(slot.luma)
        return True

    def _note_run(self, luma: np.ndarray) -> None:
        if self._run_luma is None or self._run_luma.shape != luma.shape:
            self._run_luma = np.array(luma, np.float32, copy=True)
        else:
            np.copyto(self._run_luma, luma)
        self._ran = True

    def _update_model(self, frame: np.ndarray, matte: np.ndarray, g: Grid) -> None:
        """Run (or collect) the model when due and fold a new result into the filtered state."""
        due = self._frame_no % self.config.every_n_frames == 0 or self._state is None
        held, self._held = self._held is frame, None  # prefetch found the scene still: no run
        due = due and not held
        self._frame_no += 1
        self._ran = self._prefetched is not None and self._prefetched[0] is frame
        if self._async is not None:
            pre, self._prefetched = self._prefetched, None
            if pre is not None and pre[0] is frame:
                # overlapped: this very frame is (being) run; wait for it, no lag at all
                self._submitted = pre[1]
                need: int | None = pre[1]
            else:
                if due:
                    slot = self._async.slot(g.fit)
                    if self._pack_if_due(frame, matte, g, slot):
                        self._submitted = self._async.submit(slot)
                    else:
                        self._async.release(slot)
                # newest result wins, but never more than ``async_max_lag`` runs behind: in a
                # camera loop the model keeps up and this never waits; a caller faster than the
                # model (a file, a benchmark) is held back rather than fed ever older depth
                need = self._submitted - self.config.async_max_lag if self._state is not None else self._submitted
            result = self._async.take(min_seq=need if need > self._applied else None)
            if result is not None:
                if result.matte_pending:
                    # prefetched before the matte existed: the model saw this frame, so its matte
                    cv2.resize(matte[g.crop], (g.fit.nw, g.fit.nh), dst=result.matte, interpolation=cv2.INTER_LINEAR)
                    result.matte_pending = False
                self._applied = result.seq
                self._fold(result, g)
                self._async.release(result)
        elif due:
            slot = g.slot
            if self._pack_if_due(frame, matte, g, slot):
                try:
                    out = self._backend.infer(slot.x)
                except Exception as e:
                    raise StageError(f"depth model failed: {e}") from e
                content(out, g.fit, slot.raw)
                self._fold(slot, g)
        self._since_run = 0 if self._ran else self._since_run + 1
        if self._ran:
            self.model_runs += 1

    def _fold(self, r: Slot, g: Grid) -> None:
        cfg = self.config
        if self._state is None:
            self._state = np.array(r.raw, np.float32, copy=True)
            self._ref_luma = np.array(r.luma, np.float32, copy=True)
            self._src_matte = np.array(r.matte, np.float32, copy=True)
        else:
            k.motion_adaptive_update(r.raw, r.luma,
                                   np.float32(1.0 - cfg.still_smoothing), np.float32(cfg.motion_low),
                                   np.float32(cfg.motion_high), self._state, self._ref_luma)
            np.copyto(self._src_matte, r.matte)
        # the range comes from the background the model saw (the person does not re-scale the scene)
        np.subtract(1.0, self._src_matte, out=g.w_bg)
        k.gather_samples(self._state, g.w_bg, np.float32(0.5), SAMPLE_STRIDE, g.samples, g.count)
        n = int(g.count[0])
        if n < _MIN_SAMPLE_FRACTION * g.samples.shape[0]:
            k.gather_samples(self._state, g.ones, np.float32(0.5), SAMPLE_STRIDE, g.samples, g.count)
            n = int(g.count[0])
        s = g.samples[:n]
        ks = sorted({_rank(cfg.range_low_percentile, n), _rank(cfg.range_high_percentile, n)})
        s.partition(ks)
        lo, hi = self._range.update(float(s[_rank(cfg.range_low_percentile, n)]),
                                    float(s[_rank(cfg.range_high_percentile, n)]))
        self._lo_hi = (lo, hi)
        self._folded = True

    def _fuse(self, matte: np.ndarray, g: Grid, ts: int) -> None:
        """Background and person layers at model resolution, then the full-resolution blend."""
        cfg = self.config
        if g.layers_ready and not self._folded:
            # no new model result since the last frame: the layers are as they were, only the
            # current matte cuts them apart again
            self._compose(matte, g)
            return
        self._folded = False
        g.layers_ready = True
        lo, hi = self._lo_hi
        scale = (1.0 - cfg.headroom) / max(hi - lo, 1e-6)
        k.map_range(self._state, np.float32(lo), np.float32(scale), np.float32(1.0 - cfg.headroom), g.mapped)

        # the layers are read where the model saw them, in the frame it ran on (the current matte
        # only cuts them apart, at full resolution): background clear of the person's edge (the
        # model's own edges are soft), the person's interior away from it
        cv2.dilate(self._src_matte, _CLEARANCE, dst=g.union)
        cv2.erode(self._src_matte, _CLEARANCE, dst=g.inter)
        k.layer_weights(g.union, g.inter, g.w_bg, g.w_person)

        k.gather_samples(g.mapped, g.w_bg, np.float32(0.5), SAMPLE_STRIDE, g.samples, g.count)
        n_bg = int(g.count[0])
        if n_bg < _MIN_SAMPLE_FRACTION * g.samples.shape[0]:
            k.gather_samples(g.mapped, g.ones, np.float32(0.5), SAMPLE_STRIDE, g.samples, g.count)
            n_bg = int(g.count[0])
        bg = g.samples[:n_bg]
        kq = _rank(cfg.person_prior_percentile, n_bg)
        bg.partition(kq)
        prior = float(bg[kq])

        k.gather_samples(g.mapped, g.w_person, np.float32(0.5), SAMPLE_STRIDE, g.samples, g.count)
        n_p = int(g.count[0])
        own = prior
        if n_p >= 4:
            pm = g.samples[:n_p]
            km = n_p // 2
            pm.partition(km)
            own = float(pm[km])
        g.defaults[0], g.defaults[1] = prior, own
        g.fill.fill(g.mapped, g.weights, g.defaults, g.filled)
        if n_p >= 4:
            target = min(1.0, max(own, prior + cfg.person_margin))
            plane = self._plane(target, ts)
            self._person_plane = plane
            k.person_layer(g.person_fill, np.float32(plane - own), np.float32(max(0.0, plane - cfg.person_relief)),
                         np.float32(min(1.0, plane + cfg.person_relief)), g.person)
        else:
            # nobody (or only slivers): whatever the matte marks takes the background's values
            self._person_plane = None
            np.copyto(g.person, g.background)
        if g.fit.sx == 0 and g.fit.sw == g.fit.frame_w:
            # the frame spans the grid's width: cv2's bilinear samples exactly where _sampling
            # does, and is faster than the general kernel
            np.subtract(g.person, g.background, out=g.diff)
            cv2.resize(g.background, (g.fit.frame_w, g.fit.nh), dst=g.wide_background, interpolation=cv2.INTER_LINEAR)
            cv2.resize(g.diff, (g.fit.frame_w, g.fit.nh), dst=g.wide_diff, interpolation=cv2.INTER_LINEAR)
        else:
            k.widen_layers(g.person, g.background, g.xi, g.xf, g.wide_background, g.wide_diff)
        self._compose(matte, g)

    def _compose(self, matte: np.ndarray, g: Grid) -> None:
        cfg = self.config
        if g.edge_fresh:
            np.copyto(g.edge, matte)
            g.edge_fresh = False
        k.compose_layers(readonly(matte), g.wide_background, g.wide_diff, g.yi, g.yf, np.float32(1.0 - cfg.edge_smoothing),
                       np.float32(cfg.edge_follow), g.edge, g.out)

    def _release(self) -> None:
        self._stop_async()
        if self._backend is not None:
            self._backend.close()
            self._backend = None


# the model's own person edge is soft over a few cells on either side: the layers take their
# values from at least this far (in model cells, ~4 px each at 720p) from the matte's edge
_CLEARANCE_CELLS = 3
_CLEARANCE = np.ones((2 * _CLEARANCE_CELLS + 1, 2 * _CLEARANCE_CELLS + 1), np.uint8)


def _rank(percentile: float, n: int) -> int:
    return min(n - 1, max(0, int(round(percentile / 100.0 * (n - 1)))))

