"""Kernels of the temporal stabiliser (see ``realtime/temporal.py`` and ``docs/temporal.md``).

Three small passes and one full-resolution pass per frame:

1. :func:`tile_luma` - mean level of ``TILE x TILE`` tiles of the frame (all three channels,
   two of the four rows): the motion probe. Averaging 24 values divides independent camera
   noise by ~5 before frames are compared, yet an edge that moves by one pixel still shifts its
   tile's mean by a quarter of its contrast;
2. :func:`luma_histogram` - a coarse histogram of the tile lumas, for the scene-cut test, and
   :func:`difference_histogram` - whose median is the frame's global luma (or disparity)
   change, robust to a moving minority of the frame;
3. :func:`motion_weight` - per tile, how surely the image changed: the tile's luma difference
   to the previous frame less the frame's global change (exposure drift is not motion), ramped
   to [0, 1] and dilated by one tile so pixels at a tile border see moving neighbours;
4. :func:`stabilise` - per pixel, one fused read-modify-write of the matte and disparity
   states: blend factor between the static floor and 1, hysteresis around alpha 0.5, outputs
   (:func:`restart` starts a history from one frame).

Everything is float32 (parameters are passed as float32 so nothing widens to float64), and the
per-pixel pass is branch-free so its rows vectorise.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from .jit import frozen, inline, kernel, register_warmup

TILE_SHIFT = 2
TILE = 1 << TILE_SHIFT  # 4: the motion probe's tile edge in pixels

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)
# the largest float32 below 0.5: a background-side pixel held in the dead band stays < 0.5
_BELOW_HALF = np.nextafter(np.float32(0.5), np.float32(0.0))
# the states are uint16: the averages they hold need no more than 1/32767 (alpha, with the
# side bit) and 1/65535 (disparity), and the full-resolution pass is bound by memory traffic.
# Being integers they also cannot sink into subnormal floats on a perfectly still input.
_MATTE_Q = np.float32(32767.0)
_MATTE_STEP = np.float32(1.0 / 32767.0)
_DISP_Q = np.float32(65535.0)
_DISP_STEP = np.float32(1.0 / 65535.0)
DISP_STEP = _DISP_STEP


def scratch_rows(width: int) -> np.ndarray:
    """The scratch :func:`tile_luma` needs for frames ``width`` pixels wide."""
    return np.empty((numba.config.NUMBA_NUM_THREADS, 3 * width), np.uint16)


def tiles_shape(height: int, width: int) -> tuple[int, int]:
    """Shape of the tile grid for a frame (edge tiles may be partial)."""
    return (height + TILE - 1) >> TILE_SHIFT, (width + TILE - 1) >> TILE_SHIFT


@kernel(parallel=True)
def tile_luma(frame, rows, out):
    """``out[ty, tx]`` = mean of the three channels (levels) over rows 1 and 3 of the frame's
    ``TILE x TILE`` tile (reading every other row halves the probe's memory traffic; 24 values
    still divide independent noise by ~5); a tile cut short by the frame's bottom edge averages
    all its rows, one cut by the right edge the columns it has. ``rows`` is ``(threads, 3 *
    width)`` uint16 scratch (one row per Numba thread, so it stays in cache): the column sums of
    a tile row, so the loop over bytes vectorises."""
    h, w = frame.shape[0], frame.shape[1]
    th, tw = out.shape
    flat = frame.reshape(h, w * 3)
    for ty in prange(th):
        y0 = ty << TILE_SHIFT
        y1 = min(y0 + TILE, h)
        acc = rows[numba.get_thread_id()]
        if y1 - y0 == TILE:
            r1 = flat[y0 + 1]
            r3 = flat[y0 + 3]
            for i in range(w * 3):
                acc[i] = np.uint16(r1[i]) + np.uint16(r3[i])
            n = 2
        else:
            r0 = flat[y0]
            for i in range(w * 3):
                acc[i] = np.uint16(r0[i])
            for y in range(y0 + 1, y1):
                r = flat[y]
                for i in range(w * 3):
                    acc[i] += np.uint16(r[i])
            n = y1 - y0
        scale = np.float32(1.0) / np.float32(n * 3 * TILE)
        full = w >> TILE_SHIFT
        for tx in range(full):
            i0 = tx * (3 * TILE)
            total = 0
            for c in range(3 * TILE):  # constant trip count: unrolled
                total += np.int32(acc[i0 + c])
            out[ty, tx] = np.float32(total) * scale
        if full < tw:  # the last, narrower tile
            i0 = full * (3 * TILE)
            total = 0
            for i in range(i0, w * 3):
                total += np.int32(acc[i])
            out[ty, full] = np.float32(total) / np.float32(n * (w * 3 - i0))


@kernel
def luma_histogram(luma, step, out):
    """``out[i]`` = how many tile lumas, sampled every ``step`` rows and columns, fall in bin
    ``i`` of ``len(out)`` equal bins over 0..256 (int32 counts)."""
    nb = out.shape[0]
    scale = np.float32(nb) / np.float32(256.0)
    for i in range(nb):
        out[i] = 0
    h, w = luma.shape
    for y in range(0, h, step):
        for x in range(0, w, step):
            out[min(max(int(luma[y, x] * scale), 0), nb - 1)] += 1


@kernel
def difference_histogram(a, b, b_scale, step, lo, inv_bin, out):
    """``out[i]`` = how many of ``a - b * b_scale``, sampled every ``step`` rows and columns, fall
    in bin ``i`` (bin width ``1 / inv_bin`` from ``lo``; values outside land in the end bins).
    Its median is a robust global offset: a moving minority of the frame does not pull it.
    (``b_scale`` reads a quantised state such as the uint16 disparity.)"""
    nb = out.shape[0]
    for i in range(nb):
        out[i] = 0
    h, w = a.shape
    for y in range(0, h, step):
        for x in range(0, w, step):
            i = int((a[y, x] - np.float32(b[y, x]) * b_scale - lo) * inv_bin)
            out[min(max(i, 0), nb - 1)] += 1


@inline
def _ramp(v, lo, inv_span):
    """0 up to ``lo``, 1 from ``lo + 1 / inv_span`` on, linear between."""
    return min(max((v - lo) * inv_span, _ZERO), _ONE)


@kernel(parallel=True)
def motion_weight(cur, prev, shift, lo, inv_span, vmax, out):
    """Per tile: the ramp of ``|cur - prev - shift|`` (levels) from ``lo`` to ``lo + 1/inv_span``,
    then the maximum over the 3x3 tile neighbourhood, written once per pixel column:
    ``out[ty, x]`` (shape tiles high x pixels wide) holds the weight of the tile over column
    ``x``, so the full-resolution pass reads it contiguously. ``vmax`` is tile-grid scratch.
    One parallel region (a second one for a separate ramp pass cost more than it saved); each
    tile's ramp is recomputed for the three rows that need it instead of being stored."""
    h, w = cur.shape
    width = out.shape[1]
    for y in prange(h):
        ya = max(y - 1, 0)
        yb = min(y + 1, h - 1)
        for x in range(w):
            d = max(max(abs(cur[ya, x] - prev[ya, x] - shift), abs(cur[yb, x] - prev[yb, x] - shift)),
                    abs(cur[y, x] - prev[y, x] - shift))
            vmax[y, x] = _ramp(d, lo, inv_span)
        for x in range(width):
            t = x >> TILE_SHIFT
            out[y, x] = max(max(vmax[y, max(t - 1, 0)], vmax[y, t]), vmax[y, min(t + 1, w - 1)])


