"""Matte refinement kernels: a fast colour guided filter that keeps the model's own detail.

The segmentation model's confidence ``p`` comes at model resolution (e.g. 256x144); the matte
is needed at the frame's. Bilinear upsampling gives a soft edge that is off by a model pixel or
two (5 px at 720p). A guided filter (He et al.) models the matte locally as a linear function of
the colour, ``q = a . I + b``, so the edge lands on the frame's own colour edge and soft hair
stays soft. The *fast* variant (He & Sun 2015) fits ``a, b`` at low resolution, upsamples them
bilinearly and applies them to the full-resolution frame.

Two additions over the textbook filter, both folded into ``b`` at low resolution:

- **detail**: a guided filter box-smooths ``p`` twice, so thin or faint parts of the person (an
  arm seen edge-on, a head against a similar background) average away. Where the colour does not
  explain ``p`` (low coefficient of determination ``R^2`` of the local fit) the part of ``p`` the
  smoothing removed is added back: ``b += detail * (1 - R^2) * (p - mean(mean p))``.
- **protect**: where the model is sure (``p`` near 0 or 1) its value is kept: the blend weight
  toward the filter is ``w = min(1, 4 p (1 - p) protect)``. This stops the classic guided-filter
  holes where the person has a background-like colour next to an edge (grey hair highlights
  against a light wall).

Passes, all on preallocated buffers (:class:`GuidedUpsampler` owns them):

1. :func:`guided_coeffs` - serial, at model resolution (a few ten thousand pixels, cheaper than
   waking threads): 14 guide/``p`` products, box means (window clipped at the border, divided by
   the number of pixels in it), the 3x3 colour regression per pixel, box means of ``(a, b, mean
   p, R^2)``, and the fold into one ``(a_b, a_g, a_r, b)`` per pixel, scaled for uint8 input;
2. :func:`apply_coeffs` - at full resolution, ONE fused parallel pass: per output row the two
   low-res coefficient rows are blended into the row's scratch line, then per pixel a horizontal
   lerp, the dot with the BGR pixel read straight from the frame, and a clip to [0, 1].

Sampling positions match ``cv2.resize`` INTER_LINEAR (pixel centres aligned). The guide is
centred (``I/255 - 0.5``) so float32 variances keep their digits.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .jit import inline, kernel, register_warmup

N_STATS = 14  # I (3), p, I_i I_j for i <= j (6), I p (3), p p
N_LIN = 6     # per window: a (3), b, mean p, R^2

_INV255 = np.float32(1.0 / 255.0)
_HALF = np.float32(0.5)
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_FOUR = np.float32(4.0)
_TINY = np.float32(1e-8)


def sample_table(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output index: the two input indices and the weight of the second, as
    ``cv2.resize`` INTER_LINEAR places them (``src = (dst + 0.5) * n_in / n_out - 0.5``, clamped)."""
    pos = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    pos = np.clip(pos, 0.0, n_in - 1)
    i0 = np.minimum(np.floor(pos).astype(np.int32), max(n_in - 2, 0))
    i1 = np.minimum(i0 + 1, n_in - 1).astype(np.int32)
    w1 = (pos - i0).astype(np.float32)
    return i0, i1, w1


@inline
def _row_sums(src, c, r, out):
    """out[y, x] = sum of src[y, x-r..x+r] (window clipped at the borders) for (h, w * c) arrays of
    ``c`` interleaved channels. Flat indexing and the border cases split off keep the inner
    loops branch-free and vectorisable."""
    h, n = src.shape
    w = n // c
    rx = min(r, w - 1)
    for y in range(h):
        s = src[y]
        t = out[y]
        for k in range(c):
            t[k] = s[k]
        for x in range(1, rx + 1):
            for k in range(c):
                t[k] += s[x * c + k]
        for x in range(1, w):
            o = x * c
            add = (x + r) * c
            sub = (x - r - 1) * c
            if x + r < w and x - r - 1 >= 0:
                for k in range(c):
                    t[o + k] = t[o - c + k] + s[add + k] - s[sub + k]
            elif x + r < w:
                for k in range(c):
                    t[o + k] = t[o - c + k] + s[add + k]
            elif x - r - 1 >= 0:
                for k in range(c):
                    t[o + k] = t[o - c + k] - s[sub + k]
            else:
                for k in range(c):
                    t[o + k] = t[o - c + k]


