"""Depth kernels: model input packing, temporal filtering, hole filling and matte-guided upsampling.

The depth model sees a small image (320x192); everything it returns lives on a low-resolution
"content grid" of ``(nh, nw)`` cells, each of which covers a box of the full-resolution frame
given by ``row_bounds``/``col_bounds`` (``nh + 1`` / ``nw + 1`` increasing source indices).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .jit import frozen, inline, kernel, register_warmup

# BT.601 luma weights for the motion signal (BGR order)
_LB, _LG, _LR = np.float32(0.114), np.float32(0.587), np.float32(0.299)


@inline
def _cell_colours(frame, row_bounds, col_bounds, step, kc, i, row, hs):
    """Row sums of content row ``i`` (every ``step``-th frame row of its box into ``row``, then in
    ``hs`` the sums of the ``kc`` columns every cell reads at least, for every position), and the
    count of rows summed. See :func:`pack_model_input`."""
    n = row.shape[0]
    span = 3 * step
    m = hs.shape[0]
    y0 = row_bounds[i]
    y1 = max(row_bounds[i + 1], y0 + 1)
    src = frame[y0]
    for x in range(n):
        row[x] = src[x]
    rows = 1
    for y in range(y0 + step, y1, step):
        rows += 1
        src = frame[y]
        for x in range(n):
            row[x] += src[x]
    for x in range(m):
        hs[x] = np.int32(row[x])
    for c in range(1, kc):
        sh = row[span * c:]
        for x in range(m):
            hs[x] += np.int32(sh[x])
    return rows


@inline
def _cell_mean(row, hs, col_bounds, step, kc, rows, j):
    """(r, g, b) mean of content cell ``j`` of a row summed by :func:`_cell_colours`."""
    x0 = col_bounds[j]
    x1 = max(col_bounds[j + 1], x0 + 1)
    sb = hs[3 * x0]
    sg = hs[3 * x0 + 1]
    sr = hs[3 * x0 + 2]
    cols = kc
    for x in range(x0 + kc * step, x1, step):
        cols += 1
        sb += np.int32(row[3 * x])
        sg += np.int32(row[3 * x + 1])
        sr += np.int32(row[3 * x + 2])
    inv = np.float32(1.0) / np.float32(rows * cols)
    return np.float32(sr) * inv, np.float32(sg) * inv, np.float32(sb) * inv


@inline
def _fewest_columns(col_bounds, step, n):
    """The fewest columns any content cell reads (see :func:`pack_model_input`)."""
    kc = n
    for j in range(col_bounds.shape[0] - 1):
        x0 = col_bounds[j]
        x1 = max(col_bounds[j + 1], x0 + 1)
        kc = min(kc, (x1 - x0 + step - 1) // step)
    return kc


@kernel(parallel=True)
def pack_model_input(frame, row_bounds, col_bounds, step, dy, dx, acc, out_x, out_luma):
    """Box-average ``frame`` into the model tensor: RGB planar float32 0..255.

    ``frame`` is the BGR image viewed as ``(H, W * 3)`` uint8 (so the row sums below run over
    contiguous bytes); content cell ``(i, j)`` averages every ``step``-th row and column of
    ``frame[row_bounds[i]:row_bounds[i+1], col_bounds[j]:col_bounds[j+1]]`` (at least one
    pixel: smaller frames are upsampled by repetition; a 4x4 box read at step 2 is four
    samples spread over it, half the memory read of all sixteen for a little more noise) and
    lands at ``out_x[0, :, dy + i, dx + j]``. Cells outside the content are left as they are
    (the caller fills the padding once). ``out_luma[i, j]`` gets the cell's luma; ``acc`` is
    ``(nh, W * 3)`` uint16 scratch for the row sums (at most 257 rows per box).
    """
    nh = row_bounds.shape[0] - 1
    nw = col_bounds.shape[0] - 1
    n = frame.shape[1]
    # the fewest columns any cell reads: that many are summed for every position of the row at
    # once (contiguous, vectorised), each cell then reads its three sums and adds any extra column
    kc = _fewest_columns(col_bounds, step, n)
    m = n - 3 * step * (kc - 1)
    for i in prange(nh):
        row = acc[i]
        hs = np.empty(m, np.int32)
        rows = _cell_colours(frame, row_bounds, col_bounds, step, kc, i, row, hs)
        for j in range(nw):
            r, g, b = _cell_mean(row, hs, col_bounds, step, kc, rows, j)
            out_x[0, 0, dy + i, dx + j] = r
            out_x[0, 1, dy + i, dx + j] = g
            out_x[0, 2, dy + i, dx + j] = b
            out_luma[i, j] = _LB * b + _LG * g + _LR * r


@kernel(parallel=True)
def pack_luma(frame, row_bounds, col_bounds, step, row_step, acc, out_luma):
    """:func:`pack_model_input`'s ``out_luma`` alone, on every ``row_step``-th content row (the
    same values; the other rows are left as they are): what the still-scene check compares, for
    a fraction of the frame's reads and none of the tensor's writes."""
    nh = row_bounds.shape[0] - 1
    nw = col_bounds.shape[0] - 1
    n = frame.shape[1]
    kc = _fewest_columns(col_bounds, step, n)
    m = n - 3 * step * (kc - 1)
    for t in prange((nh + row_step - 1) // row_step):
        i = t * row_step
        row = acc[i]
        hs = np.empty(m, np.int32)
        rows = _cell_colours(frame, row_bounds, col_bounds, step, kc, i, row, hs)
        for j in range(nw):
            r, g, b = _cell_mean(row, hs, col_bounds, step, kc, rows, j)
            out_luma[i, j] = _LB * b + _LG * g + _LR * r


@kernel
def final_conv_up2(features, weight, bias, conv, out):
    """The depth model's last layer (see realtime/stages/depth/graph.py): ``relu(conv3x3 + bias)``, then x2.

    ``features`` ``(C, h, w)``, ``weight`` ``(C, 3, 3)`` (zero padding, stride 1, like the
    ONNX ``Conv`` it replaces), ``conv`` ``(h, w)`` scratch; ``out`` ``(2h, 2w)`` is the
    bilinear x2 upsampling with half-pixel centres and clamped edges (ONNX ``Resize`` linear,
    ``half_pixel``): each output pixel is 3/4 of its own cell and 1/4 of the neighbour on its
    side, in each direction. Serial: it runs in the model's thread, next to a busy core.
    """
    nc, h, w = features.shape
    for i in range(h):
        acc = conv[i]
        for j in range(w):
            acc[j] = bias
        for c in range(nc):
            for dy in range(3):
                ii = i + dy - 1
                if ii < 0 or ii >= h:
                    continue
                r = features[c, ii]
                w0 = weight[c, dy, 0]
                w1 = weight[c, dy, 1]
                w2 = weight[c, dy, 2]
                if w == 1:
                    acc[0] += w1 * r[0]
                    continue
                acc[0] += w1 * r[0] + w2 * r[1]
                for j in range(1, w - 1):
                    acc[j] += w0 * r[j - 1] + w1 * r[j] + w2 * r[j + 1]
                acc[w - 1] += w0 * r[w - 2] + w1 * r[w - 1]
        for j in range(w):
            acc[j] = max(acc[j], np.float32(0.0))
    near = np.float32(0.75)
    far = np.float32(0.25)
    for y in range(2 * h):
        i = y >> 1
        k = max(i - 1, 0) if (y & 1) == 0 else min(i + 1, h - 1)
        a = conv[i]
        b = conv[k]
        o = out[y]
        for x in range(2 * w):
            j = x >> 1
            m = max(j - 1, 0) if (x & 1) == 0 else min(j + 1, w - 1)
            o[x] = near * (near * a[j] + far * a[m]) + far * (near * b[j] + far * b[m])


@inline
def _ramp(v, lo, hi):
    if v <= lo:
        return np.float32(0.0)
    if v >= hi:
        return np.float32(1.0)
    return (v - lo) / (hi - lo)


@kernel
def motion_adaptive_update(raw, luma, still_alpha, change_lo, change_hi, state, ref_luma):
    """Per-pixel exponential smoothing of the model output that follows at once where the image moved.

    The smoothing weight ramps from ``still_alpha`` (luma within ``change_lo`` levels of the
    reference) to 1 (``change_hi`` levels or more). The reference luma moves with the same
    weight, so a slow drift accumulates until it counts as a change instead of being ignored.
    """
    h, w = raw.shape
    for i in range(h):
        for j in range(w):
            d = abs(luma[i, j] - ref_luma[i, j])
            a = still_alpha + (np.float32(1.0) - still_alpha) * _ramp(d, change_lo, change_hi)
            state[i, j] += a * (raw[i, j] - state[i, j])
            ref_luma[i, j] += a * (luma[i, j] - ref_luma[i, j])


@inline
def _knee(v, top, room):
    """Linear up to ``top``, then a soft shoulder approaching ``top + room`` (same slope at the knee)."""
    t = max(v - top, np.float32(0.0))
    return min(max(v, np.float32(0.0)), top) + room * t / (room + t)


@kernel
def map_range(raw, lo, scale, top, out):
    """Model units to disparity: ``(raw - lo) * scale``, clipped at 0, with a soft knee above ``top``.

    The background's range maps linearly to [0, top]; anything nearer (the person, a hand)
    is compressed into (top, 1) instead of being clipped flat.
    """
    h, w = raw.shape
    room = np.float32(1.0) - top
    for i in range(h):
        for j in range(w):
            out[i, j] = _knee((raw[i, j] - lo) * scale, top, room)


@kernel
def gather_samples(values, weight, threshold, stride, out_values, out_count):
    """Values on a ``stride`` grid where ``weight >= threshold``; their number in ``out_count[0]``."""
    h, w = values.shape
    n = 0
    cap = out_values.shape[0]
    for i in range(0, h, stride):
        for j in range(0, w, stride):
            if weight[i, j] >= threshold and n < cap:
                out_values[n] = values[i, j]
                n += 1
    out_count[0] = n


@inline
def _push(vw, w, out_vw, out_w):
    """One pyramid level down: 2x2 means of weighted values and of weights (odd edges clamp)."""
    h, wd = w.shape
    oh, ow = out_w.shape
    q = np.float32(0.25)
    pairs = wd // 2  # output columns with both inputs inside: a branch-free loop
    for i in range(oh):
        w0 = w[2 * i]
        w1 = w[min(2 * i + 1, h - 1)]
        v0 = vw[2 * i]
        v1 = vw[min(2 * i + 1, h - 1)]
        o_w = out_w[i]
        o_vw = out_vw[i]
        for j in range(pairs):
            o_w[j] = (w0[2 * j] + w0[2 * j + 1] + w1[2 * j] + w1[2 * j + 1]) * q
            o_vw[j] = (v0[2 * j] + v0[2 * j + 1] + v1[2 * j] + v1[2 * j + 1]) * q
        if ow > pairs:  # odd width: the last column is its own neighbour
            j = pairs
            o_w[j] = (w0[2 * j] + w1[2 * j]) * np.float32(0.5)
            o_vw[j] = (v0[2 * j] + v1[2 * j]) * np.float32(0.5)


@inline
def _pull(vw, w, coarse, row, out):
    """One level up: the normalised value where the weight is confident, else the coarser fill.

    ``out = a * vw / w + (1 - a) * bilinear(coarse)`` with ``a = min(1, 4 w)``: a cell with a
    quarter of valid pixels under it already trusts itself. The coarse grid is half as fine, so
    each fine pixel is 3/4 its own coarse cell and 1/4 the neighbour on its side, in each
    direction; the vertical blend is done once per row into ``row`` (scratch, at least as
    wide as ``coarse``), and the loop has no branch on the weight.
    """
    h, wd = w.shape
    ch, cw = coarse.shape
    near = np.float32(0.75)
    far = np.float32(0.25)
    for i in range(h):
        c = i >> 1
        yn = min(c, ch - 1)
        yf = min(c + 1, ch - 1) if i & 1 else max(c - 1, 0)
        a_row = coarse[yn]
        b_row = coarse[yf]
        for k in range(cw):
            row[k] = near * a_row[k] + far * b_row[k]
        w_row = w[i]
        v_row = vw[i]
        o_row = out[i]
        for j in range(wd):
            xn = min(j >> 1, cw - 1)
            xf = min(xn + 1, cw - 1) if j & 1 else max(xn - 1, 0)
            cc = near * row[xn] + far * row[xf]
            ww = w_row[j]
            a = min(ww * np.float32(4.0), np.float32(1.0))
            # where the weight is 0 so is vw: the quotient is 0, times a = 0
            o_row[j] = cc + a * (v_row[j] / max(ww, np.float32(1e-12)) - cc)


@inline
def _pull_top(vw, w, default, out):
    """The coarsest level: its own values where confident, else the overall weighted mean."""
    h, wd = w.shape
    sw = np.float32(0.0)
    sv = np.float32(0.0)
    for i in range(h):
        for j in range(wd):
            sw += w[i, j]
            sv += vw[i, j]
    g = sv / sw if sw > np.float32(1e-9) else default
    for i in range(h):
        for j in range(wd):
            ww = w[i, j]
            a = min(ww * np.float32(4.0), np.float32(1.0))
            v = vw[i, j] / ww if ww > np.float32(1e-12) else g
            out[i, j] = a * v + (np.float32(1.0) - a) * g


PUSHPULL_LEVELS = 12  # scratch tuples always have this many levels (one compiled signature)


@kernel
def pushpull_fill(values, weights, defaults, n, vws, ws, fills, row, out):
    """Hole filling by normalised convolution on a pyramid (push: average down, pull: fill up).

    ``out[c]`` is ``values`` where ``weights[c]`` is ~1 and, elsewhere, a smooth continuation of
    the nearest weighted values (any hole size; ``defaults[c]`` only when no weight is anywhere):
    one fill per weight plane ``c``. ``vws``, ``ws``, ``fills`` are tuples of
    ``PUSHPULL_LEVELS`` per-level ``(C, h, w)`` scratch planes of which the first ``n`` are
    used: level 0 at full size and each next one half the size (rounded up), down to at most
    2x2; ``row`` is scratch at least half as wide as ``values`` (rounded up).
    """
    nc, h, w = weights.shape
    for c in range(nc):
        vw0 = vws[0][c]
        wc = weights[c]
        for i in range(h):
            for j in range(w):
                vw0[i, j] = values[i, j] * wc[i, j]
        prev_w = wc
        for k in range(1, n):
            _push(vws[k - 1][c], prev_w, vws[k][c], ws[k][c])
            prev_w = ws[k][c]
        if n == 1:
            _pull_top(vw0, wc, defaults[c], out[c])
            continue
        _pull_top(vws[n - 1][c], ws[n - 1][c], defaults[c], fills[n - 1][c])
        for k in range(n - 2, 0, -1):
            _pull(vws[k][c], ws[k][c], fills[k + 1][c], row, fills[k][c])
        _pull(vw0, wc, fills[1][c], row, out[c])


@kernel
def layer_weights(union_grown, inter_shrunk, w_background, w_person):
    """Fill weights: background well clear of any person, person well inside it."""
    h, w = union_grown.shape
    for i in range(h):
        for j in range(w):
            u = np.float32(1.0) - min(max(union_grown[i, j], np.float32(0.0)), np.float32(1.0))
            w_background[i, j] = u * u
            w_person[i, j] = _ramp(inter_shrunk[i, j], np.float32(0.5), np.float32(0.9))


@kernel
def person_layer(filled, shift, lo, hi, out):
    """``out = clip(filled + shift, lo, hi)``: the person's own relief, moved to its plane and bounded."""
    h, w = filled.shape
    for i in range(h):
        for j in range(w):
            out[i, j] = min(max(filled[i, j] + shift, lo), hi)


