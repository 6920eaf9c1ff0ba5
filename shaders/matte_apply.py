"""The matte refinement's full-resolution pass (see :mod:`shaders.matte`): where the
coefficients are constant, fill; elsewhere resample them to the frame's width and apply them.

1. :func:`plan_spans` - per pair of coefficient rows, the runs of output columns where the
   four surrounding model pixels all have ``a = 0`` and the same ``b`` (the matte there is that
   constant) and the runs that need computing;
2. :func:`widen_coeffs` - the coefficient rows resampled to the frame's width, only where a
   computed run needs them;
3. :func:`apply_coeffs` - ONE parallel pass over rows: constant runs are filled, computed runs
   blend the two widened rows and take the dot with the BGR pixel read straight from the
   frame, clipped to [0, 1].
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .jit import kernel

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_COMPUTE = np.float32(-1.0)  # run value of a run that is computed, not filled


@kernel
def plan_spans(coef, jstart, jend, zero, key, spans, values, nspans, wspans, nwspans):
    """Runs of output columns per pair of coefficient rows ``(i, min(i + 1, lh - 1))``:
    ``spans[i, s] = (x0, x1)``, ``values[i, s]`` the constant matte there or -1 where it is
    computed; and per coefficient row the output columns its widened coefficients are needed
    for, ``wspans[r, s] = (x0, x1)`` (the computed runs of both pairs it belongs to).

    ``jstart/jend`` (npx,): output columns whose left sample is model column ``j`` (from
    :func:`sample_table`); scratch ``zero`` (lh, lw) bool, ``key`` (npx,) float32. ``spans``
    (npy, npx, 2), ``values`` (npy, npx), ``nspans`` (npy,), ``wspans`` (lh, npx, 2), ``nwspans``
    (lh,), with ``npy, npx = max(lh - 1, 1), max(lw - 1, 1)``."""
    lh, lw = coef.shape[0], coef.shape[2]
    npy = max(lh - 1, 1)
    npx = max(lw - 1, 1)
    nxt = 1 if lw > 1 else 0
    for r in range(lh):
        z = zero[r]
        a0 = coef[r, 0]
        a1 = coef[r, 1]
        a2 = coef[r, 2]
        for j in range(lw):
            z[j] = (a0[j] == _ZERO) & (a1[j] == _ZERO) & (a2[j] == _ZERO)
    for i in range(npy):
        i1 = min(i + 1, lh - 1)
        za = zero[i]
        zb = zero[i1]
        ba = coef[i, 3]
        bb = coef[i1, 3]
        za1 = za[nxt:]
        zb1 = zb[nxt:]
        ba1 = ba[nxt:]
        bb1 = bb[nxt:]
        for j in range(npx):
            b = ba[j]
            flat = za[j] & za1[j] & zb[j] & zb1[j] & (ba1[j] == b) & (bb[j] == b) & (bb1[j] == b)
            key[j] = min(max(b, _ZERO), _ONE) if flat else _COMPUTE
        n = 0
        cur = np.float32(-2.0)
        for j in range(npx):
            if jend[j] <= jstart[j]:
                continue
            kv = key[j]
            if kv == cur:
                spans[i, n - 1, 1] = jend[j]
            else:
                spans[i, n, 0] = jstart[j]
                spans[i, n, 1] = jend[j]
                values[i, n] = kv
                cur = kv
                n += 1
        nspans[i] = n
    # coefficient row r is the top of pair r and the bottom of pair r - 1
    for r in range(lh):
        pa = r if r < npy else -1
        pb = r - 1 if 1 <= r <= npy else -1
        na = nspans[pa] if pa >= 0 else 0
        nb = nspans[pb] if pb >= 0 else 0
        sa = 0
        sb = 0
        n = 0
        while True:
            while sa < na and values[pa, sa] >= _ZERO:
                sa += 1
            while sb < nb and values[pb, sb] >= _ZERO:
                sb += 1
            if sa >= na and sb >= nb:
                break
            if sb >= nb or (sa < na and spans[pa, sa, 0] <= spans[pb, sb, 0]):
                x0 = spans[pa, sa, 0]
                x1 = spans[pa, sa, 1]
                sa += 1
            else:
                x0 = spans[pb, sb, 0]
                x1 = spans[pb, sb, 1]
                sb += 1
            if n > 0 and x0 <= wspans[r, n - 1, 1]:
                wspans[r, n - 1, 1] = max(wspans[r, n - 1, 1], x1)
            else:
                wspans[r, n, 0] = x0
                wspans[r, n, 1] = x1
                n += 1
        nwspans[r] = n


@kernel
def widen_coeffs(coef, x0s, x1s, wxs, wspans, nwspans, wide):
    """wide[y, k, x] = coef[y, k, :] resampled to the frame's width, for x in the runs
    ``wspans[y, :nwspans[y]]`` only (elsewhere ``wide`` keeps whatever it held)."""
    lh = coef.shape[0]
    for y in range(lh):
        for s in range(nwspans[y]):
            xa = np.int64(wspans[y, s, 0])
            n = np.int64(wspans[y, s, 1]) - xa
            i0 = x0s[xa:xa + n]
            i1 = x1s[xa:xa + n]
            wx = wxs[xa:xa + n]
            for k in range(4):
                c = coef[y, k]
                d = wide[y, k, xa:xa + n]
                for x in range(n):
                    c0 = c[i0[x]]
                    d[x] = c0 + wx[x] * (c[i1[x]] - c0)


@kernel(parallel=True)
def apply_coeffs(frame, wide, y0s, y1s, wys, spans, values, nspans, out):
    """out = clip(a . frame + b, 0, 1) with ``(a, b)`` lerped between the two widened
    coefficient rows of each output row (``y0s/y1s/wys`` from :func:`sample_table`); runs
    :func:`plan_spans` found constant are filled with their value."""
    hh, ww = out.shape
    for y in prange(hh):
        wy = wys[y]
        i = y0s[y]
        j = y1s[y]
        # the frame row indexed flat: (x, channel) indexing of the uint8 row keeps LLVM from
        # vectorising the loop (5x slower)
        frow = frame[y].reshape(ww * 3)
        orow = out[y]
        for s in range(nspans[i]):
            xa = np.int64(spans[i, s, 0])
            n = np.int64(spans[i, s, 1]) - xa
            o = orow[xa:xa + n]
            v = values[i, s]
            if v >= _ZERO:
                for x in range(n):
                    o[x] = v
            else:
                f = frow[3 * xa:3 * (xa + n)]
                t0 = wide[i, 0, xa:xa + n]
                t1 = wide[i, 1, xa:xa + n]
                t2 = wide[i, 2, xa:xa + n]
                t3 = wide[i, 3, xa:xa + n]
                u0 = wide[j, 0, xa:xa + n]
                u1 = wide[j, 1, xa:xa + n]
                u2 = wide[j, 2, xa:xa + n]
                u3 = wide[j, 3, xa:xa + n]
                for x in range(n):
                    a_b = t0[x] + wy * (u0[x] - t0[x])
                    a_g = t1[x] + wy * (u1[x] - t1[x])
                    a_r = t2[x] + wy * (u2[x] - t2[x])
                    b = t3[x] + wy * (u3[x] - t3[x])
                    q = (a_b * np.float32(f[3 * x]) + a_g * np.float32(f[3 * x + 1])
                         + a_r * np.float32(f[3 * x + 2]) + b)
                    o[x] = min(max(q, _ZERO), _ONE)
