"""Area downscaling of a BGR frame to a smaller RGB image (what the segmentation model takes).

``cv2.resize`` INTER_AREA and ``cvtColor`` in one pass: for integer factors an exact block mean
(:func:`area_downscale`), for others the same overlap weights as OpenCV in float32
(:func:`area_resample`, tables from :func:`area_table`). :class:`AreaDownscaler` owns the
buffers for one (source, destination) size pair.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from .jit import frozen, kernel, register_warmup

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)
_U8_MAX = np.float32(255.0)


def area_table(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Area resampling ``n_in -> n_out`` (``n_in >= n_out``), as ``cv2.resize`` INTER_AREA: for
    each output index the first input index and the weights of the input pixels it overlaps
    (overlap / scale; trailing taps zero)."""
    if n_out > n_in or n_out < 1:
        raise ValueError(f"area_table downscales only: {n_in} -> {n_out}")
    scale = n_in / n_out
    lo = np.arange(n_out) * scale
    taps = int(np.max(np.ceil(lo + scale - 1e-9) - np.floor(lo)))  # most input pixels one output touches
    taps = max(1, min(taps, n_in))
    # every window size a stream's person window takes builds two tables: whole arrays, not a
    # Python loop per tap (2.5 ms per table at 720p); the same float64 operations as per element
    hi = (np.arange(n_out) + 1) * scale
    i0 = np.minimum(np.floor(lo).astype(np.int64), n_in - taps)
    px = i0[:, None] + np.arange(taps)[None, :]  # the input pixels each output overlaps
    overlap = np.minimum(hi[:, None], px + 1) - np.maximum(lo[:, None], px)
    weights = (np.maximum(overlap, 0.0) / scale).astype(np.float32)
    return i0.astype(np.int32), weights


@kernel(parallel=True)
def area_downscale(src, sy, sx, acc, hsum, out):
    """out = mean of each ``sy x sx`` block of the uint8 BGR ``src``, rounded, channels reversed
    (RGB, what the model takes): ``cv2.resize`` INTER_AREA for integer factors and ``cvtColor``
    in one pass (OpenCV's resize alone is 3-4x slower). Scratch per band of output rows (one band
    per thread at most): ``acc`` (bands, W * 3) uint16 column sums (``sy <= 257``), ``hsum``
    (bands, W * 3) int32 sums of ``sx`` neighbouring pixels."""
    oh, ow = out.shape[0], out.shape[1]
    n = src.shape[1] * 3
    m = ow * sx * 3 - 3 * (sx - 1)
    inv = _ONE / np.float32(sy * sx)
    nb = acc.shape[0]
    for band in prange(nb):
        a = acc[band]
        hs = hsum[band]
        for y in range(band * oh // nb, (band + 1) * oh // nb):
            r = src[y * sy].reshape(n)
            for i in range(n):
                a[i] = np.uint16(r[i])
            for k in range(1, sy):
                r = src[y * sy + k].reshape(n)
                for i in range(n):
                    a[i] += np.uint16(r[i])
            for i in range(m):
                hs[i] = np.int32(a[i])
            for k in range(1, sx):
                sh = a[3 * k:]
                for i in range(m):
                    hs[i] += np.int32(sh[i])
            o = out[y].reshape(ow * 3)
            for x in range(ow):
                b = 3 * sx * x
                o[3 * x] = np.uint8(np.float32(hs[b + 2]) * inv + _HALF)
                o[3 * x + 1] = np.uint8(np.float32(hs[b + 1]) * inv + _HALF)
                o[3 * x + 2] = np.uint8(np.float32(hs[b]) * inv + _HALF)


@kernel(parallel=True)
def area_resample(src, ys, wy, xs, wx, acc, out):
    """out = area-weighted mean (``cv2.resize`` INTER_AREA, any downscale factors; tables from
    :func:`area_table`) of the uint8 BGR ``src``, rounded, channels reversed (RGB). ``acc``
    (bands, W * 3) float32 scratch per band of output rows (one band per thread at most)."""
    oh, ow = out.shape[0], out.shape[1]
    n = src.shape[1] * 3
    ty = wy.shape[1]
    tx = wx.shape[1]
    nb = acc.shape[0]
    for band in prange(nb):
        a = acc[band]
        for y in range(band * oh // nb, (band + 1) * oh // nb):
            w = wy[y, 0]
            r = src[ys[y]].reshape(n)
            for i in range(n):
                a[i] = w * np.float32(r[i])
            for t in range(1, ty):
                w = wy[y, t]
                if w != _ZERO:
                    r = src[ys[y] + t].reshape(n)
                    for i in range(n):
                        a[i] += w * np.float32(r[i])
            o = out[y].reshape(ow * 3)
            for x in range(ow):
                s = 3 * xs[x]
                v0 = _ZERO
                v1 = _ZERO
                v2 = _ZERO
                for t in range(tx):
                    w = wx[x, t]
                    v0 += w * a[s + 3 * t]
                    v1 += w * a[s + 3 * t + 1]
                    v2 += w * a[s + 3 * t + 2]
                o[3 * x] = np.uint8(min(v2 + _HALF, _U8_MAX))
                o[3 * x + 1] = np.uint8(min(v1 + _HALF, _U8_MAX))
                o[3 * x + 2] = np.uint8(min(v0 + _HALF, _U8_MAX))



class AreaDownscaler:
    """Frame (H, W, 3) uint8 BGR -> (h, w, 3) uint8 RGB by area averaging (``cv2.resize``
    INTER_AREA then ``cvtColor``, in one pass), for ``h <= H`` and ``w <= W``: integer factors
    exactly, others with :func:`area_table` weights. Buffers allocated once."""

    def __init__(self, src_size: tuple[int, int], dst_size: tuple[int, int], bands: int | None = None) -> None:
        sw, sh = src_size
        dw, dh = dst_size
        if dw > sw or dh > sh:
            raise ValueError(f"AreaDownscaler downscales only: {sw}x{sh} -> {dw}x{dh}")
        self.src_size, self.dst_size = (sw, sh), (dw, dh)
        # one band of output rows per thread Numba may run (fewer threads run them in turn)
        bands = max(1, min(int(bands or numba.config.NUMBA_NUM_THREADS), dh))
        self.factors = (sh // dh, sw // dw) if sh % dh == 0 and sw % dw == 0 and sh // dh <= 257 else None
        if self.factors is not None:
            self._acc16 = np.empty((bands, sw * 3), np.uint16)
            self._hsum = np.empty((bands, sw * 3), np.int32)
        else:
            self._ys, self._wy = area_table(sh, dh)
            self._xs, self._wx = area_table(sw, dw)
            self._acc = np.empty((bands, sw * 3), np.float32)

    def run(self, frame: np.ndarray, out: np.ndarray) -> None:
        frame = frozen(frame)  # one signature, whoever owns the frame
        if self.factors is not None:
            area_downscale(frame, self.factors[0], self.factors[1], self._acc16, self._hsum, out)
        else:
            area_resample(frame, self._ys, self._wy, self._xs, self._wx, self._acc, out)


@register_warmup
def _warm() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    small = np.empty((5, 4, 3), np.uint8)
    # run() passes the frame read-only, writable or not: one signature each
    AreaDownscaler((12, 10), (4, 5)).run(frame, small)
    AreaDownscaler((12, 10), (5, 3)).run(frame, small[:3, :5].copy())
