"""Matte refinement kernels: a fast colour guided filter that keeps the model's own detail.

The segmentation model's confidence ``p`` comes at model resolution (e.g. 256x144); the matte
is needed at the frame's. Bilinear upsampling gives a soft edge that is off by a model pixel or
two (5 px at 720p). A guided filter (He et al.) models the matte locally as a linear function of
the colour, ``q = a . I + b``, so the edge lands on the frame's own colour edge and soft hair
stays soft. The *fast* variant (He & Sun 2015) fits ``a, b`` on a subsampled guide, upsamples
them bilinearly and applies them to the full-resolution image. We do that twice: the local fits
run at half the model resolution (box means are smooth: a quarter of the pixels costs about
0.001 boundary F on DAVIS, see ``docs/matte.md``), their box means are upsampled to model
resolution, where the per-pixel terms below are folded in, and the resulting coefficients are
upsampled to the frame.

Three additions over the textbook filter, all folded into ``(a, b)`` per model pixel:

- **detail**: a guided filter box-smooths ``p`` twice, so thin or faint parts of the person (an
  arm seen edge-on, a head against a similar background) average away. Where the colour does not
  explain ``p`` (low coefficient of determination ``R^2`` of the local fit) the part of ``p`` the
  smoothing removed is added back: ``b += detail * (1 - R^2) * (p - mean(mean p))``.
- **protect**: where the model is sure (``p`` near 0 or 1) its value is kept: the blend weight
  toward the filter is ``w = min(1, 4 p (1 - p) protect)``. This stops the classic guided-filter
  holes where the person has a background-like colour next to an edge (grey hair highlights
  against a light wall). A confidence within :data:`SETTLE` of 0 or 1 counts as exactly 0 or 1,
  so most model pixels get ``a = 0`` exactly; the output moves by at most ``SETTLE (1 + 4
  protect)``, under one 8-bit level at the default protect.
- **contrast** ``k``: the matte is ``k (q - 1/2) + 1/2``, clipped: a narrower soft band around
  the same alpha-1/2 outline (``a`` times ``k``, ``b`` moved to match).

:class:`FineGuidedUpsampler` runs all of this on a guide finer than the model's output (the
frame area-averaged, the confidence upsampled bilinearly to it): "model resolution" below is
then that guide's.

Passes, all on preallocated buffers (:class:`GuidedUpsampler` owns them):

1. :func:`guided_coeffs` - serial, at half and full model resolution: the 14 per-pixel
   statistics of the centred guide and ``p`` (products included) averaged over 2x2 blocks, their
   box means (window clipped at the border), the 3x3 colour regression per half-resolution
   pixel, box means of ``(a, b, mean p, R^2)``, then per model pixel their bilinear upsampling
   and the fold into planar ``(a_b, a_g, a_r, b)`` for the BGR frame;
2. :func:`plan_spans` - per pair of coefficient rows, the runs of output columns where the
   four surrounding model pixels all have ``a = 0`` and the same ``b`` (the matte there is that
   constant) and the runs that need computing;
3. :func:`widen_coeffs` - the coefficient rows resampled to the frame's width, only where a
   computed run needs them;
4. :func:`apply_coeffs` - at full resolution, ONE parallel pass over rows: constant runs are
   filled, computed runs blend the two widened rows and take the dot with the BGR pixel read
   straight from the frame, clipped to [0, 1].

Inner loops write one array each from a few inputs and start at index 0 of a view: LLVM then
vectorises them (with more written arrays its runtime alias checks give up, and a loop starting
at a variable index was not vectorised either; both measured 5-18x slower).

Sampling positions match ``cv2.resize`` INTER_LINEAR (pixel centres aligned). The guide is
centred (``I/255 - 0.5``) so float32 variances keep their digits.
"""

from __future__ import annotations

import numpy as np

from .area import AreaDownscaler, area_downscale, area_resample, area_table  # noqa: F401 (one import path)
from .jit import frozen, inline, kernel, register_warmup
from .matte_apply import apply_coeffs, plan_spans, widen_coeffs  # noqa: F401

