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
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from realtime.core import models
from realtime.core.config import DepthBackend as DepthBackendKind
from realtime.core.config import DepthConfig, DepthFit
from realtime.stages.depth_graph import FinalConv, split_final_conv
from realtime.core.errors import ModelError, SinkError, StageError
from realtime.stages.focus import OneEuroFilter
from realtime.core.frames import check_disparity, check_frame, check_matte, readonly
from realtime.core.stage import Stage

log = logging.getLogger(__name__)

MODEL_W, MODEL_H = 320, 192
THREAD_NAME = "portrait-cam-depth"
FALLBACK_PERSON_DISPARITY = 1.0  # no-depth mode: the person is the nearest thing, at the focus plane
_SAMPLE_STRIDE = 3               # percentiles on every 3rd row and column of the model grid (~6k samples)
_MIN_SAMPLE_FRACTION = 0.05      # fewer background samples than this: use the whole frame
_MAX_PACK_ROWS = 257             # 257 * 255 fits the 16-bit row sums of pack_model_input
_SPIN_US = 10                    # onnxruntime workers spin this long for the next step of a run


class DepthBackend(Protocol):
    """A depth model: ``(1, 3, 192, 320)`` float32 RGB 0..255 in, ``(192, 320)`` relative inverse depth out."""

    def infer(self, x: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


class OnnxDepth:
    """onnxruntime on the CPU (the default: measured faster than cv2.dnn, see docs/depth.md).

    With ``split`` (the default) the model's last layer runs in :func:`shaders.depth.final_conv_up2`
    instead of onnxruntime (see realtime/depth_graph.py: the model ~13% faster for the same
    output), if the file ends the way TCMonoDepth does and, checked once at load on a test
    input, gives the same output as the whole model; otherwise the whole model runs.
    """

    def __init__(self, path: str, threads: int = 2, spin: bool = False, split: bool = True) -> None:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise ModelError(f"could not read the depth model {path} ({e})") from e
        self._sess = self._session(data, path, threads, spin)
        self._input = self._sess.get_inputs()[0].name
        self._tail: FinalConv | None = None
        self.split = False  # the last layer runs outside onnxruntime
        cut = split_final_conv(data) if split else None
        if cut is not None:
            self._try_split(cut, path, threads, spin)

    @staticmethod
    def _session(data: bytes, path: str, threads: int, spin: bool):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        # a worker that sleeps between the ~150 steps of a run is woken for each; one that spins
        # a few microseconds is not (the stage ~15% faster on 2 idle cores). Spinning long or
        # between runs takes the core from whatever else runs (2x slower under load), hence 10
        # us at most, stopped when the run returns (docs/depth.md)
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        so.add_session_config_entry("session.intra_op.spin_duration_us", str(_SPIN_US))
        so.add_session_config_entry("session.force_spinning_stop", "1")
        try:
            return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise ModelError(f"onnxruntime could not load {path} ({e})") from e

    def _try_split(self, cut: FinalConv, path: str, threads: int, spin: bool) -> None:
        try:
            head = self._session(cut.head, path, threads, spin)
        except ModelError as e:
            log.info("depth model run whole: its last layer could not be split off (%s)", e)
            return
        c = cut.weight.shape[0]
        self._conv = np.empty((MODEL_H // 2, MODEL_W // 2), np.float32)
        self._out = np.empty((MODEL_H, MODEL_W), np.float32)
        whole, self._sess = self._sess, head
        self._tail = cut
        # the same output as the whole model on a busy test input, or the whole model it is
        x = np.random.default_rng(0).uniform(0.0, 255.0, (1, 3, MODEL_H, MODEL_W)).astype(np.float32)
        try:
            features = head.run(None, {self._input: x})[0]
            ok = features.shape == (1, c, MODEL_H // 2, MODEL_W // 2)
            if ok:
                from shaders.depth import final_conv_up2

                final_conv_up2(features[0], cut.weight, cut.bias, self._conv, self._out)
                ref = whole.run(None, {self._input: x})[0].reshape(MODEL_H, MODEL_W)
                ok = bool(np.abs(self._out - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max())))
        except Exception as e:  # onnxruntime's own exception types
            log.info("depth model run whole: its split-off last layer failed (%s)", e)
            ok = False
        if ok:
            self.split = True
        else:
            self._sess, self._tail = whole, None

    def infer(self, x: np.ndarray) -> np.ndarray:
        if self._tail is None:
            return self._sess.run(None, {self._input: x})[0].reshape(MODEL_H, MODEL_W)
        from shaders.depth import final_conv_up2

        features = self._sess.run(None, {self._input: x})[0]
        final_conv_up2(features[0], self._tail.weight, self._tail.bias, self._conv, self._out)
        return readonly(self._out)

    def close(self) -> None:
        self._sess = None


class OpenCVDepth:
    """cv2.dnn (no extra dependency beyond OpenCV, slower here)."""

    def __init__(self, path: str) -> None:
        try:
            self._net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as e:
            raise ModelError(f"OpenCV could not load {path} ({e})") from e

    def infer(self, x: np.ndarray) -> np.ndarray:
        self._net.setInput(x)
        return self._net.forward().reshape(MODEL_H, MODEL_W)

    def close(self) -> None:
        self._net = None


def model_threads(cfg: DepthConfig) -> int:
    """onnxruntime threads: as configured, or 2 in the caller's thread and 1 in its own."""
    if cfg.threads:
        return cfg.threads
    return 1 if cfg.asynchronous else 2


def model_spins(cfg: DepthConfig) -> bool:
    """Spin-waiting only helps while the caller waits for a multi-threaded run; the model's own
    thread shares the cores with segmentation, which it must not slow down."""
    return cfg.spin and not cfg.asynchronous and model_threads(cfg) > 1


def open_backend(cfg: DepthConfig) -> DepthBackend:
    path = models.resolve("tcmonodepth_small", cfg.model_path or None)
    if cfg.backend is DepthBackendKind.OPENCV:
        return OpenCVDepth(str(path))
    return OnnxDepth(str(path), threads=model_threads(cfg), spin=model_spins(cfg))


# -- geometry ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fit:
    """Where a frame goes in the model input and how the model grid maps back to the frame.

    The *content grid* is ``(nh, nw)`` model cells placed at ``(dy, dx)`` in the 192x320 input;
    it covers the frame rectangle ``(sy, sx, sh, sw)`` (the whole frame when letterboxing, a
    centred crop of the model's aspect ratio when cropping).
    """

    frame_h: int
    frame_w: int
    nh: int
    nw: int
    dy: int
    dx: int
    sy: int
    sx: int
    sh: int
    sw: int


def compute_fit(h: int, w: int, mode: DepthFit) -> Fit:
    if mode is DepthFit.CROP:
        # the largest centred rectangle of the model's aspect ratio
        if w * MODEL_H > h * MODEL_W:
            sh, sw = h, max(1, round(h * MODEL_W / MODEL_H))
        else:
            sh, sw = max(1, round(w * MODEL_H / MODEL_W)), w
        return Fit(h, w, MODEL_H, MODEL_W, 0, 0, (h - sh) // 2, (w - sw) // 2, sh, sw)
    scale = min(MODEL_W / w, MODEL_H / h)
    nw = min(MODEL_W, max(2, round(w * scale)))
    nh = min(MODEL_H, max(2, round(h * scale)))
    return Fit(h, w, nh, nw, (MODEL_H - nh) // 2, (MODEL_W - nw) // 2, 0, 0, h, w)


def _bounds(start: int, length: int, cells: int) -> np.ndarray:
    """``cells + 1`` source indices splitting ``[start, start + length)`` into near-equal boxes."""
    return (start + (np.arange(cells + 1, dtype=np.int64) * length) // cells).astype(np.int64)


def _sampling(size: int, start: int, length: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear sampling of a ``cells``-long low-resolution axis at each of ``size`` pixels."""
    u = (np.arange(size, dtype=np.float64) - start + 0.5) * (cells / length) - 0.5
    u = np.clip(u, 0.0, cells - 1)
    i0 = np.minimum(np.floor(u).astype(np.int64), max(cells - 2, 0))
    f = (u - i0).astype(np.float32)
    return i0, f


class _Grid:
    """Buffers for one frame size (allocated once, reused every frame)."""

    def __init__(self, fit: Fit) -> None:
        self.fit = fit
        nh, nw = fit.nh, fit.nw
        self.row_bounds = _bounds(fit.sy, fit.sh, nh)
        self.col_bounds = _bounds(fit.sx, fit.sw, nw)
        self.yi, self.yf = _sampling(fit.frame_h, fit.sy, fit.sh, nh)
        self.xi, self.xf = _sampling(fit.frame_w, fit.sx, fit.sw, nw)
        self.slot = _Slot(fit)  # the synchronous model run's input and output
        self.wide_background = np.zeros((nh, fit.frame_w), np.float32)
        self.wide_diff = np.zeros((nh, fit.frame_w), np.float32)
        # boxes of 4x4 pixels or more (720p and up) are read at every other row and column
        self.step = 2 if fit.sh >= 4 * nh and fit.sw >= 4 * nw else 1
        # row sums in 16 bits (twice the SIMD width of 32: packing ~25% faster), so at most
        # 257 rows per box are read (only frames over ~50000 pixels high read fewer than half)
        rows = -(-fit.sh // nh)  # the most rows in a box
        self.step = max(self.step, -(-rows // _MAX_PACK_ROWS))
        self.acc_frame = np.zeros((nh, fit.frame_w * 3), np.uint16)
        self.crop = (slice(fit.sy, fit.sy + fit.sh), slice(fit.sx, fit.sx + fit.sw))
        self.edge = np.zeros((fit.frame_h, fit.frame_w), np.float32)  # smoothed matte at the edges
        self.edge_fresh = True
        self.layers_ready = False  # the low-resolution layers hold a result (see DepthEstimator._fuse)
        self.luma = np.zeros((nh, nw), np.float32)
        self.mapped = np.zeros((nh, nw), np.float32)
        self.union = np.zeros((nh, nw), np.float32)
        self.inter = np.zeros((nh, nw), np.float32)
        # fill weights and filled layers: [0] background, [1] person (one push-pull pass for both)
        self.weights = np.zeros((2, nh, nw), np.float32)
        self.w_bg, self.w_person = self.weights[0], self.weights[1]
        self.filled = np.zeros((2, nh, nw), np.float32)
        self.background, self.person_fill = self.filled[0], self.filled[1]
        self.defaults = np.zeros(2, np.float32)
        self.person = np.zeros((nh, nw), np.float32)
        self.diff = np.zeros((nh, nw), np.float32)
        n = ((nh + _SAMPLE_STRIDE - 1) // _SAMPLE_STRIDE) * ((nw + _SAMPLE_STRIDE - 1) // _SAMPLE_STRIDE)
        self.samples = np.empty(n, np.float32)
        self.count = np.zeros(1, np.int64)
        self.ones = np.ones((nh, nw), np.float32)
        self.fill = PushPull((nh, nw), 2)
        self.out = np.empty((fit.frame_h, fit.frame_w), np.float32)


class PushPull:
    """Scratch pyramid for :func:`shaders.depth.pushpull_fill` (allocated once per grid size)."""

    def __init__(self, shape: tuple[int, int], channels: int) -> None:
        from shaders.depth import PUSHPULL_LEVELS

        shapes = [shape]
        while shapes[-1][0] > 2 or shapes[-1][1] > 2:
            h, w = shapes[-1]
            shapes.append(((h + 1) // 2, (w + 1) // 2))
        if len(shapes) > PUSHPULL_LEVELS:
            raise ValueError(f"a {shape[1]}x{shape[0]} grid needs {len(shapes)} pyramid levels, "
                             f"at most {PUSHPULL_LEVELS} are compiled")
        self._levels = len(shapes)
        # unused levels are 1x1 so every grid size shares one compiled signature
        shapes += [(1, 1)] * (PUSHPULL_LEVELS - len(shapes))
        self._vws = tuple(np.zeros((channels, *s), np.float32) for s in shapes)
        self._ws = tuple(np.zeros((channels, *s), np.float32) for s in shapes)
        self._fills = tuple(np.zeros((channels, *s), np.float32) for s in shapes)
        self._row = np.zeros(max(1, (shape[1] + 1) // 2), np.float32)

    def fill(self, values: np.ndarray, weights: np.ndarray, defaults: np.ndarray, out: np.ndarray) -> None:
        """``out[c]``: ``values`` where ``weights[c]`` ~ 1, smoothly filled from the nearest
        weighted values elsewhere (``defaults[c]`` where no weight is anywhere)."""
        from shaders.depth import pushpull_fill

        pushpull_fill(values, weights, defaults, self._levels, self._vws, self._ws, self._fills, self._row, out)


# -- temporal pieces --------------------------------------------------------------------------

class RangeStabiliser:
    """A robust (lo, hi) that only moves when the measurement leaves a dead band.

    Inside the band (a fraction ``deadband`` of the current span) the range does not change at
    all, so camera noise cannot re-scale the scene; outside it, each end chases the new value
    with rate ``1 - smoothing`` per update until it is within a tenth of the band again
    (hysteresis: a small persistent offset does not keep it moving forever).
    """

    def __init__(self, smoothing: float, deadband: float) -> None:
        self.rate = 1.0 - smoothing
        self.deadband = deadband
        self.lo: float | None = None
        self.hi: float | None = None
        self._tracking = [False, False]

    def reset(self) -> None:
        self.lo = self.hi = None
        self._tracking = [False, False]

    def update(self, lo: float, hi: float) -> tuple[float, float]:
        if self.lo is None or self.hi is None:
            self.lo, self.hi = float(lo), float(max(hi, lo + 1e-6))
            return self.lo, self.hi
        span = max(self.hi - self.lo, 1e-6)
        band = self.deadband * span
        ends = [self.lo, self.hi]
        for k, target in enumerate((float(lo), float(hi))):
            err = target - ends[k]
            if abs(err) > band:
                self._tracking[k] = True
            if self._tracking[k]:
                ends[k] += self.rate * err
                if abs(target - ends[k]) <= 0.1 * band:
                    self._tracking[k] = False
        self.lo, self.hi = ends[0], max(ends[1], ends[0] + 1e-6)
        return self.lo, self.hi


class _Slot:
    """One model run: its input, what the frame looked like at model resolution, and its output.

    Allocated once per frame size; the asynchronous runner cycles a few of them, so no frame
    allocates anything.
    """

    def __init__(self, fit: Fit) -> None:
        self.fit = fit
        self.x = np.zeros((1, 3, MODEL_H, MODEL_W), np.float32)
        self.luma = np.zeros((fit.nh, fit.nw), np.float32)
        self.matte = np.zeros((fit.nh, fit.nw), np.float32)  # low-resolution matte of that frame
        self.raw = np.zeros((fit.nh, fit.nw), np.float32)    # model output on the content grid
        self.generation = 0
        self.seq = 0
        self.matte_pending = False  # prefetched before the frame's matte was known


def _content(out: object, fit: Fit, dst: np.ndarray) -> None:
    """Copy the part of a (192, 320) model output that covers the frame into ``dst``; garbage is a StageError."""
    if not isinstance(out, np.ndarray) or out.size != MODEL_H * MODEL_W:
        got = out.shape if isinstance(out, np.ndarray) else type(out).__name__
        raise StageError(f"depth backend returned {got}, expected an array of {MODEL_H}x{MODEL_W} values")
    if out.dtype != np.float32:
        raise StageError(f"depth backend returned dtype {out.dtype}, expected float32")
    np.copyto(dst, out.reshape(MODEL_H, MODEL_W)[fit.dy:fit.dy + fit.nh, fit.dx:fit.dx + fit.nw])
    if not np.isfinite(dst.sum()):
        raise StageError("depth backend returned NaN or infinite values")


class _AsyncInference:
    """The model in its own thread: the newest submitted input is run, the newest result wins.

    Four slots cycle between the caller (filling one), the queue (one pending), the worker (one
    running) and the finished result (one); a newer submission or result replaces an older one,
    whose slot goes back to the free list.
    """

    SLOTS = 4

    def __init__(self, backend: DepthBackend) -> None:
        self._backend = backend
        self._cond = threading.Condition()
        self._free: list[_Slot] = []
        self._fit: Fit | None = None
        self._pending: _Slot | None = None
        self._result: _Slot | None = None
        self._error: BaseException | None = None
        self._stop = False
        self._busy = False
        self._generation = 0  # bumped by discard(): results of older submissions are dropped
        self._seq = 0         # submissions so far
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def slot(self, fit: Fit) -> _Slot:
        """A free slot for a frame of this fit (the caller fills it and hands it to :meth:`submit`)."""
        with self._cond:
            if fit != self._fit:
                self._fit = fit
                self._free = [_Slot(fit) for _ in range(self.SLOTS)]
                self._pending = None
                if self._result is not None and self._result.fit != fit:
                    self._result = None
            while not self._free:  # only if the caller holds slots it did not give back
                self._cond.wait(0.1)
                self._raise_error()
            return self._free.pop()

    def release(self, slot: _Slot) -> None:
        with self._cond:
            if slot.fit == self._fit:
                self._free.append(slot)
                self._cond.notify_all()

    def submit(self, slot: _Slot) -> int:
        """Queue a filled slot, replacing any input not yet started; returns its sequence number."""
        with self._cond:
            self._raise_error()
            if self._pending is not None:
                self._free.append(self._pending)
            self._seq += 1
            slot.generation = self._generation
            slot.seq = self._seq
            self._pending = slot
            self._cond.notify_all()
            return self._seq

    def discard(self) -> None:
        """Forget queued and finished work (a new stream): nothing submitted before comes out."""
        with self._cond:
            self._generation += 1
            for s in (self._pending, self._result):
                if s is not None and s.fit == self._fit:
                    self._free.append(s)
            self._pending = self._result = None
            self._cond.notify_all()

    def take(self, min_seq: int | None = None) -> _Slot | None:
        """The newest finished result (once; give it back with :meth:`release`), or None.

        With ``min_seq``, blocks until a result of that submission or a later one is there
        (submissions replaced before they started count as done by any later result).
        """
        with self._cond:
            while min_seq is not None and (self._result is None or self._result.seq < min_seq) \
                    and self._error is None and not self._stop:
                self._cond.wait(0.5)
            self._raise_error()
            r, self._result = self._result, None
            return r

    def _raise_error(self) -> None:
        if self._error is not None:
            e, self._error = self._error, None
            raise StageError(f"depth model failed in its thread: {e}") from e

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                slot, self._pending = self._pending, None
                self._busy = True
            try:
                _content(self._backend.infer(slot.x), slot.fit, slot.raw)
            except BaseException as e:  # handed to the caller's thread, which raises it once
                with self._cond:
                    self._error = e
                    self._busy = False
                    if slot.fit == self._fit:
                        self._free.append(slot)
                    self._cond.notify_all()
                continue  # keep serving: the stage recovers when the model works again
            with self._cond:
                self._busy = False
                if slot.fit == self._fit and slot.generation == self._generation:
                    if self._result is not None:
                        self._free.append(self._result)
                    self._result = slot
                elif slot.fit == self._fit:
                    self._free.append(slot)
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._pending = None
            self._cond.notify_all()
        self._thread.join()


# -- the stage --------------------------------------------------------------------------------

class DepthEstimator(Stage):
    """Frame + matte in, disparity ``(H, W) float32`` in [0, 1] (larger = nearer, read-only) out."""

    name = "depth"

    def __init__(self, config: DepthConfig, *, backend: DepthBackend | None = None) -> None:
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
        self._async: _AsyncInference | None = None
        if self.uses_model and config.asynchronous:
            self._start_async()
        self._grid: _Grid | None = None
        self._fallback_out: np.ndarray | None = None
        self._range = RangeStabiliser(config.range_smoothing, config.range_deadband)
        self._plane = OneEuroFilter(config.person_min_cutoff_hz, config.person_beta)
        self.reset()

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
        if config.fit != old.fit:
            self._grid = None  # new geometry on the next frame (and a fresh state)
        if config.range_low_percentile != old.range_low_percentile or \
                config.range_high_percentile != old.range_high_percentile or config.headroom != old.headroom:
            self._range.reset()
        if config.asynchronous and self._async is None and self.uses_model:
            self._start_async()
        elif not config.asynchronous:
            self._stop_async()

    def _start_async(self) -> None:
        self._async = _AsyncInference(self._backend)
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
        if self._grid is not None:
            self._grid.edge_fresh = True
        if getattr(self, "_async", None) is not None:
            self._async.discard()
        self._state: np.ndarray | None = None      # temporally filtered model output (nh, nw)
        self._ref_luma: np.ndarray | None = None   # luma the state currently corresponds to
        self._src_matte: np.ndarray | None = None  # low-res matte of the frame the state came from
        self._frame_no = 0
        self._prefetched = None  # its work was just discarded: never wait for it
        self._submitted = 0  # asynchronous: sequence number of the last submission
        self._applied = 0    # ... and of the last result folded in
        self._person_plane: float | None = None
        self._lo_hi = (0.0, 1.0)
        self._folded = False  # a model result came in since the layers were last built

    # -- per frame -------------------------------------------------------------------------
    def process(self, frame: np.ndarray, timestamp_ms: int, matte: np.ndarray) -> np.ndarray:
        ts = self._begin(timestamp_ms)
        check_frame(frame)
        h, w = frame.shape[:2]
        check_matte(matte, (h, w))
        from shaders import depth as k

        if not matte.flags.c_contiguous:
            matte = np.ascontiguousarray(matte)
        if not self.uses_model:
            if self._fallback_out is None or self._fallback_out.shape != (h, w):
                self._fallback_out = np.empty((h, w), np.float32)
            k.compose_constant(matte, np.float32(FALLBACK_PERSON_DISPARITY),
                               np.float32(self.config.background_disparity), self._fallback_out)
            return readonly(self._fallback_out)

        g = self._ensure_grid(h, w)
        self._update_model(frame, matte, g)
        self._fuse(matte, g, ts)
        return readonly(g.out)

    def _ensure_grid(self, h: int, w: int) -> _Grid:
        if self._grid is None or self._grid.out.shape != (h, w):
            self._grid = _Grid(compute_fit(h, w, self.config.fit))
            self._state = None
            self._ref_luma = None
            self._src_matte = None
            self._range.reset()
        return self._grid

    def _pack(self, frame: np.ndarray, matte: np.ndarray | None, g: _Grid, slot: _Slot) -> None:
        """The model's input for ``frame`` (and its luma and low-res matte) into ``slot``
        (without a matte yet when prefetching: it is filled in when the result is taken)."""
        from shaders.depth import pack_model_input

        f = g.fit
        pack_model_input(frame.reshape(f.frame_h, f.frame_w * 3), g.row_bounds, g.col_bounds, g.step, f.dy, f.dx,
                         g.acc_frame, slot.x, slot.luma)
        slot.matte_pending = matte is None
        if matte is None:
            return
        # the matte at model resolution only says where the model saw the person: a bilinear
        # sample (2x2 pixels per cell at 720p) is enough and ~5x cheaper than a box average
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
        self._pack(frame, None, g, slot)
        self._prefetched = (frame, self._async.submit(slot))
        return True

    _prefetched: tuple[np.ndarray, int] | None = None

    def _update_model(self, frame: np.ndarray, matte: np.ndarray, g: _Grid) -> None:
        """Run (or collect) the model when due and fold a new result into the filtered state."""
        due = self._frame_no % self.config.every_n_frames == 0 or self._state is None
        self._frame_no += 1
        if self._async is not None:
            pre, self._prefetched = self._prefetched, None
            if pre is not None and pre[0] is frame:
                # overlapped: this very frame is (being) run; wait for it, no lag at all
                self._submitted = pre[1]
                need: int | None = pre[1]
            else:
                if due:
                    slot = self._async.slot(g.fit)
                    self._pack(frame, matte, g, slot)
                    self._submitted = self._async.submit(slot)
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
            self._pack(frame, matte, g, slot)
            try:
                out = self._backend.infer(slot.x)
            except Exception as e:
                raise StageError(f"depth model failed: {e}") from e
            _content(out, g.fit, slot.raw)
            self._fold(slot, g)

    def _fold(self, r: _Slot, g: _Grid) -> None:
        from shaders.depth import gather_samples, motion_adaptive_update

        cfg = self.config
        if self._state is None:
            self._state = np.array(r.raw, np.float32, copy=True)
            self._ref_luma = np.array(r.luma, np.float32, copy=True)
            self._src_matte = np.array(r.matte, np.float32, copy=True)
        else:
            motion_adaptive_update(r.raw, r.luma,
                                   np.float32(1.0 - cfg.still_smoothing), np.float32(cfg.motion_low),
                                   np.float32(cfg.motion_high), self._state, self._ref_luma)
            np.copyto(self._src_matte, r.matte)
        # the range comes from the background the model saw (the person does not re-scale the scene)
        np.subtract(1.0, self._src_matte, out=g.w_bg)
        gather_samples(self._state, g.w_bg, np.float32(0.5), _SAMPLE_STRIDE, g.samples, g.count)
        n = int(g.count[0])
        if n < _MIN_SAMPLE_FRACTION * g.samples.shape[0]:
            gather_samples(self._state, g.ones, np.float32(0.5), _SAMPLE_STRIDE, g.samples, g.count)
            n = int(g.count[0])
        s = g.samples[:n]
        ks = sorted({_rank(cfg.range_low_percentile, n), _rank(cfg.range_high_percentile, n)})
        s.partition(ks)
        lo, hi = self._range.update(float(s[_rank(cfg.range_low_percentile, n)]),
                                    float(s[_rank(cfg.range_high_percentile, n)]))
        self._lo_hi = (lo, hi)
        self._folded = True

    def _fuse(self, matte: np.ndarray, g: _Grid, ts: int) -> None:
        """Background and person layers at model resolution, then the full-resolution blend."""
        from shaders.depth import gather_samples, layer_weights, map_range, person_layer, widen_layers

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
        map_range(self._state, np.float32(lo), np.float32(scale), np.float32(1.0 - cfg.headroom), g.mapped)

        # the layers are read where the model saw them, in the frame it ran on (the current matte
        # only cuts them apart, at full resolution): background clear of the person's edge (the
        # model's own edges are soft), the person's interior away from it
        cv2.dilate(self._src_matte, _CLEARANCE, dst=g.union)
        cv2.erode(self._src_matte, _CLEARANCE, dst=g.inter)
        layer_weights(g.union, g.inter, g.w_bg, g.w_person)

        gather_samples(g.mapped, g.w_bg, np.float32(0.5), _SAMPLE_STRIDE, g.samples, g.count)
        n_bg = int(g.count[0])
        if n_bg < _MIN_SAMPLE_FRACTION * g.samples.shape[0]:
            gather_samples(g.mapped, g.ones, np.float32(0.5), _SAMPLE_STRIDE, g.samples, g.count)
            n_bg = int(g.count[0])
        bg = g.samples[:n_bg]
        kq = _rank(cfg.person_prior_percentile, n_bg)
        bg.partition(kq)
        prior = float(bg[kq])

        gather_samples(g.mapped, g.w_person, np.float32(0.5), _SAMPLE_STRIDE, g.samples, g.count)
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
            person_layer(g.person_fill, np.float32(plane - own), np.float32(max(0.0, plane - cfg.person_relief)),
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
            widen_layers(g.person, g.background, g.xi, g.xf, g.wide_background, g.wide_diff)
        self._compose(matte, g)

    def _compose(self, matte: np.ndarray, g: _Grid) -> None:
        from shaders.depth import compose_layers

        cfg = self.config
        if g.edge_fresh:
            np.copyto(g.edge, matte)
            g.edge_fresh = False
        compose_layers(matte, g.wide_background, g.wide_diff, g.yi, g.yf, np.float32(1.0 - cfg.edge_smoothing),
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


def save_disparity(path: str | Path, disparity: np.ndarray) -> None:
    """Write a disparity map as a 16-bit PNG (0 = far, 65535 = near), e.g. for ``--save-depth``."""
    check_disparity(disparity, disparity.shape[:2] if disparity.ndim == 2 else (0, 0))
    img = np.empty(disparity.shape, np.uint16)
    np.multiply(np.clip(disparity, 0.0, 1.0), 65535.0, out=img, casting="unsafe")
    if not cv2.imwrite(str(path), img):
        raise SinkError(f"could not write the disparity map to {path}")
