"""Disk gather over row prefix sums: the aperture shapes, the prefix sums, the far radius and the
gathers of the far and near layers (steps 2 and 3 of :mod:`shaders.bokeh`).

For each layer pixel, the sum over a disk (or polygon) of per-pixel radius is one prefix difference
per disk row: cost linear in the radius. A fractional radius ``K + t`` blends the shapes of radius K
and K+1 (both come from the same row loop), so the blur grows smoothly. Consecutive pixels with the
same ``K`` are done as one run so the row loop runs over contiguous memory (vectorised).

Shapes: ``wt[K, d + D]`` is the half-width (pixels) of row ``d`` of shape K, -1 = empty row.
"""

from __future__ import annotations

import math

import numpy as np
from numba import get_thread_id, prange

from .color import encode_bits
from .jit import inline, kernel


RUN = 512   # longest run of pixels gathered together (accumulators stay in L1)


def shape_table(kmax: int, blades: int = 0) -> np.ndarray:
    """Row half-widths of the aperture shapes of radius 0..kmax+1: ``(kmax + 2, 2 D + 1)`` int32.

    Shape K holds the pixels whose centre lies inside the disk of radius K (or, with
    ``blades >= 3``, inside the regular polygon inscribed in that disk, one vertex up). A radius
    ``K + t`` blends shapes K and K+1, so its support ends within ``K + 1 <= r + 1`` and its
    full-weight core reaches ``K >= r - 1``.
    """
    d_max = kmax + 2
    wt = np.full((kmax + 2, 2 * d_max + 1), -1, np.int32)
    for k in range(kmax + 2):
        rr = float(k)
        for d in range(-d_max, d_max + 1):
            hw = _polygon_half_width(rr, d, blades) if blades >= 3 else (
                math.sqrt(rr * rr - d * d) if abs(d) <= rr else -1.0)
            if hw >= 0.0:
                wt[k, d + d_max] = int(math.floor(hw + 1e-9))
    return wt


def _polygon_half_width(rr: float, d: float, n: int) -> float:
    """Half-width at height ``d`` of the regular n-gon with circumradius ``rr``, one vertex up."""
    apothem = rr * math.cos(math.pi / n)
    hw = math.inf
    for i in range(n):
        # outward normal of edge i; vertices at angles -90 + 360 k / n (image y points down)
        theta = -math.pi / 2 + (2 * i + 1) * math.pi / n
        cx, cy = math.cos(theta), math.sin(theta)
        if abs(cx) < 1e-9:
            if d * cy > apothem + 1e-9:
                return -1.0
            continue
        if cx > 0:
            hw = min(hw, (apothem - d * cy) / cx)
    return hw if hw >= 0.0 else -1.0


def shape_areas(wt: np.ndarray) -> np.ndarray:
    """Pixel count of each shape (float32)."""
    return np.where(wt >= 0, 2 * wt + 1, 0).sum(axis=1).astype(np.float32)


# -- 2. prefix sums, far radius ---------------------------------------------------------------