N_STATS = 14  # I (3), p, I_i I_j for i <= j (6), I p (3), p p
N_LIN = 6     # per window: a (3), b, mean p, R^2
N_SCRATCH = 9  # scratch rows of model width: 8 for the statistics, 9 for the fold
# the products among (I_0, I_1, I_2, p) in the order of the statistics after the 4 means
_PAIRS = np.array([(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2), (0, 3), (1, 3), (2, 3), (3, 3)], np.int64)
SETTLE = 1e-4  # confidence this close to 0 or 1 is taken as certain

_INV255 = np.float32(1.0 / 255.0)
_HALF = np.float32(0.5)
_QUARTER = np.float32(0.25)
_THREE_QUARTERS = np.float32(0.75)
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


# -- coefficients at model resolution ------------------------------------------------------------

@inline
def _half_stats(guide, p, rows, stats):
    """stats (14, hh, hw): the 2x2 block means of the centred guide, of ``p`` and of their
    products (a block past an odd edge repeats the last row or column), i.e. each statistic
    summed over the model pixels exactly and sampled every other pixel. ``rows`` (8, lw + 1)
    scratch: the block's two rows, channels and ``p`` planar."""
    lh, lw = p.shape
    hh, hw = stats.shape[1], stats.shape[2]
    for yy in range(hh):
        for half in range(2):
            y = min(2 * yy + half, lh - 1)
            g = guide[y].reshape(lw * 3)
            for c in range(3):
                o = rows[4 * half + c]
                for x in range(lw):
                    o[x] = np.float32(g[3 * x + c]) * _INV255 - _HALF
            o = rows[4 * half + 3]
            pr = p[y]
            for x in range(lw):
                o[x] = pr[x]
            if 2 * hw > lw:
                for c in range(4):
                    rows[4 * half + c, lw] = rows[4 * half + c, lw - 1]
        for c in range(4):
            ua = rows[c]
            ub = rows[4 + c]
            o = stats[c, yy]
            for x in range(hw):
                o[x] = _QUARTER * (ua[2 * x] + ua[2 * x + 1] + ub[2 * x] + ub[2 * x + 1])
        for q in range(_PAIRS.shape[0]):
            i, j = _PAIRS[q, 0], _PAIRS[q, 1]
            ia = rows[i]
            ja = rows[j]
            ib = rows[4 + i]
            jb = rows[4 + j]
            o = stats[4 + q, yy]
            for x in range(hw):
                o[x] = _QUARTER * (ia[2 * x] * ja[2 * x] + ia[2 * x + 1] * ja[2 * x + 1]
                                   + ib[2 * x] * jb[2 * x] + ib[2 * x + 1] * jb[2 * x + 1])


@inline
def _box_mean(src, r, accp, part, invx, out):
    """out[k] = mean of src[k] over the (2r+1)^2 window clipped at the borders, planar (K, h, w):
    running column sums down the rows into ``accp`` (w + 2r,) between r zeros each side, then per
    row the sum of 2r+1 neighbours from sums of 2, 4, 8... (``part`` (2, w + 2r) scratch): about
    2 log2(2r+1) vectorised passes instead of 2r."""
    nk, h, w = src.shape
    ry = min(r, h - 1)
    wp = w + 2 * r
    for x in range(w):
        invx[x] = _ONE / np.float32(min(x + r, w - 1) - max(x - r, 0) + 1)
    for x in range(wp):
        accp[x] = _ZERO
    acc = accp[r:r + w]
    for k in range(nk):
        s = src[k]
        a = s[0]
        for x in range(w):
            acc[x] = a[x]
        for y in range(1, ry + 1):
            a = s[y]
            for x in range(w):
                acc[x] += a[x]
        for y in range(h):
            if y > 0:
                if y + r < h:
                    a = s[y + r]
                    for x in range(w):
                        acc[x] += a[x]
                if y - r - 1 >= 0:
                    a = s[y - r - 1]
                    for x in range(w):
                        acc[x] -= a[x]
            o = out[k, y]
            for x in range(w):
                o[x] = _ZERO
            # o[x] = sum of accp[x .. x + 2r]: the binary digits of 2r+1 pick the partial sums
            cur = accp  # cur[x] = sum of `span` consecutive accp from x
            span = 1
            done = 0
            rest = 2 * r + 1
            buf = 0
            while True:
                if rest & 1:
                    c = cur[done:]
                    for x in range(w):
                        o[x] += c[x]
                    done += span
                rest >>= 1
                if rest == 0:
                    break
                n = wp - 2 * span + 1
                nxt = part[buf]
                ahead = cur[span:]
                for x in range(n):
                    nxt[x] = cur[x] + ahead[x]
                cur = nxt[:n]
                buf = 1 - buf
                span *= 2
            iy = _ONE / np.float32(min(y + r, h - 1) - max(y - r, 0) + 1)
            for x in range(w):
                o[x] *= invx[x] * iy