@inline
def _col_means(rows, c, r, acc, out):
    """out = column sums of radius ``r`` of the row sums ``rows``, divided by the clipped window's
    pixel count: the box mean. (h, w * c) arrays; ``acc`` (w * c,) holds the running sums."""
    h, n = rows.shape
    w = n // c
    ry = min(r, h - 1)
    for i in range(n):
        acc[i] = rows[0, i]
    for y in range(1, ry + 1):
        for i in range(n):
            acc[i] += rows[y, i]
    for y in range(h):
        if y > 0:
            if y + r < h:
                for i in range(n):
                    acc[i] += rows[y + r, i]
            if y - r - 1 >= 0:
                for i in range(n):
                    acc[i] -= rows[y - r - 1, i]
        ny = np.float32(min(y + r, h - 1) - max(y - r, 0) + 1)
        o = out[y]
        for x in range(w):
            inv = _ONE / (np.float32(min(x + r, w - 1) - max(x - r, 0) + 1) * ny)
            for k in range(c):
                o[x * c + k] = acc[x * c + k] * inv


@kernel
def guided_coeffs(guide, p, r, eps, detail, protect, stats, tmp, means, lin, lin_tmp, lin_mean, acc, coef):
    """Coefficients ``coef[y, x] = (a_b, a_g, a_r, b)`` at model resolution, ``q = a . frame_u8 + b``.

    ``guide`` (h, w, 3) uint8 BGR and ``p`` (h, w) float32; ``r`` box radius in model pixels;
    ``eps`` regularisation; ``detail`` and ``protect`` as in the module docstring. Scratch (flat,
    channels interleaved): ``stats``/``tmp``/``means`` (h, w * 14), ``lin``/``lin_tmp``/``lin_mean``
    (h, w * 6), ``acc`` (w * 14,) float32. ``coef`` (h, w, 4).
    """
    h, w = p.shape
    S = N_STATS
    L = N_LIN
    for y in range(h):
        g = guide[y].reshape(w * 3)
        pr = p[y]
        st = stats[y]
        for x in range(w):
            i0 = np.float32(g[3 * x]) * _INV255 - _HALF
            i1 = np.float32(g[3 * x + 1]) * _INV255 - _HALF
            i2 = np.float32(g[3 * x + 2]) * _INV255 - _HALF
            v = pr[x]
            o = S * x
            st[o] = i0
            st[o + 1] = i1
            st[o + 2] = i2
            st[o + 3] = v
            st[o + 4] = i0 * i0
            st[o + 5] = i0 * i1
            st[o + 6] = i0 * i2
            st[o + 7] = i1 * i1
            st[o + 8] = i1 * i2
            st[o + 9] = i2 * i2
            st[o + 10] = i0 * v
            st[o + 11] = i1 * v
            st[o + 12] = i2 * v
            st[o + 13] = v * v
    _row_sums(stats, S, r, tmp)
    _col_means(tmp, S, r, acc, means)
    floor = eps * eps * eps  # det(Cov + eps 1) >= eps^3 in exact arithmetic
    for y in range(h):
        m = means[y]
        li = lin[y]
        for x in range(w):
            o = S * x
            m0, m1, m2, mp = m[o], m[o + 1], m[o + 2], m[o + 3]
            s00 = m[o + 4] - m0 * m0 + eps
            s01 = m[o + 5] - m0 * m1
            s02 = m[o + 6] - m0 * m2
            s11 = m[o + 7] - m1 * m1 + eps
            s12 = m[o + 8] - m1 * m2
            s22 = m[o + 9] - m2 * m2 + eps
            v0 = m[o + 10] - m0 * mp
            v1 = m[o + 11] - m1 * mp
            v2 = m[o + 12] - m2 * mp
            vp = m[o + 13] - mp * mp
            c00 = s11 * s22 - s12 * s12
            c01 = s02 * s12 - s01 * s22
            c02 = s01 * s12 - s02 * s11
            c11 = s00 * s22 - s02 * s02
            c12 = s01 * s02 - s00 * s12
            c22 = s00 * s11 - s01 * s01
            inv = _ONE / max(s00 * c00 + s01 * c01 + s02 * c02, floor)
            a0 = (c00 * v0 + c01 * v1 + c02 * v2) * inv
            a1 = (c01 * v0 + c11 * v1 + c12 * v2) * inv
            a2 = (c02 * v0 + c12 * v1 + c22 * v2) * inv
            q = L * x
            li[q] = a0
            li[q + 1] = a1
            li[q + 2] = a2
            li[q + 3] = mp - a0 * m0 - a1 * m1 - a2 * m2
            li[q + 4] = mp
            # R^2 (branch-free: where p is flat, p - mean p is ~0 and R^2 does not matter)
            explained = a0 * v0 + a1 * v1 + a2 * v2
            li[q + 5] = min(max(explained / max(vp, _TINY), _ZERO), _ONE)
    _row_sums(lin, L, r, lin_tmp)
    _col_means(lin_tmp, L, r, acc, lin_mean)
    for y in range(h):
        lm = lin_mean[y]
        pr = p[y]
        cf = coef[y].reshape(w * 4)
        for x in range(w):
            q = L * x
            l0, l1, l2, l3, l4, l5 = lm[q], lm[q + 1], lm[q + 2], lm[q + 3], lm[q + 4], lm[q + 5]
            v = pr[x]
            wgt = min(_FOUR * v * (_ONE - v) * protect, _ONE) if protect > _ZERO else _ONE
            b = l3 - _HALF * (l0 + l1 + l2) + detail * (_ONE - l5) * (v - l4)
            cf[4 * x] = wgt * l0 * _INV255
            cf[4 * x + 1] = wgt * l1 * _INV255
            cf[4 * x + 2] = wgt * l2 * _INV255
            cf[4 * x + 3] = wgt * b + (_ONE - wgt) * v


