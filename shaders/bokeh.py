"""Lens bokeh kernels: layer split and finish; the disk gathers between them are in
:mod:`shaders.gather`.

The renderer (``realtime/stages/render.py``) runs them in this order on working-domain (linear,
highlight-boosted) light, at a layer scale ``s`` of 1 (full resolution), 2 (half) or 3 (a third):

1. :func:`split_layers` (full res -> layer res): decodes the frame with the LUT and splits it
   into a *far* layer premultiplied by a background weight (pixels that are sharp, in front of
   the focus plane or part of the subject weigh ~0, so the far field is foreground-free) and a
   *near* layer premultiplied by its coverage (pixels in front of the focus plane).
2. :func:`shaders.gather.row_prefix`: per-row prefix sums of a 4-channel layer, padded with the
   row's end values so a clipped chord is a plain difference (the split writes the far layer's
   directly).
3. :func:`shaders.gather.gather_far` / :func:`shaders.gather.gather_near`: for each layer pixel,
   the sum over a disk (or polygon) of per-pixel radius. The far colour is normalised and encoded
   to sRGB at layer resolution (the renderer upsamples it with ``cv2.resize``); the near layer
   stays linear and premultiplied.
4. :func:`finish` (full res): the sharp frame composited over the far field with its sharpness
   alpha (soft matte / in-focus CoC), the near layer over everything, blended in linear light
   and encoded. Fully sharp and fully blurred pixels are copied byte for byte.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import get_thread_id, prange

from .color import encode_bits, make_luts
from .gather import RUN, gather_far, gather_near, row_prefix, shape_areas, shape_table
from .jit import inline, kernel, register_warmup

EPS_WEIGHT = 1e-4   # far weight floor: a disk of only sharp pixels still normalises
EPS_NEAR = 1e-7     # ... and a much smaller one for pixels in front of the focus plane


# -- 1. layer split ---------------------------------------------------------------------------

SEG = 32  # layer pixels a split segment spans at most: its scratch stays in L1
# layer pixels a reused tile spans (SEG a multiple of it): a run of changed tiles is split as one
# segment of up to SEG, so a whole frame is split in the same segments as without tiles
TILE_COLS = 16


@inline
def _pixel(c, mv, has_matte, lim, tol):
    """Far weight, far weight * CoC, near coverage and sharp alpha (uint8) of one pixel."""
    one = np.float32(1.0)
    zero = np.float32(0.0)
    half = np.float32(0.5)
    c = c if c == c else zero
    c = min(max(c, -lim), lim)
    m = min(max(mv, zero), one) if has_matte else zero
    p = max(c, zero)
    n = max(-c, zero)
    # an edge pixel's colour is part subject: from half coverage on it stays out of the far
    # field altogether, below that it counts less the more subject it holds
    keep = one - min(m + m, one)
    w = keep * keep * min(max(p - half, zero), one)
    a_n = min(max(n - m * tol - half, zero), one)
    by_coc = one - min(max(abs(c) - half, zero), one)
    by_matte = one - min(max(n - tol - half, zero), one)
    a8 = np.uint8((by_coc + m * (by_matte - by_coc)) * np.float32(255.0) + half)
    return w, w * p, a_n, n, a8


@inline
def _weights(crow, mrow, has_matte, n, lim, tol, wv, pc, arow):
    """The first n pixels of a row segment: far weight with its floor (``wv``), far weight * CoC
    (``pc``), sharp alpha (``arow``); returns the sum of near coverage."""
    one = np.float32(1.0)
    eps = np.float32(EPS_WEIGHT)
    eps_near = np.float32(EPS_NEAR)
    near = np.float32(0.0)
    for i in range(n):
        w, pcv, a_n, _, a8 = _pixel(crow[i], mrow[i], has_matte, lim, tol)
        arow[i] = a8
        # the floor: sharp pixels stand in for the far field where there is none (what is seen
        # around and behind a near object in front of the subject), near ones hardly
        wv[i] = w + eps * (one - a_n) + eps_near
        pc[i] = pcv
        near += a_n
    return near


@kernel(parallel=True)
def split_layers(frame, src, matte, has_matte, coc_params, s, lut, tol, pad, scratch, near_dirty, out_coc, layers,
                 tiles, out_alpha):
    """Full-res frame -> layer-res far/near layers (over each s x s block, s = 1, 2 or 3) and the
    full-res sharp alpha, in one pass over the frame.

    ``coc_params`` is ``(from_disp, focus, aperture, lim)`` (bool, then float32): ``src`` is the
    CoC map, or with ``from_disp`` the disparity, the CoC then being computed (``aperture * (focus
    - disparity)``, as :func:`coc_from_disparity`) and written to ``out_coc``; either way clamped
    to +/- ``lim``. ``layers`` is ``(out_prefix, out_near, out_rw, out_fw, out_rnear, out_need)``,
    the layer-resolution outputs the gathers read next. ``tiles`` is ``(todo, tile_rows)``: only
    the tiles (``tile_rows`` layer rows by TILE_COLS layer pixels) with ``todo[ty, tx] != 0`` are split
    (a (1, 1) map of 1 with ``tile_rows`` 1 splits everything); the others keep every output as it
    was, the far layer's prefix sums shifted by what the split tiles before them on the row
    changed, and ``near_dirty`` stays set on rows where they may hold near pixels. The far layer (sums of far weight * colour
    and of far weight, the weight floored at EPS_WEIGHT, or EPS_NEAR for near pixels) is written
    directly as its row prefix sums ``out_prefix`` (layout of :func:`row_prefix`; its last row is left alone).
    ``out_near`` (h, w, 4): block means of near coverage * colour and of coverage, written only
    on rows that hold near pixels now or did last time (``near_dirty`` (h,) uint8 keeps track;
    every other row is already zero). ``out_rw``: block mean of far weight * CoC / s; ``out_fw``:
    block mean far weight; ``out_rnear``: largest near CoC / s; ``out_need``: 1 where a pixel of
    the block is not fully sharp. ``out_alpha`` (full res, uint8, may be wider than the frame):
    how much of the sharp frame shows (255 = all). ``scratch`` (threads, :func:`split_scratch`
    (s)) float32. The row is done in segments of SEG layer pixels so every scratch stays in L1, and
    the frame is decoded in its own loop (table look-ups) so the weight loop vectorises.
    """
    from_disp, focus, aperture, lim = coc_params
    out_prefix, out_near, out_rw, out_fw, out_rnear, out_need = layers
    todo, tile_rows = tiles
    last_ty = todo.shape[0] - 1
    last_tx = todo.shape[1] - 1
    hgt, wid = src.shape
    hh, wh = out_fw.shape
    inv_s = np.float32(1.0) / np.float32(s)
    eps = np.float32(EPS_WEIGHT)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    sw_full = s * SEG
    for yh in prange(hh):
        sc = scratch[get_thread_id()]
        lb = sc[0:sw_full]
        lg = sc[sw_full:2 * sw_full]
        lr = sc[2 * sw_full:3 * sw_full]
        wv = sc[3 * sw_full:4 * sw_full]
        pc = sc[4 * sw_full:5 * sw_full]
        cs = sc[5 * sw_full:6 * sw_full]
        o = 6 * sw_full
        # block sums at s = 2; at s = 1 and 3 per-pixel sums over the block's rows (folded into
        # blocks after them), with a count of pixels not fully sharp
        acc = SEG if s == 2 else sw_full
        sb = sc[o:o + acc]
        sg = sc[o + acc:o + 2 * acc]
        sr = sc[o + 2 * acc:o + 3 * acc]
        sw = sc[o + 3 * acc:o + 4 * acc]
        srw = sc[o + 4 * acc:o + 5 * acc]
        sn = sc[o + 5 * acc:o + 6 * acc]
        rows = min(s, hgt - yh * s)
        y0 = yh * s
        rwr = out_rw[yh]
        fwr = out_fw[yh]
        rnr = out_rnear[yh]
        ned = out_need[yh]
        prow = out_prefix[yh]
        for j in range(4 * (pad + 1)):
            prow[j] = zero
        a0 = zero
        a1 = zero
        a2 = zero
        a3 = zero
        near_row = out_near[yh].reshape(4 * wh)
        near_before = near_dirty[yh] != 0
        every = True  # every tile of the row split
        row_near = zero  # a sum, not a flag: float min/max reductions do not vectorise
        # the prefix sum this row had before the segment being split, last time (tiles left as
        # they were keep their sums, shifted by how much the split ones before them changed)
        b0 = zero
        b1 = zero
        b2 = zero
        b3 = zero
        trow = todo[min(yh // tile_rows, last_ty)]
        xs = 0
        while xs < wh:
            # slices from the segment's start, indexed from 0: offsets added to an index keep
            # Numba's negative-index check in the loop, which stops it vectorising
            n = min(TILE_COLS, wh - xs)
            ps = prow[4 * (pad + 1 + xs):4 * (pad + 1 + xs + n)]
            e = 4 * (n - 1)
            if trow[min(xs // TILE_COLS, last_tx)] == 0:
                every = False
                d0 = a0 - b0
                d1 = a1 - b1
                d2 = a2 - b2
                d3 = a3 - b3
                b0 = ps[e]
                b1 = ps[e + 1]
                b2 = ps[e + 2]
                b3 = ps[e + 3]
                if d0 != zero or d1 != zero or d2 != zero or d3 != zero:
                    for q in range(n):
                        ps[4 * q] += d0
                        ps[4 * q + 1] += d1
                        ps[4 * q + 2] += d2
                        ps[4 * q + 3] += d3
                # (nothing split before it on the row changed: its sums stand as they were)
                a0 = ps[e]
                a1 = ps[e + 1]
                a2 = ps[e + 2]
                a3 = ps[e + 3]
                xs += n
                continue
            # the changed tiles that follow join the segment, up to SEG
            while n < SEG and xs + n < wh and trow[min((xs + n) // TILE_COLS, last_tx)] != 0:
                n = min(n + TILE_COLS, wh - xs)
            ps = prow[4 * (pad + 1 + xs):4 * (pad + 1 + xs + n)]
            e = 4 * (n - 1)
            b0 = ps[e]
            b1 = ps[e + 1]
            b2 = ps[e + 2]
            b3 = ps[e + 3]
            fx0 = xs * s
            fn = min(n * s, wid - fx0)
            nd = ned[xs:xs + n]
            rns = rnr[xs:xs + n]
            near_seg = near_row[4 * xs:4 * (xs + n)]
            if near_before:  # near pixels last time: start from zero (other rows are)
                for j in range(4 * n):
                    near_seg[j] = zero
            seg_total = zero
            for q in range(n):
                rns[q] = zero
                nd[q] = 0
            # the sums: one per block at s = 2, one per pixel of a segment row otherwise (fn >= n)
            for i in range(n if s == 2 else fn):
                sb[i] = zero
                sg[i] = zero
                sr[i] = zero
                sw[i] = zero
                srw[i] = zero
                sn[i] = zero
            for sy in range(rows):
                y = y0 + sy
                fr = frame[y, fx0:fx0 + fn]
                for i in range(fn):
                    lb[i] = lut[fr[i, 0]]
                    lg[i] = lut[fr[i, 1]]
                    lr[i] = lut[fr[i, 2]]
                arow = out_alpha[y, fx0:fx0 + fn]
                mrow = matte[y, fx0:fx0 + fn]
                # the segment's CoC into scratch (one instantiation of the weight loop for both
                # sources)
                if from_disp:
                    crow = out_coc[y, fx0:fx0 + fn]
                    drow = src[y, fx0:fx0 + fn]
                    for i in range(fn):
                        c = aperture * (focus - drow[i])
                        if c < -lim:
                            c = -lim
                        if c > lim:
                            c = lim
                        crow[i] = c
                        cs[i] = c
                else:
                    crow_in = src[y, fx0:fx0 + fn]
                    for i in range(fn):
                        cs[i] = crow_in[i]
                seg_near = _weights(cs, mrow, has_matte, fn, lim, tol, wv, pc, arow)
                if seg_near > zero:  # something in front of the focus plane here (rare)
                    _near_segment(cs, mrow, has_matte, fn, s, lim, tol, lb, lg, lr, near_seg, rns)
                    seg_total += seg_near
                if s == 2:
                    for q in range(fn // 2):
                        v0 = wv[2 * q]
                        v1 = wv[2 * q + 1]
                        sb[q] += v0 * lb[2 * q] + v1 * lb[2 * q + 1]
                        sg[q] += v0 * lg[2 * q] + v1 * lg[2 * q + 1]
                        sr[q] += v0 * lr[2 * q] + v1 * lr[2 * q + 1]
                        sw[q] += v0 + v1
                        srw[q] += pc[2 * q] + pc[2 * q + 1]
                        nd[q] |= (arow[2 * q] != 255) | (arow[2 * q + 1] != 255)
                    if fn & 1:
                        q = fn // 2
                        v0 = wv[2 * q]
                        sb[q] += v0 * lb[2 * q]
                        sg[q] += v0 * lg[2 * q]
                        sr[q] += v0 * lr[2 * q]
                        sw[q] += v0
                        srw[q] += pc[2 * q]
                        nd[q] |= arow[2 * q] != 255
                else:
                    for i in range(fn):
                        v0 = wv[i]
                        sb[i] += v0 * lb[i]
                        sg[i] += v0 * lg[i]
                        sr[i] += v0 * lr[i]
                        sw[i] += v0
                        srw[i] += pc[i]
                        sn[i] += np.float32(arow[i] != 255)
            if s == 3:
                _fold_thirds(fn, sb, sg, sr, sw, srw, sn, nd)
            elif s == 1:
                for q in range(n):
                    nd[q] = sn[q] > zero
            if seg_total > zero:  # the near sums to means
                row_near += seg_total
                for q in range(n):
                    cols = min(s, wid - (xs + q) * s)
                    inv = one / np.float32(rows * cols)
                    for ch in range(4):
                        near_seg[4 * q + ch] *= inv
                    rns[q] *= inv_s
            fws = fwr[xs:xs + n]
            rws = rwr[xs:xs + n]
            inv = one / np.float32(rows * s)
            for q in range(n):
                fws[q] = max(sw[q] * inv - eps, zero)
                rws[q] = srw[q] * (inv * inv_s)
            if fn < n * s:  # a last, narrower block (odd width)
                inv = one / np.float32(rows * (fn - (n - 1) * s))
                fws[n - 1] = max(sw[n - 1] * inv - eps, zero)
                rws[n - 1] = srw[n - 1] * (inv * inv_s)
            # the far layer leaves as its row prefix sums (see row_prefix)
            for q in range(n):
                a0 += sb[q]
                a1 += sg[q]
                a2 += sr[q]
                a3 += sw[q]
                ps[4 * q] = a0
                ps[4 * q + 1] = a1
                ps[4 * q + 2] = a2
                ps[4 * q + 3] = a3
            xs += n
        for i in range(pad + 1 + wh, prow.shape[0] // 4):
            prow[4 * i] = a0
            prow[4 * i + 1] = a1
            prow[4 * i + 2] = a2
            prow[4 * i + 3] = a3
        # tiles left as they were may hold near pixels of last time
        near_dirty[yh] = (row_near > zero) or (near_before and not every)


@inline
def _fold_thirds(fn, sb, sg, sr, sw, srw, sn, nd):
    """At s = 3: the per-pixel sums of a segment's ``fn`` columns folded, in place, into sums
    over blocks of 3 columns (the last one narrower where fn is no multiple of 3), and ``nd``
    set where a block holds a pixel not fully sharp."""
    zero = np.float32(0.0)
    nq = fn // 3
    for q in range(nq):
        j = 3 * q
        sb[q] = sb[j] + sb[j + 1] + sb[j + 2]
        sg[q] = sg[j] + sg[j + 1] + sg[j + 2]
        sr[q] = sr[j] + sr[j + 1] + sr[j + 2]
        sw[q] = sw[j] + sw[j + 1] + sw[j + 2]
        srw[q] = srw[j] + srw[j + 1] + srw[j + 2]
        nd[q] = (sn[j] + sn[j + 1] + sn[j + 2]) > zero
    if 3 * nq < fn:
        tb = zero
        tg = zero
        tr = zero
        tw = zero
        tc = zero
        tn = zero
        for i in range(3 * nq, fn):
            tb += sb[i]
            tg += sg[i]
            tr += sr[i]
            tw += sw[i]
            tc += srw[i]
            tn += sn[i]
        sb[nq] = tb
        sg[nq] = tg
        sr[nq] = tr
        sw[nq] = tw
        srw[nq] = tc
        nd[nq] = tn > zero


@inline
def _near_segment(cs, mrow, has_matte, n, s, lim, tol, lb, lg, lr, near_seg, rn_seg):
    """Near layer sums of the first n pixels of a row segment (CoC ``cs``, decoded colour
    ``lb, lg, lr``) into its blocks: coverage * colour, coverage, largest near CoC."""
    zero = np.float32(0.0)
    for i in range(n):
        _, _, a_n, nc, _ = _pixel(cs[i], mrow[i], has_matte, lim, tol)
        if a_n > zero:
            q = i // s
            near_seg[4 * q] += a_n * lb[i]
            near_seg[4 * q + 1] += a_n * lg[i]
            near_seg[4 * q + 2] += a_n * lr[i]
            near_seg[4 * q + 3] += a_n
            rn_seg[q] = max(rn_seg[q], nc)


# -- 4. finish --------------------------------------------------------------------------------

@inline
def _blend_pixel(fr, bgr, o, x, a8, dec, enc, vals, bits, na, near, y0, y1, x0, x1, w00, w01, w10, w11):
    """One pixel in linear light: sharp over far by ``a8``, then the near layer over it."""
    a = np.float32(a8) * np.float32(1.0 / 255.0)
    for ch in range(3):
        v = dec[bgr[3 * x + ch]]
        v += a * (dec[fr[3 * x + ch]] - v)
        if na > np.float32(0.0):
            v = (np.float32(1.0) - na) * v + (w00 * near[y0, x0, ch] + w01 * near[y0, x1, ch]
                                              + w10 * near[y1, x0, ch] + w11 * near[y1, x1, ch])
        vals[ch] = v
    for ch in range(3):
        o[3 * x + ch] = encode_bits(bits[ch], enc)


ALL_SHARP = np.uint64(0xFFFFFFFFFFFFFFFF)  # eight alpha bytes of 255
ALL_FAR = np.uint64(0)


@kernel(parallel=True)
def finish(frame, alpha, bg, dec, enc, near, near_on, tap_y, tap_x, scratch, out):
    """Full-res output: the sharp frame over the (already upsampled, sRGB) far field ``bg`` by
    ``alpha``, the near layer (layer res, premultiplied) over both; blends in linear light.

    Runs of all-sharp or all-far pixels are copied byte for byte; ``alpha`` rows are read eight
    pixels at a time (its width is a multiple of 8, at least the frame's: only the frame's part
    is read). ``bg`` may be larger than the frame (only its top-left part is read) or be ``out``
    itself (the far field already in place: its all-far runs are left alone). ``tap_y`` /
    ``tap_x`` (n, 2) float32: first layer row/column and weight of the next one (see
    :func:`bilinear_taps`); only used for the near layer. ``scratch`` (threads, 4) float32.
    """
    hgt, wid = frame.shape[0], frame.shape[1]
    hl, wl = near.shape[0], near.shape[1]
    one = np.float32(1.0)
    zero = np.float32(0.0)
    in_place = bg.ctypes.data == out.ctypes.data
    for y in prange(hgt):
        vals = scratch[get_thread_id()]
        bits = vals.view(np.int32)
        y0 = int(tap_y[y, 0])
        wy = tap_y[y, 1]
        y1 = min(y0 + 1, hl - 1)
        fr = frame[y].reshape(3 * wid)
        bgr = bg[y].reshape(3 * bg.shape[1])
        ar = alpha[y]
        a64 = ar.view(np.uint64)
        o = out[y].reshape(3 * wid)
        row_near = False
        if near_on:
            for xl in range(wl):
                if near[y0, xl, 3] > zero or near[y1, xl, 3] > zero:
                    row_near = True
                    break
        if not row_near:
            x = 0
            while x < wid:
                # whole words of eight sharp (or far) pixels: one copy per run of them
                if x + 8 <= wid and (a64[x >> 3] == ALL_SHARP or a64[x >> 3] == ALL_FAR):
                    word = a64[x >> 3]
                    e = x + 8
                    while e + 8 <= wid and a64[e >> 3] == word:
                        e += 8
                    if not (word == ALL_FAR and in_place):
                        src = fr if word == ALL_SHARP else bgr
                        seg_in = src[3 * x:3 * e]
                        seg_out = o[3 * x:3 * e]
                        for j in range(3 * (e - x)):
                            seg_out[j] = seg_in[j]
                    x = e
                    continue
                for xx in range(x, min(x + 8, wid)):
                    a8 = ar[xx]
                    if a8 == 255:
                        for ch in range(3):
                            o[3 * xx + ch] = fr[3 * xx + ch]
                    elif a8 == 0:
                        if not in_place:
                            for ch in range(3):
                                o[3 * xx + ch] = bgr[3 * xx + ch]
                    else:
                        _blend_pixel(fr, bgr, o, xx, a8, dec, enc, vals, bits, zero, near, y0, y1, 0, 0,
                                     zero, zero, zero, zero)
                x = min(x + 8, wid)
            continue
        for x in range(wid):
            x0 = int(tap_x[x, 0])
            wx = tap_x[x, 1]
            x1 = min(x0 + 1, wl - 1)
            w00 = (one - wy) * (one - wx)
            w01 = (one - wy) * wx
            w10 = wy * (one - wx)
            w11 = wy * wx
            na = (w00 * near[y0, x0, 3] + w01 * near[y0, x1, 3]
                  + w10 * near[y1, x0, 3] + w11 * near[y1, x1, 3])
            a8 = ar[x]
            if na <= zero and (a8 == 255 or a8 == 0):
                src = fr if a8 == 255 else bgr
                for ch in range(3):
                    o[3 * x + ch] = src[3 * x + ch]
                continue
            _blend_pixel(fr, bgr, o, x, a8, dec, enc, vals, bits, na, near, y0, y1, x0, x1,
                         w00, w01, w10, w11)


def split_scratch(s: int) -> int:
    """Per-thread scratch of :func:`split_layers` (float32 values) at layer scale ``s``."""
    return SEG * (6 * s + (6 if s == 2 else 6 * s))


# split every tile (the ``tiles`` argument of split_layers)
ALL_TILES = (np.ones((1, 1), np.uint8), 1)


def bilinear_taps(n: int, layer_n: int, s: int) -> np.ndarray:
    """(n, 2) float32: first layer index and weight of the next one, for each full-res index
    (layer pixel i covers full-res pixels s i .. s i + s - 1, centres aligned)."""
    f = (np.arange(n, dtype=np.float64) + 0.5) / s - 0.5
    i0 = np.floor(f)
    w = f - i0
    w[i0 < 0] = 0.0
    w[i0 >= layer_n - 1] = 0.0
    i0 = np.clip(i0, 0, layer_n - 1)
    return np.stack([i0, w], axis=1).astype(np.float32)


@kernel(parallel=True)
def abs_max_bits(a, out):
    """Per-row largest ``|a|`` as float32 bits (``out`` (h,) int32): an integer max reduction,
    which vectorises where a float one does not. Bits above 0x7f800000 mean a NaN."""
    h = a.shape[0]
    mask = np.int32(0x7FFFFFFF)
    for y in prange(h):
        bits = a[y].view(np.int32)
        m = np.int32(0)
        for x in range(bits.shape[0]):
            m = max(m, bits[x] & mask)
        out[y] = m


def threads() -> int:
    """Rows of per-thread scratch buffers (every thread Numba may start)."""
    return numba.config.NUMBA_NUM_THREADS


@register_warmup
def _warm() -> None:
    rng = np.random.default_rng(0)
    luts = make_luts(2.0, 0.8)

    def ro(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a.flags.writeable = False
        return a

    for s in (1, 2, 3):
        h, w = 7, 11
        hl, wl = (h + s - 1) // s, (w + s - 1) // s
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        coc = rng.uniform(-3, 3, (h, w)).astype(np.float32)
        pad = 6
        p = np.zeros((hl + 1, 4 * (wl + 2 * pad + 1)), np.float32)
        near = np.zeros((hl, wl, 4), np.float32)
        rw, fw, rn = (np.zeros((hl, wl), np.float32) for _ in range(3))
        need = np.zeros((hl, wl), np.uint8)
        alpha = np.zeros((h, 16), np.uint8)
        scratch = np.zeros((threads(), split_scratch(s)), np.float32)
        # the renderer passes its frame and planes read-only, whoever owns them (one signature)
        plane = ro(coc)
        split_layers(ro(frame), plane, plane, s == 1, (s != 1, np.float32(0.5), np.float32(2), np.float32(4)), s,
                     luts.decode, np.float32(1), pad, scratch, np.zeros(hl, np.uint8),
                     np.zeros((h, w), np.float32), (p, near, rw, fw, rn, need), ALL_TILES, alpha)
    wt = shape_table(3)
    row_prefix(near, pad, p)
    scratch = np.zeros((threads(), 3, 4 * RUN), np.float32)
    col = np.zeros((hl, wl, 3), np.uint8)
    rad = np.zeros((hl, wl), np.float32)
    gather_far(p, rw, fw, rw, fw, np.float32(0), np.float32(2.9), rad, True, need, wt, 5, pad, scratch,
               np.zeros((threads(), wl), np.float32), luts.encode, col)
    gather_near(p, rad, wt, shape_areas(wt), 5, pad, scratch, near)
    abs_max_bits(ro(coc), np.zeros(h, np.int32))
    finish(ro(frame), alpha, np.zeros((h + 1, w + 1, 3), np.uint8), luts.decode, luts.encode, near, True,
           bilinear_taps(h, hl, s), bilinear_taps(w, wl, s), np.zeros((threads(), 4), np.float32),
           np.empty_like(frame))