@inline
def _regress(m, eps, lin):
    """Per window: the 3x3 colour regression of ``p`` by cofactors -> (a, b, mean p, R^2)."""
    h, w = m.shape[1], m.shape[2]
    floor = eps * eps * eps  # det(Cov + eps 1) >= eps^3 in exact arithmetic
    for y in range(h):
        m0r, m1r, m2r, mpr = m[0, y], m[1, y], m[2, y], m[3, y]
        m4r, m5r, m6r, m7r, m8r, m9r = m[4, y], m[5, y], m[6, y], m[7, y], m[8, y], m[9, y]
        m10r, m11r, m12r, m13r = m[10, y], m[11, y], m[12, y], m[13, y]
        l0, l1, l2, l3, l4, l5 = lin[0, y], lin[1, y], lin[2, y], lin[3, y], lin[4, y], lin[5, y]
        for x in range(w):
            m0 = m0r[x]
            m1 = m1r[x]
            m2 = m2r[x]
            mp = mpr[x]
            s00 = m4r[x] - m0 * m0 + eps
            s01 = m5r[x] - m0 * m1
            s02 = m6r[x] - m0 * m2
            s11 = m7r[x] - m1 * m1 + eps
            s12 = m8r[x] - m1 * m2
            s22 = m9r[x] - m2 * m2 + eps
            v0 = m10r[x] - m0 * mp
            v1 = m11r[x] - m1 * mp
            v2 = m12r[x] - m2 * mp
            vp = m13r[x] - mp * mp
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
            l0[x] = a0
            l1[x] = a1
            l2[x] = a2
            l3[x] = mp - a0 * m0 - a1 * m1 - a2 * m2
            l4[x] = mp
            # R^2 (branch-free: where p is flat, p - mean p is ~0 and R^2 does not matter)
            l5[x] = min(max((a0 * v0 + a1 * v1 + a2 * v2) / max(vp, _TINY), _ZERO), _ONE)