@kernel(parallel=True)
def restart(matte, disp, state_m, state_d, out_m, out_d):
    """First frame of a history: the state is the input (encoded as :func:`stabilise` keeps it),
    the side is the half of 0.5 the input is on, and the outputs are the inputs."""
    h, w = matte.shape
    for y in prange(h):
        for x in range(w):
            m = matte[y, x]
            state_m[y, x] = _encode_matte(m, np.float32(m >= _HALF))
            state_d[y, x] = _encode_disp(disp[y, x])
            out_m[y, x] = m
            out_d[y, x] = disp[y, x]


@inline
def _encode_matte(alpha, side):
    """uint16: alpha in 1/32767 steps in bits 15..1, the side of 0.5 (1 = person) in bit 0."""
    q = np.int32(min(max(alpha, _ZERO), _ONE) * _MATTE_Q + _HALF)
    return np.uint16((q << 1) | np.int32(side))


@inline
def _encode_disp(d):
    return np.uint16(np.int32(min(max(d, _ZERO), _ONE) * _DISP_Q + _HALF))


@kernel(parallel=True)
def stabilise(matte, disp, motion, lean, k_matte, k_disp, m_lo, m_inv, d_lo, d_inv, d_shift, band,
              state_m, state_d, out_m, out_d):
    """One stabiliser step for every pixel (all scalars float32).

    ``motion`` holds the tiles' follow weights in [0, 1] per tile row and pixel column (see
    :func:`motion_weight`), ``lean`` a floor under them for the whole frame (a large share of it
    moving). The matte's follow weight ``f`` is the largest of its tile's motion, ``lean`` and
    the ramp of ``|matte - s_m|`` (from ``m_lo``, slope ``m_inv``); the disparity's is the
    larger of ``f`` (a moved person moves its depth too) and the ramp of ``|disp - s_d -
    d_shift|`` (``d_lo``, ``d_inv``). Each state moves toward its input by ``k + (1 - k) *
    weight`` with ``k`` the plane's static floor, so a still, agreeing pixel averages over ~1/k
    frames and a changed one follows at once. ``d_shift``, the disparity's global change this
    frame (the depth stage re-ranging its output), is applied to the disparity state at once:
    only local jitter is smoothed, global drift is not lagged.

    Hysteresis: the side of 0.5 a pixel is on flips only when its matte state leaves the dead
    band ``0.5 +/- band * (1 - f)``; inside it the output is held on the side's half of 0.5.
    The state itself is never held, so the hold cannot bias the average.

    State layout (compact: this pass is bound by memory traffic): ``state_m`` uint16 holds
    alpha in 1/32767 steps and the side in bit 0, ``state_d`` uint16 the disparity in 1/65535
    steps. The outputs are the unrounded new values.
    """
    h, w = matte.shape
    for y in prange(h):
        moved = motion[y >> TILE_SHIFT]
        for x in range(w):
            qm = np.int32(state_m[y, x])
            was = np.float32(qm & 1)
            sm = np.float32(qm >> 1) * _MATTE_STEP
            m = matte[y, x]
            em = m - sm
            f = max(max(moved[x], lean), _ramp(abs(em), m_lo, m_inv))
            d = disp[y, x]
            sd = np.float32(np.int32(state_d[y, x])) * _DISP_STEP + d_shift
            ed = d - sd
            fd = max(f, _ramp(abs(ed), d_lo, d_inv))
            sm = sm + (k_matte + (_ONE - k_matte) * f) * em
            sd = min(max(sd + (k_disp + (_ONE - k_disp) * fd) * ed, _ZERO), _ONE)
            # the threshold sits band above 0.5 on the background side, band below on the
            # person side; written as arithmetic (no branches) so the loop vectorises
            b = band * (_ONE - f)
            now = np.float32(sm >= _HALF + b - (b + b) * was)
            state_m[y, x] = _encode_matte(sm, now)
            lo = min(sm, _BELOW_HALF)
            out_m[y, x] = lo + now * (max(sm, _HALF) - lo)
            state_d[y, x] = _encode_disp(sd)
            out_d[y, x] = sd


