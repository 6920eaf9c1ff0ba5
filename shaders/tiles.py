"""What changed since a frame: block means of a frame's render inputs, for reusing render tiles.

:func:`changed_blocks` reduces the frame (B, G, R), the matte and the circle of confusion to
their means over ``CELL x CELL`` blocks and compares them with the means the block had when it
last changed. Camera noise averages out over a block (sigma / CELL), while a moving object, a
light or a pan moves the means by many levels (``realtime/stages/render_reuse.py``).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .jit import frozen, inline, kernel, register_warmup

CELL = 8      # pixels on a side of a block
STATS = 5     # B, G, R (levels), matte, CoC (pixels)
ROW_STEP = 2  # every other row of a block's colour is read: a change one row tall is blurred away
PLANE_STEP = 4  # ... and every 4th of its matte and disparity (smooth; an edge that moves moves the colour)
# a block whose matte is at least this everywhere is solid subject: its colour is not compared
# (the far field gives it no weight, and shows through it on at most 1 - SOLID_MATTE)
SOLID_MATTE = 0.99
# ... and its CoC only to this (pixels): out of the near field the CoC moves a solid pixel's sharp
# alpha by at most 1 - SOLID_MATTE; the bound keeps the CoC plane the renderer hands back (the
# debug views show it) within a pixel of the current one
SOLID_COC_TOL = 1.0


@inline
def _block_sums(col, cm, cc, cn, cs, x0, n, lim):
    """Sums over the ``n`` columns from ``x0`` of a block row's column sums: B, G, R (int32),
    matte, CoC; the least near reach (from ``lim``) and the least matte (from 1)."""
    sb = np.int32(0)
    sg = np.int32(0)
    sr = np.int32(0)
    sm = np.float32(0.0)
    sc = np.float32(0.0)
    low = lim
    solid = np.float32(1.0)
    for t in range(n):
        x = x0 + t
        sb += np.int32(col[3 * x])
        sg += np.int32(col[3 * x + 1])
        sr += np.int32(col[3 * x + 2])
        sm += cm[x]
        sc += cc[x]
        low = min(low, cn[x])
        solid = min(solid, cs[x])
    return sb, sg, sr, sm, sc, low, solid


@kernel(parallel=True)
def changed_blocks(frame, disparity, matte, coc_params, tol, reset, ref, out):
    """``out[cy, cx]`` (uint8, ``(ceil(h / CELL), ceil(w / CELL))``) = 1 where a ``CELL x CELL``
    block's mean B, G, R, matte or CoC differs from ``ref[cy, cx]`` (``(..., STATS)`` float32) by
    more than ``tol`` (``(STATS,)`` float32); those blocks' references become their current
    means. The CoC is ``aperture * (focus - disparity)`` clamped to +/- lim, as the renderer's
    split computes it (``coc_params`` = ``(focus, aperture, lim, near_below, subject_tol)``
    float32).

    - A block whose CoC plus matte * ``subject_tol`` (the split's near test: the subject counts
      as in front of the focus plane only beyond that tolerance) drops below ``near_below``
      anywhere holds near field, whose spread a small change moves a lot: it counts as changed
      on every frame.
    - A block of solid subject (matte at least SOLID_MATTE on every pixel) has no colour in the
      far field and shows it on at most 1 - SOLID_MATTE of each pixel (the finish draws the
      subject from the current frame): only its matte is compared, and its CoC to the looser
      ``max(tol, SOLID_COC_TOL)`` (outside the near field the CoC changes its sharp alpha by at
      most 1 - SOLID_MATTE too); its colour reference stays as it was.
    - With ``reset`` every block counts as changed.

    Every ``ROW_STEP``-th row of a block's colour and every ``PLANE_STEP``-th of its matte and
    disparity are summed (a third of the memory traffic); the matte's minimum is taken over every
    row, since one unsolid row lets the block's colour into the far field."""
    focus, aperture, lim, near_below, subject_tol = coc_params
    h, w = disparity.shape
    hc, wc = out.shape[0], out.shape[1]
    whole = w // CELL  # blocks CELL wide (a fixed loop LLVM unrolls); the last may be narrower
    for cy in prange(hc):
        # column sums over the block's rows first (contiguous, vectorised; colour in 16 bits,
        # twice the SIMD width of float32 and exact), then per block
        col = np.zeros(3 * w, np.uint16)
        cm = np.zeros(w, np.float32)
        cc = np.zeros(w, np.float32)
        cn = np.full(w, lim, np.float32)
        cs = np.ones(w, np.float32)
        y0 = cy * CELL
        y1 = min(y0 + CELL, h)
        for y in range(y0, y1, ROW_STEP):
            fr = frame[y].reshape(3 * w)
            for i in range(3 * w):
                col[i] += np.uint16(fr[i])
        for y in range(y0, y1):
            mr = matte[y]
            for x in range(w):
                cs[x] = min(cs[x], mr[x])
        for y in range(y0, y1, PLANE_STEP):
            dr = disparity[y]
            mr = matte[y]
            for x in range(w):
                m = mr[x]
                cm[x] += m
                c = min(max(aperture * (focus - dr[x]), -lim), lim)
                cc[x] += c
                cn[x] = min(cn[x], c + min(max(m, np.float32(0.0)), np.float32(1.0)) * subject_tol)
        rr = ref[cy]
        oo = out[cy]
        stat = np.empty(STATS, np.float32)
        rows = (y1 - y0 + ROW_STEP - 1) // ROW_STEP
        rows_p = (y1 - y0 + PLANE_STEP - 1) // PLANE_STEP
        solid_coc = max(tol[4], np.float32(SOLID_COC_TOL))
        for cx in range(wc):
            x0 = cx * CELL
            x1 = x0 + CELL if cx < whole else w
            if cx < whole:  # a constant count: the loop is unrolled
                sb, sg, sr, sm, sc, low, solid = _block_sums(col, cm, cc, cn, cs, x0, CELL, lim)
            else:
                sb, sg, sr, sm, sc, low, solid = _block_sums(col, cm, cc, cn, cs, x0, x1 - x0, lim)
            inv = np.float32(1.0) / np.float32(rows * (x1 - x0))
            inv_p = np.float32(1.0) / np.float32(rows_p * (x1 - x0))
            stat[0] = np.float32(sb) * inv
            stat[1] = np.float32(sg) * inv
            stat[2] = np.float32(sr) * inv
            stat[3] = sm * inv_p
            stat[4] = sc * inv_p
            moved = reset or low < near_below
            if solid >= SOLID_MATTE:
                moved = moved or abs(stat[3] - rr[cx, 3]) > tol[3] or abs(stat[4] - rr[cx, 4]) > solid_coc
            else:
                for k in range(STATS):
                    if abs(stat[k] - rr[cx, k]) > tol[k]:
                        moved = True
            if moved:
                for k in range(STATS):
                    rr[cx, k] = stat[k]
            oo[cx] = moved


@register_warmup
def _warm() -> None:
    h, w = 11, 13
    hc, wc = (h + CELL - 1) // CELL, (w + CELL - 1) // CELL
    params = (np.float32(0.5), np.float32(2.0), np.float32(4.0), np.float32(-0.25), np.float32(3.0))
    # the renderer passes its frame and planes read-only (one signature)
    plane = frozen(np.zeros((h, w), np.float32))
    changed_blocks(frozen(np.zeros((h, w, 3), np.uint8)), plane, plane, params, np.ones(STATS, np.float32), False,
                   np.zeros((hc, wc, STATS), np.float32), np.zeros((hc, wc), np.uint8))