@inline
def _fold(lm, p, detail, protect, contrast, rgb, lmw, rows, coef):
    """coef (lh, 4, lw): the half-resolution window means ``lm`` (6, hh, hw) upsampled
    bilinearly (model pixel ``x`` sits at half-resolution ``x / 2 - 1/4``) and folded with the
    per-pixel detail and protect terms and the contrast about 1/2 into ``(a_b, a_g, a_r, b)``
    for the uint8 BGR frame.
    ``lmw`` (6, hh, lw) and ``rows`` (9, lw) scratch."""
    lh, lw = p.shape
    hh, hw = lm.shape[1], lm.shape[2]
    for k in range(6):
        for yy in range(hh):
            hr = lm[k, yy]
            mr = lmw[k, yy]
            mr[0] = hr[0]
            odd = mr[1:]
            for x in range(hw - 1):
                u = hr[x]
                v = hr[x + 1]
                odd[2 * x] = _THREE_QUARTERS * u + _QUARTER * v
                odd[2 * x + 1] = _QUARTER * u + _THREE_QUARTERS * v
            if 2 * hw == lw:
                mr[lw - 1] = hr[hw - 1]
    settle = np.float32(SETTLE)
    high = _ONE - settle
    vs, wg, bq = rows[0], rows[1], rows[2]
    l0, l1, l2, l3, l4, l5 = rows[3], rows[4], rows[5], rows[6], rows[7], rows[8]
    ib = 2 if rgb else 0  # the guide channel that multiplies the frame's blue
    for y in range(lh):
        pos = max(np.float32(y) * _HALF - _QUARTER, _ZERO)
        y0 = min(int(pos), max(hh - 2, 0))
        y1 = min(y0 + 1, hh - 1)
        wy = min(pos - np.float32(y0), _ONE)
        for k in range(6):
            a = lmw[k, y0]
            b = lmw[k, y1]
            o = rows[3 + k]
            for x in range(lw):
                o[x] = a[x] + wy * (b[x] - a[x])
        pr = p[y]
        for x in range(lw):
            v = pr[x]
            vs[x] = _ZERO if v <= settle else (_ONE if v >= high else v)
        for x in range(lw):
            v = vs[x]
            wg[x] = min(_FOUR * v * (_ONE - v) * protect, _ONE) if protect > _ZERO else _ONE
        # the contrast k about 1/2, k (q - 1/2) + 1/2, scales a and moves b
        ka = contrast * _INV255
        kb = _HALF - _HALF * contrast
        for x in range(lw):
            bq[x] = l3[x] - _HALF * (l0[x] + l1[x] + l2[x]) + detail * (_ONE - l5[x]) * (vs[x] - l4[x])
        cb = coef[y, 0]
        cg = coef[y, 1]
        cr = coef[y, 2]
        c3 = coef[y, 3]
        lb = rows[3 + ib]
        lr = rows[5 - ib]
        for x in range(lw):
            cb[x] = wg[x] * ka * lb[x]
        for x in range(lw):
            cg[x] = wg[x] * ka * l1[x]
        for x in range(lw):
            cr[x] = wg[x] * ka * lr[x]
        for x in range(lw):
            c3[x] = contrast * (wg[x] * bq[x] + (_ONE - wg[x]) * vs[x]) + kb


@kernel
def guided_coeffs(guide, p, r, eps, detail, protect, contrast, rgb, stats, means, lin, lin_mean, accp, part, invx,
                  lmw, rows, coef):
    """Planar coefficients ``coef[y, :, x] = (a_b, a_g, a_r, b)`` at model resolution,
    ``q = a . frame_u8 + b`` for the BGR frame.

    ``guide`` (lh, lw, 3) uint8, RGB if ``rgb`` else BGR, and ``p`` (lh, lw) float32; ``r`` box
    radius in half-resolution pixels; ``eps`` regularisation; ``detail``, ``protect`` and
    ``contrast`` as in the module docstring. Scratch: ``stats``/``means`` (14, hh, hw),
    ``lin``/``lin_mean`` (6, hh, hw) with ``hh, hw = ceil(lh / 2), ceil(lw / 2)``; ``accp`` (hw + 2r,), ``part`` (2, hw + 2r),
    ``invx`` (hw,); ``lmw`` (6, hh, lw); ``rows`` (9, lw + 1). ``coef`` (lh, 4, lw).
    """
    _half_stats(guide, p, rows, stats)
    _box_mean(stats, r, accp, part, invx, means)
    _regress(means, eps, lin)
    _box_mean(lin, r, accp, part, invx, lin_mean)
    _fold(lin_mean, p, detail, protect, contrast, rgb, lmw, rows, coef)


@kernel
def smooth_coeffs(coef, tmp):
    """A 3x3 box mean of each coefficient plane (clamped at the borders), written back to
    ``coef`` (lh, 4, lw); ``tmp`` same shape, scratch. Computed as ``c + mean(n - c)`` over the
    neighbours ``n``: a patch whose neighbours all hold the same value keeps it exactly (the
    full-resolution pass fills those, and a certain confidence stays exactly 0 or 1)."""
    lh, nk, lw = coef.shape
    ninth = np.float32(1.0 / 9.0)
    for y in range(lh):
        for k in range(nk):
            o = tmp[y, k]
            c = coef[y, k]
            for x in range(lw):
                o[x] = _ZERO
            for yy in (max(y - 1, 0), y, min(y + 1, lh - 1)):
                r = coef[yy, k]
                for x in range(lw):
                    o[x] += r[x] - c[x]
                # left neighbour (the first column's is itself), then the right one
                o[0] += r[0] - c[0]
                if lw > 1:
                    rl = r[:lw - 1]
                    ol = o[1:]
                    cl = c[1:]
                    for x in range(lw - 1):
                        ol[x] += rl[x] - cl[x]
                    rr = r[1:]
                    orr = o[:lw - 1]
                    cr = c[:lw - 1]
                    for x in range(lw - 1):
                        orr[x] += rr[x] - cr[x]
                o[lw - 1] += r[lw - 1] - c[lw - 1]
            for x in range(lw):
                o[x] = c[x] + o[x] * ninth
    for y in range(lh):
        for k in range(nk):
            d = coef[y, k]
            t = tmp[y, k]
            for x in range(lw):
                d[x] = t[x]