@kernel
def widen_coeffs(coef, x0s, x1s, wxs, wide):
    """wide[y, k, :] = coef[y, :, k] resampled to the frame's width (planar rows, so the
    full-resolution pass reads contiguous memory)."""
    lh, lw = coef.shape[0], coef.shape[1]
    ww = wide.shape[2]
    for y in range(lh):
        c = coef[y].reshape(lw * 4)
        d0, d1, d2, d3 = wide[y, 0], wide[y, 1], wide[y, 2], wide[y, 3]
        for x in range(ww):
            i0 = 4 * x0s[x]
            i1 = 4 * x1s[x]
            w1 = wxs[x]
            w0 = _ONE - w1
            d0[x] = w0 * c[i0] + w1 * c[i1]
            d1[x] = w0 * c[i0 + 1] + w1 * c[i1 + 1]
            d2[x] = w0 * c[i0 + 2] + w1 * c[i1 + 2]
            d3[x] = w0 * c[i0 + 3] + w1 * c[i1 + 3]


@kernel
def area_downscale(src, sy, sx, acc, out):
    """out = mean of each ``sy x sx`` block of the uint8 BGR ``src``, rounded (``cv2.resize``
    INTER_AREA for integer factors, which OpenCV runs ~3x slower: 1 ms at 720p -> 256x144).
    ``acc`` (W * 3,) int32 scratch: a block row's column sums, accumulated contiguously."""
    oh, ow = out.shape[0], out.shape[1]
    n = src.shape[1] * 3
    inv = np.float32(1.0) / np.float32(sy * sx)
    for y in range(oh):
        for i in range(n):
            acc[i] = 0
        for yy in range(y * sy, y * sy + sy):
            row = src[yy].reshape(n)
            for i in range(n):
                acc[i] += np.int32(row[i])
        o = out[y].reshape(ow * 3)
        for x in range(ow):
            for c in range(3):
                t = np.int32(0)
                for k in range(sx):
                    t += acc[3 * (x * sx + k) + c]
                o[3 * x + c] = np.uint8(np.float32(t) * inv + _HALF)


