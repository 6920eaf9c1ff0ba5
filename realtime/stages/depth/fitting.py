"""The geometry of fitting a frame to the depth model: where the frame goes in the model's input
(:class:`Fit`), the buffers of one frame size (:class:`Grid`, :class:`Slot`) and the push-pull
fill's scratch pyramid (:class:`PushPull`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.core.config import DepthFit
from realtime.core.errors import StageError
from shaders.depth import PUSHPULL_LEVELS, pushpull_fill

from .backends import MODEL_H, MODEL_W

SAMPLE_STRIDE = 3               # percentiles on every 3rd row and column of the model grid (~6k samples)
MAX_PACK_ROWS = 257             # 257 * 255 fits the 16-bit row sums of pack_model_input


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


class Grid:
    """Buffers for one frame size (allocated once, reused every frame)."""

    def __init__(self, fit: Fit) -> None:
        self.fit = fit
        nh, nw = fit.nh, fit.nw
        self.row_bounds = _bounds(fit.sy, fit.sh, nh)
        self.col_bounds = _bounds(fit.sx, fit.sw, nw)
        self.yi, self.yf = _sampling(fit.frame_h, fit.sy, fit.sh, nh)
        self.xi, self.xf = _sampling(fit.frame_w, fit.sx, fit.sw, nw)
        self.slot = Slot(fit)  # the synchronous model run's input and output
        self.wide_background = np.zeros((nh, fit.frame_w), np.float32)
        self.wide_diff = np.zeros((nh, fit.frame_w), np.float32)
        # boxes of 4x4 pixels or more (720p and up) are read at every other row and column
        self.step = 2 if fit.sh >= 4 * nh and fit.sw >= 4 * nw else 1
        # row sums in 16 bits (twice the SIMD width of 32, docs/depth.md), so at most 257 rows
        # per box are read (only frames over ~50000 pixels high read fewer than half)
        rows = -(-fit.sh // nh)  # the most rows in a box
        self.step = max(self.step, -(-rows // MAX_PACK_ROWS))
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
        n = ((nh + SAMPLE_STRIDE - 1) // SAMPLE_STRIDE) * ((nw + SAMPLE_STRIDE - 1) // SAMPLE_STRIDE)
        self.samples = np.empty(n, np.float32)
        self.count = np.zeros(1, np.int64)
        self.ones = np.ones((nh, nw), np.float32)
        self.fill = PushPull((nh, nw), 2)
        self.out = np.empty((fit.frame_h, fit.frame_w), np.float32)


class PushPull:
    """Scratch pyramid for :func:`shaders.depth.pushpull_fill` (allocated once per grid size)."""

    def __init__(self, shape: tuple[int, int], channels: int) -> None:
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
        pushpull_fill(values, weights, defaults, self._levels, self._vws, self._ws, self._fills, self._row, out)


class Slot:
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


def content(out: object, fit: Fit, dst: np.ndarray) -> None:
    """Copy the part of a (192, 320) model output that covers the frame into ``dst``; garbage is a StageError."""
    if not isinstance(out, np.ndarray) or out.size != MODEL_H * MODEL_W:
        got = out.shape if isinstance(out, np.ndarray) else type(out).__name__
        raise StageError(f"depth backend returned {got}, expected an array of {MODEL_H}x{MODEL_W} values")
    if out.dtype != np.float32:
        raise StageError(f"depth backend returned dtype {out.dtype}, expected float32")
    np.copyto(dst, out.reshape(MODEL_H, MODEL_W)[fit.dy:fit.dy + fit.nh, fit.dx:fit.dx + fit.nw])
    if not np.isfinite(dst.sum()):
        raise StageError("depth backend returned NaN or infinite values")