class GuidedUpsampler:
    """The refinement for one (model size, frame size) pair, buffers allocated once.

    ``run(guide, p, frame, out)``: ``guide`` (lh, lw, 3) uint8, the image the model saw (RGB, or
    BGR with ``rgb_guide=False``); ``p`` (lh, lw) float32 confidence; ``frame`` (H, W, 3) uint8
    BGR; ``out`` (H, W) float32. ``radius`` is in model-resolution pixels (the local fits run at
    half that resolution with half that radius, at least 1).
    """

    def __init__(self, low_size: tuple[int, int], full_size: tuple[int, int], radius: int, eps: float,
                 detail: float = 1.0, protect: float = 8.0, contrast: float = 1.0, *,
                 rgb_guide: bool = True, smooth: bool = False) -> None:
        lw, lh = low_size
        fw, fh = full_size
        self.low_size, self.full_size = (lw, lh), (fw, fh)
        self.radius = max(1, int(radius))
        self.half_radius = max(1, int(round(self.radius / 2)))
        self.eps = np.float32(eps)
        self.detail = np.float32(detail)
        self.protect = np.float32(protect)
        self.contrast = np.float32(contrast)
        self.rgb_guide = bool(rgb_guide)
        self.smooth = bool(smooth)
        hh, hw = (lh + 1) // 2, (lw + 1) // 2
        self._stats = np.empty((N_STATS, hh, hw), np.float32)
        self._means = np.empty((N_STATS, hh, hw), np.float32)
        self._lin = np.empty((N_LIN, hh, hw), np.float32)
        self._lin_mean = np.empty((N_LIN, hh, hw), np.float32)
        self._accp = np.empty(hw + 2 * self.half_radius, np.float32)
        self._part = np.empty((2, hw + 2 * self.half_radius), np.float32)
        self._invx = np.empty(hw, np.float32)
        self._lmw = np.empty((N_LIN, hh, lw), np.float32)
        self._rows = np.empty((N_SCRATCH, lw + 1), np.float32)
        self.coef = np.empty((lh, 4, lw), np.float32)
        self._coef_tmp = np.empty((lh, 4, lw), np.float32) if self.smooth else None
        self._rows_table = sample_table(fh, lh)
        self._cols_table = sample_table(fw, lw)
        npy, npx = max(lh - 1, 1), max(lw - 1, 1)
        x0s = self._cols_table[0]
        self._jstart = np.searchsorted(x0s, np.arange(npx), side="left").astype(np.int32)
        self._jend = np.searchsorted(x0s, np.arange(npx), side="right").astype(np.int32)
        self._zero = np.empty((lh, lw), np.bool_)
        self._key = np.empty(npx, np.float32)
        self.spans = np.empty((npy, npx, 2), np.int32)
        self.values = np.empty((npy, npx), np.float32)
        self.nspans = np.empty(npy, np.int32)
        self._wspans = np.empty((lh, npx, 2), np.int32)
        self._nwspans = np.empty(lh, np.int32)
        self._wide = np.zeros((lh, 4, fw), np.float32)

    def coefficients(self, guide: np.ndarray, p: np.ndarray) -> np.ndarray:
        """The model-resolution planar (a_b, a_g, a_r, b), shape (lh, 4, lw) (an internal buffer,
        rewritten by the next call)."""
        guided_coeffs(guide, p, self.half_radius, self.eps, self.detail, self.protect, self.contrast, self.rgb_guide,
                      self._stats, self._means, self._lin, self._lin_mean, self._accp, self._part, self._invx,
                      self._lmw, self._rows, self.coef)
        if self.smooth:
            smooth_coeffs(self.coef, self._coef_tmp)
        return self.coef

    def apply(self, frame: np.ndarray, out: np.ndarray) -> None:
        """Full-resolution pass with the last :meth:`coefficients`."""
        plan_spans(self.coef, self._jstart, self._jend, self._zero, self._key, self.spans, self.values,
                   self.nspans, self._wspans, self._nwspans)
        widen_coeffs(self.coef, *self._cols_table, self._wspans, self._nwspans, self._wide)
        apply_coeffs(frozen(frame), self._wide, *self._rows_table, self.spans, self.values, self.nspans, out)

    def run(self, guide: np.ndarray, p: np.ndarray, frame: np.ndarray, out: np.ndarray) -> None:
        self.coefficients(guide, p)
        self.apply(frame, out)