@kernel(parallel=True)
def apply_coeffs(frame, wide, y0s, y1s, wys, out):
    """out = clip(a . frame + b, 0, 1) with ``(a, b)`` lerped between the two widened
    coefficient rows of each output row (``y0s/y1s/wys`` from :func:`sample_table`)."""
    hh, ww = out.shape
    for y in prange(hh):
        wy = wys[y]
        c0 = wide[y0s[y]]
        c1 = wide[y1s[y]]
        # the frame row indexed flat: (x, channel) indexing of the uint8 row keeps LLVM from
        # vectorising the loop (5x slower)
        frow = frame[y].reshape(ww * 3)
        orow = out[y]
        for x in range(ww):
            a_b = c0[0, x] + wy * (c1[0, x] - c0[0, x])
            a_g = c0[1, x] + wy * (c1[1, x] - c0[1, x])
            a_r = c0[2, x] + wy * (c1[2, x] - c0[2, x])
            b = c0[3, x] + wy * (c1[3, x] - c0[3, x])
            q = (a_b * np.float32(frow[3 * x]) + a_g * np.float32(frow[3 * x + 1])
                 + a_r * np.float32(frow[3 * x + 2]) + b)
            orow[x] = min(max(q, _ZERO), _ONE)


class GuidedUpsampler:
    """The refinement for one (model size, frame size) pair, buffers allocated once.

    ``run(guide, p, frame, out)``: ``guide`` (lh, lw, 3) uint8 BGR, the image the model saw;
    ``p`` (lh, lw) float32 confidence; ``frame`` (H, W, 3) uint8 BGR; ``out`` (H, W) float32.
    ``radius`` is in model-resolution pixels.
    """

    def __init__(self, low_size: tuple[int, int], full_size: tuple[int, int], radius: int, eps: float,
                 detail: float = 1.0, protect: float = 8.0) -> None:
        lw, lh = low_size
        fw, fh = full_size
        self.low_size, self.full_size = (lw, lh), (fw, fh)
        self.radius = max(1, int(radius))
        self.eps = np.float32(eps)
        self.detail = np.float32(detail)
        self.protect = np.float32(protect)
        self._stats = np.empty((lh, lw * N_STATS), np.float32)
        self._tmp = np.empty((lh, lw * N_STATS), np.float32)
        self._means = np.empty((lh, lw * N_STATS), np.float32)
        self._lin = np.empty((lh, lw * N_LIN), np.float32)
        self._lin_tmp = np.empty((lh, lw * N_LIN), np.float32)
        self._lin_mean = np.empty((lh, lw * N_LIN), np.float32)
        self._acc = np.empty(lw * N_STATS, np.float32)
        self.coef = np.empty((lh, lw, 4), np.float32)
        self._wide = np.empty((lh, 4, fw), np.float32)
        self._rows = sample_table(fh, lh)
        self._cols = sample_table(fw, lw)

    def coefficients(self, guide: np.ndarray, p: np.ndarray) -> np.ndarray:
        """The model-resolution (a_b, a_g, a_r, b) (an internal buffer, rewritten by the next call)."""
        guided_coeffs(guide, p, self.radius, self.eps, self.detail, self.protect, self._stats, self._tmp,
                      self._means, self._lin, self._lin_tmp, self._lin_mean, self._acc, self.coef)
        return self.coef

    def apply(self, frame: np.ndarray, out: np.ndarray) -> None:
        """Full-resolution pass with the last :meth:`coefficients`."""
        widen_coeffs(self.coef, *self._cols, self._wide)
        apply_coeffs(frame, self._wide, *self._rows, out)

    def run(self, guide: np.ndarray, p: np.ndarray, frame: np.ndarray, out: np.ndarray) -> None:
        self.coefficients(guide, p)
        self.apply(frame, out)


@register_warmup
def _warm() -> None:
    rng = np.random.default_rng(0)
    guide = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    p = rng.random((5, 7), dtype=np.float32)
    frame = rng.integers(0, 256, (11, 13, 3), dtype=np.uint8)
    GuidedUpsampler((7, 5), (13, 11), 1, 1e-3).run(guide, p, frame, np.empty((11, 13), np.float32))
    area_downscale(np.ascontiguousarray(frame[:10, :12]), 2, 3, np.empty(36, np.int32), np.empty((5, 4, 3), np.uint8))