@kernel(parallel=True)
def row_prefix(src, pad, out):
    """``out[y, 4 (pad + i) + c] = sum(src[y, :i, c])`` for i in -pad .. w + pad (clamped)."""
    h, w, _ = src.shape
    zero = np.float32(0.0)
    for y in prange(h):
        row = out[y]
        for j in range(4 * (pad + 1)):
            row[j] = zero
        a0 = zero
        a1 = zero
        a2 = zero
        a3 = zero
        for x in range(w):
            a0 += src[y, x, 0]
            a1 += src[y, x, 1]
            a2 += src[y, x, 2]
            a3 += src[y, x, 3]
            j = 4 * (pad + 1 + x)
            row[j] = a0
            row[j + 1] = a1
            row[j + 2] = a2
            row[j + 3] = a3
        for i in range(pad + 1 + w, out.shape[1] // 4):
            row[4 * i] = a0
            row[4 * i + 1] = a1
            row[4 * i + 2] = a2
            row[4 * i + 3] = a3


@inline
def far_radius_row(rw, fw, box_rw, box_fw, shrink, rmax, rad_near, near_on, y, out):
    """Gather radius of row y of the far layer: the block's own far CoC where it is far field,
    filled in from the neighbourhood's far CoC where it is not (behind the subject), minus
    ``shrink``, clamped to [0, rmax] (NaN -> 0: a radius becomes a table index). Where the near
    field reaches (``near_on``), at least its radius ``rad_near``: what shows through a blurred
    near object is the scene around it at that scale."""
    zero = np.float32(0.0)
    for x in range(rw.shape[1]):
        fill = zero
        if box_fw[y, x] > np.float32(1e-6):
            fill = box_rw[y, x] / box_fw[y, x]
        r = rw[y, x] + (np.float32(1.0) - fw[y, x]) * fill - shrink
        if not r > zero:
            r = zero
        if near_on:
            r = max(r, rad_near[y, x])
        out[x] = min(r, rmax)


# -- 3. gather --------------------------------------------------------------------------------

@inline
def _row_pair(y, d, k, wt, d_max, h):
    """Prefix rows and half-widths of disk rows y - d and y + d, shapes k and k + 1. Rows outside
    the image and empty shape rows read row ``h`` of the prefix buffer, which is all zeros."""
    ya = y - d
    yb = y + d if d > 0 else h  # the centre row once
    wia = wt[k, d_max - d]
    wib = wt[k, d_max + d]
    woa = wt[k + 1, d_max - d]
    wob = wt[k + 1, d_max + d]
    ria = ya if ya >= 0 and wia >= 0 else h
    rib = yb if yb < h and wib >= 0 else h
    roa = ya if ya >= 0 and woa >= 0 else h
    rob = yb if yb < h and wob >= 0 else h
    return ria, rib, roa, rob, max(wia, 0), max(wib, 0), max(woa, 0), max(wob, 0)


@inline
def _accumulate_run(p, y, x0, n, k, wt, d_max, pad, acc_in, acc_out):
    """Sums of shape k (``acc_in``) and shape k+1 (``acc_out``) for pixels x0..x0+n-1 of row y,
    4 channels interleaved; rows outside the image are left out (clipped disk). Each pass over
    the accumulators takes four disk rows (y -/+ d, y -/+ (d + 1)) of both shapes: 16 prefix
    differences per element, no branch in the inner loop."""
    h = p.shape[0] - 1
    m = 4 * n
    zero = np.float32(0.0)
    for j in range(m):
        acc_in[j] = zero
        acc_out[j] = zero
    base = 4 * (pad + x0)
    for d in range(0, k + 2, 2):
        # d + 1 may be beyond the shapes: its rows are then empty (the zero row)
        ria, rib, roa, rob, wia, wib, woa, wob = _row_pair(y, d, k, wt, d_max, h)
        sia, sib, soa, sob, xia, xib, xoa, xob = _row_pair(y, d + 1, k, wt, d_max, h)
        ia1 = p[ria, base + 4 * (wia + 1):base + 4 * (wia + 1) + m]
        ia0 = p[ria, base - 4 * wia:base - 4 * wia + m]
        ib1 = p[rib, base + 4 * (wib + 1):base + 4 * (wib + 1) + m]
        ib0 = p[rib, base - 4 * wib:base - 4 * wib + m]
        ja1 = p[sia, base + 4 * (xia + 1):base + 4 * (xia + 1) + m]
        ja0 = p[sia, base - 4 * xia:base - 4 * xia + m]
        jb1 = p[sib, base + 4 * (xib + 1):base + 4 * (xib + 1) + m]
        jb0 = p[sib, base - 4 * xib:base - 4 * xib + m]
        oa1 = p[roa, base + 4 * (woa + 1):base + 4 * (woa + 1) + m]
        oa0 = p[roa, base - 4 * woa:base - 4 * woa + m]
        ob1 = p[rob, base + 4 * (wob + 1):base + 4 * (wob + 1) + m]
        ob0 = p[rob, base - 4 * wob:base - 4 * wob + m]
        pa1 = p[soa, base + 4 * (xoa + 1):base + 4 * (xoa + 1) + m]
        pa0 = p[soa, base - 4 * xoa:base - 4 * xoa + m]
        pb1 = p[sob, base + 4 * (xob + 1):base + 4 * (xob + 1) + m]
        pb0 = p[sob, base - 4 * xob:base - 4 * xob + m]
        for j in range(m):
            acc_in[j] += ((ia1[j] - ia0[j]) + (ib1[j] - ib0[j])) + ((ja1[j] - ja0[j]) + (jb1[j] - jb0[j]))
            acc_out[j] += ((oa1[j] - oa0[j]) + (ob1[j] - ob0[j])) + ((pa1[j] - pa0[j]) + (pb1[j] - pb0[j]))


@kernel(parallel=True)
def gather_far(p, rw, fw, box_rw, box_fw, shrink, rmax, rad_near, near_on, need, wt, d_max, pad,
               scratch, rad_rows, enc, out):
    """Far colour, encoded: shape-weighted sum of far weight * colour over the sum of weight,
    with the per-pixel radius of :func:`far_radius_row` (layer pixels, 0 <= rad < kmax + 1).

    Pixels with ``need == 0`` are left as they are. ``scratch`` (threads, 3, 4 RUN) and
    ``rad_rows`` (threads, w) float32; ``out`` (h, w, 3) uint8 sRGB.
    """
    h, w = need.shape
    tiny = np.float32(1e-12)
    for y in prange(h):  # p has h + 1 rows: the last one is all zeros
        tid = get_thread_id()
        sc = scratch[tid]
        acc_in = sc[0]
        acc_out = sc[1]
        vals = sc[2]
        bits = vals.view(np.int32)
        rad = rad_rows[tid]
        far_radius_row(rw, fw, box_rw, box_fw, shrink, rmax, rad_near, near_on, y, rad)
        orow = out[y].reshape(3 * w)
        x = 0
        while x < w:
            if need[y, x] == 0:
                x += 1
                continue
            k = int(rad[x])
            n = 1
            while n < RUN and x + n < w and need[y, x + n] != 0 and int(rad[x + n]) == k:
                n += 1
            _accumulate_run(p, y, x, n, k, wt, d_max, pad, acc_in, acc_out)
            rr = rad[x:x + n]  # indexed from 0: see split_layers
            for i in range(n):
                t = rr[i] - np.float32(k)
                j = 4 * i
                a3 = acc_in[j + 3]
                inv = np.float32(1.0) / max(a3 + t * (acc_out[j + 3] - a3), tiny)
                for ch in range(3):
                    a = acc_in[j + ch]
                    vals[3 * i + ch] = (a + t * (acc_out[j + ch] - a)) * inv
            o = orow[3 * x:3 * (x + n)]
            for j in range(3 * n):
                o[j] = encode_bits(bits[j], enc)
            x += n


@inline
def _count(wt, d_max, k, x, y, w, h):
    """In-image pixel count of shape k centred at (x, y)."""
    c = 0
    for d in range(-k, k + 1):
        yy = y + d
        if yy < 0 or yy >= h:
            continue
        hw = wt[k, d + d_max]
        if hw >= 0:
            c += min(x + hw, w - 1) - max(x - hw, 0) + 1
    return np.float32(c)


@kernel(parallel=True)
def gather_near(p, rad, wt, areas, d_max, pad, scratch, out):
    """Near layer spread by its (dilated) radius: premultiplied colour and coverage, each the
    shape mean of the layer (``out`` (h, w, 4) float32); zero where ``rad`` is 0."""
    h, w = rad.shape
    zero = np.float32(0.0)
    one = np.float32(1.0)
    for y in prange(h):
        sc = scratch[get_thread_id()]
        acc_in = sc[0]
        acc_out = sc[1]
        x = 0
        while x < w:
            if not rad[y, x] > zero:
                for ch in range(4):
                    out[y, x, ch] = zero
                x += 1
                continue
            k = int(rad[y, x])
            n = 1
            while n < RUN and x + n < w and rad[y, x + n] > zero and int(rad[y, x + n]) == k:
                n += 1
            _accumulate_run(p, y, x, n, k, wt, d_max, pad, acc_in, acc_out)
            inside = y - k - 1 >= 0 and y + k + 1 < h
            for i in range(n):
                xi = x + i
                if inside and xi - k - 1 >= 0 and xi + k + 1 < w:
                    c_in = areas[k]
                    c_out = areas[k + 1]
                else:
                    c_in = _count(wt, d_max, k, xi, y, w, h)
                    c_out = _count(wt, d_max, k + 1, xi, y, w, h)
                t = rad[y, xi] - np.float32(k)
                j = 4 * i
                inv = one / (c_in + t * (c_out - c_in))
                for ch in range(4):
                    out[y, xi, ch] = (acc_in[j + ch] + t * (acc_out[j + ch] - acc_in[j + ch])) * inv
            x += n