class FineGuidedUpsampler:
    """:class:`GuidedUpsampler` on a guide finer than the model's output: the frame area-averaged
    to ``fit_size`` (RGB, :class:`AreaDownscaler`) and the confidence upsampled bilinearly to it
    (``cv2.resize``, pixel centres aligned as everywhere here). Same interface: ``run(guide, p,
    frame, out)`` with the model's input ``guide`` (unused: the frame's own area mean is the finer
    guide) and confidence ``p`` at ``low_size``; ``radius`` in ``fit_size`` pixels. Buffers
    allocated once; ``fit_size`` at most ``full_size``."""

    def __init__(self, low_size: tuple[int, int], fit_size: tuple[int, int], full_size: tuple[int, int], radius: int,
                 eps: float, detail: float = 1.0, protect: float = 8.0, contrast: float = 1.0, *,
                 smooth: bool = False) -> None:
        import cv2

        self._cv2 = cv2
        gw, gh = fit_size
        self.low_size, self.fit_size, self.full_size = tuple(low_size), (gw, gh), tuple(full_size)
        self.inner = GuidedUpsampler((gw, gh), full_size, radius, eps, detail, protect, contrast, rgb_guide=True,
                                     smooth=smooth)
        self._down = AreaDownscaler(full_size, (gw, gh))
        self._guide = np.empty((gh, gw, 3), np.uint8)
        self._p = np.empty((gh, gw), np.float32)

    @property
    def coef(self) -> np.ndarray:
        return self.inner.coef

    def _fine_p(self, p: np.ndarray) -> np.ndarray:
        self._cv2.resize(p, self.fit_size, dst=self._p, interpolation=self._cv2.INTER_LINEAR)
        return self._p

    def coefficients(self, guide: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Coefficients at ``fit_size`` with no frame at hand: the model-size RGB ``guide`` is
        enlarged bilinearly (:meth:`run` uses the frame's area mean instead)."""
        self._cv2.resize(guide, self.fit_size, dst=self._guide, interpolation=self._cv2.INTER_LINEAR)
        return self.inner.coefficients(self._guide, self._fine_p(p))

    def apply(self, frame: np.ndarray, out: np.ndarray) -> None:
        self.inner.apply(frame, out)

    def run(self, guide: np.ndarray, p: np.ndarray, frame: np.ndarray, out: np.ndarray) -> None:
        self._down.run(frame, self._guide)
        self.inner.coefficients(self._guide, self._fine_p(p))
        self.inner.apply(frame, out)


@register_warmup
def _warm() -> None:
    rng = np.random.default_rng(0)
    guide = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    p = rng.random((5, 7), dtype=np.float32)
    frame = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    out = np.empty((10, 12), np.float32)
    # the frame goes to the kernels read-only, writable or not (one signature)
    GuidedUpsampler((7, 5), (12, 10), 1, 1e-3).run(guide, p, frame, out)
    GuidedUpsampler((7, 5), (12, 10), 1, 1e-3, smooth=True).run(guide, p, frame, out)
    FineGuidedUpsampler((7, 5), (9, 6), (12, 10), 1, 1e-3).run(guide, p, frame, out)