@kernel(parallel=True)
def widen_layers(person, background, xi, xf, out_background, out_diff):
    """Each low-resolution row sampled bilinearly at every full-resolution column.

    ``out_background[i, x]`` is the background layer of row ``i`` at column ``x`` (taps
    ``xi[x]``, ``xi[x] + 1`` with weight ``xf[x]``), ``out_diff`` the same for person -
    background; :func:`compose_layers` then only blends two rows per output row, contiguously.
    """
    nh = person.shape[0]
    w = xi.shape[0]
    for i in prange(nh):
        for x in range(w):
            j0 = xi[x]
            fx = xf[x]
            b0 = background[i, j0]
            b1 = background[i, j0 + 1]
            d0 = person[i, j0] - b0
            d1 = person[i, j0 + 1] - b1
            out_background[i, x] = b0 + fx * (b1 - b0)
            out_diff[i, x] = d0 + fx * (d1 - d0)


@kernel(parallel=True)
def compose_layers(matte, wide_background, wide_diff, yi, yf, still_alpha, follow, edge_state, out):
    """Full-resolution disparity: the widened layers (:func:`widen_layers`) blended by the matte.

    Row ``y`` interpolates the widened rows ``yi[y]`` and ``yi[y] + 1`` with weight ``yf[y]``
    (the caller clamps so ``+ 1`` stays inside); then ``out = background + m * (person -
    background)`` where ``m`` is the matte with its small frame-to-frame changes smoothed
    (``edge_state``, weight ``still_alpha`` for no change up to 1 for a change of ``follow``
    or more): the edge is where the full-resolution matte puts it, neither layer carries the
    other's values across it, and a matte that shimmers by a few percent at its edge does not
    make the disparity flicker there.
    """
    h, w = matte.shape
    inv_follow = np.float32(1.0) / follow
    grow = np.float32(1.0) - still_alpha
    for y in prange(h):
        i0 = yi[y]
        fy = yf[y]
        b0 = wide_background[i0]
        b1 = wide_background[i0 + 1]
        d0 = wide_diff[i0]
        d1 = wide_diff[i0 + 1]
        m_row = matte[y]
        s_row = edge_state[y]
        o_row = out[y]
        for x in range(w):
            b = b0[x] + fy * (b1[x] - b0[x])
            d = d0[x] + fy * (d1[x] - d0[x])
            s = s_row[x]
            dm = m_row[x] - s
            a = still_alpha + grow * min(abs(dm) * inv_follow, np.float32(1.0))
            s += a * dm
            s_row[x] = s
            o_row[x] = b + s * d