@register_warmup
def _warm() -> None:
    f32 = np.float32
    frame = np.zeros((5, 7, 3), np.uint8)
    lum = np.empty(tiles_shape(5, 7), np.float32)
    tile_luma(frozen(frame), scratch_rows(7), lum)  # the stage passes frames read-only
    luma_histogram(lum, 1, np.empty(8, np.int32))
    wgt = np.empty((lum.shape[0], 7), np.float32)
    motion_weight(lum, lum, f32(0.0), f32(1.0), f32(1.0), np.empty_like(lum), wgt)
    difference_histogram(lum, lum, f32(1.0), 2, f32(-1.0), f32(4.0), np.empty(8, np.int32))
    # the pipeline hands the matte and the disparity on read-only: Numba compiles those apart
    m = np.zeros((5, 7), np.float32)
    m.flags.writeable = False
    difference_histogram(m, np.zeros((5, 7), np.uint16), _DISP_STEP, 2, f32(-1.0), f32(4.0),
                         np.empty(8, np.int32))
    sm, sd = np.empty((5, 7), np.uint16), np.empty((5, 7), np.uint16)
    out_m, out_d = np.empty((5, 7), np.float32), np.empty((5, 7), np.float32)
    restart(m, m, sm, sd, out_m, out_d)
    stabilise(m, m, wgt, f32(0.0), f32(0.1), f32(0.1), f32(0.2), f32(4.0), f32(0.2), f32(4.0), f32(0.0), f32(0.1),
              sm, sd, out_m, out_d)