@kernel(parallel=True)
def compose_constant(matte, person, background, out):
    """No-depth fallback: ``out = matte * person + (1 - matte) * background`` with two constants."""
    h, w = matte.shape
    for y in prange(h):
        for x in range(w):
            out[y, x] = background + matte[y, x] * (person - background)


@register_warmup
def _warm() -> None:
    frame = np.zeros((6, 8 * 3), np.uint8)
    rb = np.array([0, 3, 6], np.int64)
    cb = np.array([0, 4, 8], np.int64)
    x = np.zeros((1, 3, 4, 4), np.float32)
    small = np.zeros((2, 2), np.float32)
    final_conv_up2(np.zeros((2, 2, 3), np.float32), np.zeros((2, 3, 3), np.float32), np.float32(0.0),
                   np.zeros((2, 3), np.float32), np.zeros((4, 6), np.float32))
    st = np.zeros((2, 2), np.float32)
    motion_adaptive_update(small, small, np.float32(0.1), np.float32(3.0), np.float32(9.0), st, st.copy())
    map_range(small, np.float32(0.0), np.float32(1.0), np.float32(0.75), st)
    buf = np.zeros(4, np.float32)
    cnt = np.zeros(1, np.int64)
    gather_samples(small, small, np.float32(0.5), 1, buf, cnt)
    lv = (np.zeros((2, 2, 2), np.float32),) + tuple(np.zeros((2, 1, 1), np.float32)
                                                     for _ in range(PUSHPULL_LEVELS - 1))
    pushpull_fill(small, np.zeros((2, 2, 2), np.float32), np.zeros(2, np.float32), 1, lv, lv, lv,
                  np.zeros(2, np.float32), np.zeros((2, 2, 2), np.float32))
    layer_weights(small, small, st, st)
    person_layer(small, np.float32(0.0), np.float32(0.0), np.float32(1.0), st)
    m = np.zeros((3, 5), np.float32)
    yi = np.zeros(3, np.int64)
    xi = np.zeros(5, np.int64)
    wide_b, wide_d = np.zeros((2, 5), np.float32), np.zeros((2, 5), np.float32)
    widen_layers(small, small, xi, np.zeros(5, np.float32), wide_b, wide_d)
    # the depth stage passes frames and mattes read-only (one signature each)
    pack_model_input(frozen(frame), rb, cb, 2, 1, 1, np.zeros((2, 8 * 3), np.uint16), x, small)
    pack_luma(frozen(frame), rb, cb, 2, 2, np.zeros((2, 8 * 3), np.uint16), small)
    compose_layers(frozen(m), wide_b, wide_d, yi, np.zeros(3, np.float32), np.float32(0.3), np.float32(0.25),
                   np.zeros_like(m), np.empty_like(m))
    compose_constant(frozen(m), np.float32(1.0), np.float32(0.25), np.empty_like(m))
