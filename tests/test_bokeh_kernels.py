"""Every bokeh / colour kernel against a slow NumPy reference on odd-sized seeded inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shaders import bokeh, gather
from shaders.color import ENCODE_SIZE, boost_curve, encode_bits, linear_to_srgb, make_luts, srgb_to_linear

RNG_SEED = 20240607


def ref_encode(v: np.ndarray, boost: float, threshold: float) -> np.ndarray:
    """Working-domain value -> uint8 code by inverting the boost curve with bisection."""
    v = np.asarray(v, np.float64)
    lo = np.zeros_like(v)
    hi = np.ones_like(v)
    for _ in range(60):
        mid = (lo + hi) / 2
        below = boost_curve(mid, boost, threshold) < v
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return np.floor(linear_to_srgb((lo + hi) / 2) * 255 + 0.5).astype(np.int64)


# -- colour -------------------------------------------------------------------------------------

@pytest.mark.parametrize("boost,threshold", [(1.0, 1.0), (3.0, 0.85), (20.0, 0.5)])
def test_decode_lut_is_srgb_then_boost(boost, threshold):
    luts = make_luts(boost, threshold)
    codes = np.arange(256) / 255.0
    expect = boost_curve(srgb_to_linear(codes), boost, threshold)
    np.testing.assert_allclose(luts.decode, expect, rtol=1e-6, atol=1e-9)
    assert np.all(np.diff(luts.decode) > 0)
    # mid-tones are untouched by the boost (that keeps their mean)
    t = int(threshold * 255)
    np.testing.assert_allclose(luts.decode[:t], srgb_to_linear(codes[:t]), rtol=1e-6)


@pytest.mark.parametrize("boost,threshold", [(1.0, 1.0), (3.0, 0.85), (20.0, 0.5)])
def test_encode_inverts_decode_for_every_code(boost, threshold):
    luts = make_luts(boost, threshold)
    assert luts.encode_array(luts.decode).tolist() == list(range(256))
    # the kernel helper and the NumPy version agree
    bits = luts.decode.view(np.int32)
    assert [int(encode_bits.py_func(b, luts.encode)) for b in bits] == list(range(256))


@pytest.mark.parametrize("boost,threshold", [(1.0, 1.0), (3.0, 0.85), (20.0, 0.5)])
def test_encode_matches_reference_on_random_values(boost, threshold):
    luts = make_luts(boost, threshold)
    rng = np.random.default_rng(RNG_SEED)
    vmax = float(boost_curve(np.array(1.0), boost, threshold))
    v = np.concatenate([rng.uniform(0, vmax, 3001), rng.uniform(0, 0.01, 1001), 10.0 ** rng.uniform(-7, 0, 1001),
                        [-1.0, -0.0, 0.0, vmax, vmax * 2, 1e30, np.inf]]).astype(np.float32)
    got = luts.encode_array(v).astype(int)
    expect = ref_encode(np.clip(v, 0, vmax), boost, threshold)
    assert np.abs(got - expect).max() <= 1
    assert np.mean(got != expect) < 0.01  # off by one only at a rounding boundary


def test_encode_table_size_and_monotone():
    luts = make_luts(3.0, 0.85)
    assert luts.encode.shape == (ENCODE_SIZE,) and luts.encode.dtype == np.uint8
    assert np.all(np.diff(luts.encode.astype(int)) >= 0)
    with pytest.raises(ValueError):
        make_luts(0.5, 0.85)


# -- shapes ---------------------------------------------------------------------------------------

def _shape_mask(wt: np.ndarray, k: int) -> np.ndarray:
    d_max = (wt.shape[1] - 1) // 2
    m = np.zeros((wt.shape[1], wt.shape[1]), bool)
    for d in range(-d_max, d_max + 1):
        hw = wt[k, d + d_max]
        if hw >= 0:
            m[d + d_max, d_max - hw:d_max + hw + 1] = True
    return m


def test_disk_table_is_pixel_centres_inside_radius():
    kmax = 13
    wt = gather.shape_table(kmax)
    d_max = kmax + 2
    yy, xx = np.mgrid[-d_max:d_max + 1, -d_max:d_max + 1]
    for k in range(kmax + 2):
        expect = xx ** 2 + yy ** 2 <= k ** 2
        assert np.array_equal(_shape_mask(wt, k), expect), k
    np.testing.assert_array_equal(gather.shape_areas(wt), [_shape_mask(wt, k).sum() for k in range(kmax + 2)])


@pytest.mark.parametrize("blades", [5, 6, 7, 9])
def test_polygon_table_is_pixel_centres_inside_polygon(blades):
    kmax = 11
    wt = gather.shape_table(kmax, blades)
    d_max = kmax + 2
    yy, xx = np.mgrid[-d_max:d_max + 1, -d_max:d_max + 1].astype(np.float64)
    for k in range(kmax + 2):
        rr = float(k)
        verts = [(rr * math.cos(-math.pi / 2 + 2 * math.pi * i / blades),
                  rr * math.sin(-math.pi / 2 + 2 * math.pi * i / blades)) for i in range(blades)]
        inside = np.ones_like(xx, bool)
        for i in range(blades):  # convex, counter-clockwise in image coordinates: left of each edge
            (x0, y0), (x1, y1) = verts[i], verts[(i + 1) % blades]
            inside &= (x1 - x0) * (yy - y0) - (y1 - y0) * (xx - x0) >= -1e-7
        if k == 0:
            inside = (xx == 0) & (yy == 0)
        got = _shape_mask(wt, k)
        assert np.array_equal(got, inside), (blades, k)
        # inscribed in the disk of the same radius, symmetric left-right
        assert not np.any(got & (xx ** 2 + yy ** 2 > rr ** 2 + 1e-6))
        assert np.array_equal(got, got[:, ::-1])


# -- split ------------------------------------------------------------------------------------

def ref_split(frame, coc, matte, s, lut, tol, lim):
    h, w = coc.shape
    c = np.clip(np.nan_to_num(coc.astype(np.float64), nan=0.0), -lim, lim)
    m = np.zeros_like(c) if matte is None else np.clip(matte.astype(np.float64), 0, 1)
    lin = lut.astype(np.float64)[frame]
    p, n = np.maximum(c, 0), np.maximum(-c, 0)
    w_far = (1 - np.minimum(2 * m, 1)) ** 2 * np.clip(p - 0.5, 0, 1)
    a_near = np.clip(n - m * tol - 0.5, 0, 1)
    by_coc = 1 - np.clip(np.abs(c) - 0.5, 0, 1)
    by_matte = 1 - np.clip(n - tol - 0.5, 0, 1)
    alpha = np.floor((by_coc + m * (by_matte - by_coc)) * 255 + 0.5)
    hl, wl = -(-h // s), -(-w // s)
    far = np.zeros((hl, wl, 4))
    near = np.zeros((hl, wl, 4))
    rw, fw, rn = np.zeros((hl, wl)), np.zeros((hl, wl)), np.zeros((hl, wl))
    need = np.zeros((hl, wl), np.uint8)
    for yh in range(hl):
        for xh in range(wl):
            sl = (slice(yh * s, yh * s + s), slice(xh * s, xh * s + s))
            wf = w_far[sl] + bokeh.EPS_WEIGHT * (1 - a_near[sl]) + bokeh.EPS_NEAR
            far[yh, xh, :3] = (wf[..., None] * lin[sl]).sum((0, 1))
            far[yh, xh, 3] = wf.sum()
            cnt = wf.size
            an = a_near[sl]
            near[yh, xh, :3] = (an[..., None] * lin[sl]).sum((0, 1)) / cnt
            near[yh, xh, 3] = an.sum() / cnt
            rw[yh, xh] = (w_far[sl] * p[sl]).sum() / cnt / s
            fw[yh, xh] = w_far[sl].sum() / cnt
            rn[yh, xh] = (n[sl][an > 0].max() if np.any(an > 0) else 0.0) / s
            need[yh, xh] = np.any(alpha[sl] != 255)
    return far, near, rw, fw, rn, need, alpha


def _run_split(frame, coc, matte, s, luts, tol, lim, pad=3, disparity=None, focus=0.0, aperture=0.0, dirty=None):
    """Runs the split; with ``disparity`` the CoC comes from it (and is returned last)."""
    h, w = coc.shape
    hl, wl = -(-h // s), -(-w // s)
    prefix = np.full((hl + 1, 4 * (wl + 2 * pad + 1)), np.nan, np.float32)
    near = np.zeros((hl, wl, 4), np.float32)  # rows without near pixels are left as they are
    if dirty is not None:
        near[dirty.astype(bool)] = np.nan  # ... but a row that had some last time is cleared
    rw, fw, rn = (np.full((hl, wl), np.nan, np.float32) for _ in range(3))
    need = np.full((hl, wl), 7, np.uint8)
    alpha = np.zeros((h, w + 5), np.uint8)
    near_dirty = np.zeros(hl, np.uint8) if dirty is None else dirty.copy()
    src = coc if disparity is None else disparity
    coc_out = np.full((h, w), np.nan, np.float32) if disparity is not None else np.zeros((1, 1), np.float32)
    bokeh.split_layers(frame, src, src if matte is None else matte, matte is not None,
                       (disparity is not None, np.float32(focus), np.float32(aperture), np.float32(lim)), s,
                       luts.decode, np.float32(tol), pad,
                       np.zeros((bokeh.threads(), bokeh.split_scratch(s)), np.float32), near_dirty, coc_out,
                       (prefix, near, rw, fw, rn, need), bokeh.ALL_TILES, alpha)
    assert np.all(np.isnan(prefix[hl]))  # the last row belongs to the caller
    assert np.all(alpha[:, w:] == 0)  # the padding of the alpha rows is never written
    # back from prefix sums to the layer itself
    q = prefix[:hl].reshape(hl, wl + 2 * pad + 1, 4).astype(np.float64)
    far = np.diff(q[:, pad:pad + wl + 1], axis=1)
    assert np.all(q[:, :pad + 1] == 0) and np.all(q[:, pad + wl + 1:] == q[:, pad + wl:pad + wl + 1])
    np.testing.assert_array_equal(near_dirty, (near[..., 3] > 0).any(1))
    res = (far, near, rw, fw, rn, need, alpha[:, :w])
    return res + (coc_out,) if disparity is not None else res


@pytest.mark.parametrize("s", [1, 2, 3])
def test_split_of_some_tiles_keeps_the_others_and_shifts_their_prefix_sums(s):
    """Frame A split whole, then frame B (A changed on some tiles, near pixels included) split on
    those tiles only, into the same buffers: the same layers as B split whole."""
    rng = np.random.default_rng(RNG_SEED + 10 + s)
    tile_rows, pad = 2, 4
    hl, wl = 3 * tile_rows + 1, 2 * bokeh.SEG + 5   # 4 x 5 tiles, the last ones partial
    h, w = hl * s - (s - 1), wl * s - (s - 1)          # odd sizes: partial blocks too
    luts = make_luts(3.0, 0.85)
    disp = rng.uniform(0.0, 1.0, (h, w)).astype(np.float32)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    matte = rng.uniform(-0.2, 1.2, (h, w)).astype(np.float32)
    changed = np.zeros((4, -(-wl // bokeh.TILE_COLS)), np.uint8)
    # two neighbours (split as one segment), a first, a last partial one, a lone one
    changed[0, 1] = changed[0, 2] = changed[2, 0] = changed[3, -1] = changed[1, 3] = 1
    frame_b, disp_b, matte_b = frame.copy(), disp.copy(), matte.copy()
    for ty, tx in zip(*np.nonzero(changed)):
        ys = slice(ty * tile_rows * s, (ty + 1) * tile_rows * s)
        xs = slice(tx * bokeh.TILE_COLS * s, (tx + 1) * bokeh.TILE_COLS * s)
        frame_b[ys, xs] = rng.integers(0, 256, frame_b[ys, xs].shape, dtype=np.uint8)
        disp_b[ys, xs] = rng.uniform(0.0, 1.0, disp_b[ys, xs].shape)
        matte_b[ys, xs] = rng.uniform(-0.2, 1.2, matte_b[ys, xs].shape)

    def buffers():
        return ((np.zeros((hl + 1, 4 * (wl + 2 * pad + 1)), np.float32), np.zeros((hl, wl, 4), np.float32),
                 *(np.zeros((hl, wl), np.float32) for _ in range(3)), np.zeros((hl, wl), np.uint8)),
                np.zeros(hl, np.uint8), np.zeros((h, w), np.float32), np.zeros((h, w + 3), np.uint8))

    def split(f, d, m, tiles, bufs):
        layers, near_dirty, coc_out, alpha = bufs
        # aperture 4 around focus 0.5: CoC -2..2, so near pixels on about a quarter of them
        bokeh.split_layers(f, d, m, True, (True, np.float32(0.5), np.float32(4.0), np.float32(3.0)), s, luts.decode,
                           np.float32(0.5), pad, np.zeros((bokeh.threads(), bokeh.split_scratch(s)), np.float32),
                           near_dirty, coc_out, layers, tiles, alpha)

    reused, fresh = buffers(), buffers()
    split(frame, disp, matte, bokeh.ALL_TILES, reused)
    split(frame_b, disp_b, matte_b, (changed, tile_rows), reused)
    split(frame_b, disp_b, matte_b, bokeh.ALL_TILES, fresh)
    (p_r, *layers_r), dirty_r, coc_r, alpha_r = reused
    (p_f, *layers_f), dirty_f, coc_f, alpha_f = fresh
    assert dirty_f.any()  # near pixels were about
    np.testing.assert_allclose(p_r[:hl], p_f[:hl], rtol=1e-5, atol=1e-4)
    for got, exp in zip(layers_r, layers_f):
        np.testing.assert_array_equal(got, exp)
    np.testing.assert_array_equal(coc_r, coc_f)
    np.testing.assert_array_equal(alpha_r, alpha_f)
    assert np.all(dirty_r >= dirty_f)  # rows with near pixels stay marked


@pytest.mark.parametrize("s", [1, 2, 3])
@pytest.mark.parametrize("with_matte", [False, True])
@pytest.mark.parametrize("h,w", [(17, 23), (16, 3 * bokeh.SEG + 4)])  # odd blocks; a second segment
def test_split_layers_matches_reference(s, with_matte, h, w):
    rng = np.random.default_rng(RNG_SEED + s + w)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    coc = rng.uniform(-9, 9, (h, w)).astype(np.float32)
    coc[rng.random((h, w)) < 0.2] = 0.0
    coc[0, 0] = np.nan
    coc[1, 1] = 40.0  # beyond the limit
    matte = None
    if with_matte:
        matte = rng.uniform(-0.2, 1.2, (h, w)).astype(np.float32)
        matte[rng.random((h, w)) < 0.3] = 1.0
    luts = make_luts(3.0, 0.85)
    tol, lim = 2.0, 20.0
    got = _run_split(frame, coc, matte, s, luts, tol, lim)
    exp = ref_split(frame, coc, matte, s, luts.decode, tol, lim)
    names = ("far", "near", "rw", "fw", "rnear")
    for name, g, e in zip(names, got[:5], exp[:5]):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4, err_msg=name)
    assert np.abs(got[6].astype(int) - exp[6]).max() <= 1  # float32 vs float64 rounding at .5
    np.testing.assert_array_equal(got[5], exp[5])


@pytest.mark.parametrize("s", [1, 2, 3])
def test_split_from_disparity_writes_the_coc_and_splits_as_with_it(s):
    """The renderer stage's path: the CoC computed in the split equals coc_from_disparity's, and
    the layers equal the split of that CoC; a near row left from the last frame is cleared."""
    from realtime.stages.render import coc_from_disparity

    rng = np.random.default_rng(RNG_SEED + 7)
    h, w = 19, 2 * bokeh.SEG + 13  # more than one segment
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    disp = rng.uniform(0, 1, (h, w)).astype(np.float32)
    matte = rng.uniform(0, 1, (h, w)).astype(np.float32)
    luts = make_luts(3.0, 0.85)
    focus, aperture, lim = 0.55, 40.0, 12.0
    coc = coc_from_disparity(disp, focus, aperture, lim)
    hl = -(-h // s)
    dirty = (np.arange(hl) % 3 == 0).astype(np.uint8)
    got = _run_split(frame, coc, matte, s, luts, 2.0, lim, disparity=disp, focus=focus, aperture=aperture,
                     dirty=dirty)
    exp = _run_split(frame, coc, matte, s, luts, 2.0, lim)
    np.testing.assert_array_equal(got[-1], coc)
    for g, e in zip(got[:-1], exp):
        np.testing.assert_array_equal(g, e)


def test_split_alpha_is_exactly_sharp_for_zero_coc_and_for_the_subject():
    rng = np.random.default_rng(RNG_SEED)
    h, w = 9, 13
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    coc = np.zeros((h, w), np.float32)
    luts = make_luts()
    *_, need, alpha = _run_split(frame, coc, None, 2, luts, 3.0, 1.0)
    assert np.all(alpha == 255) and np.all(need == 0)
    coc[:] = 10.0
    matte = np.ones((h, w), np.float32)
    *_, need, alpha = _run_split(frame, coc, matte, 2, luts, 3.0, 10.0)
    assert np.all(alpha == 255)


# -- prefix, radius ---------------------------------------------------------------------------

def test_row_prefix_matches_cumsum():
    rng = np.random.default_rng(RNG_SEED)
    h, w, pad = 7, 19, 5
    src = rng.random((h, w, 4), dtype=np.float32)
    p = np.full((h + 1, 4 * (w + 2 * pad + 1)), np.nan, np.float32)
    p[h] = 0.0
    gather.row_prefix(src, pad, p)
    q = p[:h].reshape(h, w + 2 * pad + 1, 4)
    cs = np.concatenate([np.zeros((h, 1, 4)), np.cumsum(src.astype(np.float64), axis=1)], axis=1)
    np.testing.assert_allclose(q[:, pad:pad + w + 1], cs, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(q[:, :pad], 0.0)
    np.testing.assert_allclose(q[:, pad + w + 1:], np.repeat(cs[:, -1:], pad, axis=1), rtol=1e-5)


def test_far_radius_row_fills_behind_the_subject_and_clamps():
    rng = np.random.default_rng(RNG_SEED)
    h, w = 11, 13
    fw = rng.random((h, w), dtype=np.float32)
    fw[3:6, 4:9] = 0.0
    own = rng.uniform(0, 9, (h, w)).astype(np.float32)
    rw = fw * own
    box_rw = rng.uniform(0, 5, (h, w)).astype(np.float32)
    box_fw = rng.uniform(0, 1, (h, w)).astype(np.float32)
    box_fw[0, :3] = 0.0
    rw[1, 1] = np.nan
    rad_near = np.where(rng.random((h, w)) < 0.3, rng.uniform(0, 9, (h, w)), 0.0).astype(np.float32)
    fill = np.where(box_fw > 1e-6, box_rw / np.where(box_fw > 0, box_fw, 1), 0.0)
    expect = np.clip(np.nan_to_num(rw + (1 - fw) * fill - 1.0, nan=0.0), 0.0, 7.5)
    for near_on in (False, True):
        out = np.empty((h, w), np.float32)
        for y in range(h):
            gather.far_radius_row(rw, fw, box_rw, box_fw, np.float32(1.0), np.float32(7.5), rad_near,
                                 near_on, y, out[y])
        np.testing.assert_allclose(out, np.minimum(np.maximum(expect, rad_near), 7.5) if near_on else expect,
                                   rtol=1e-5, atol=1e-5)


# -- gather -----------------------------------------------------------------------------------

def ref_shape_sum(src, wt, k, y, x):
    """Sum of src (h, w, C) over shape k centred at (y, x), clipped to the image."""
    h, w = src.shape[:2]
    d_max = (wt.shape[1] - 1) // 2
    total = np.zeros(src.shape[2])
    for d in range(-d_max, d_max + 1):
        hw = wt[k, d + d_max]
        if hw < 0 or not 0 <= y + d < h:
            continue
        total += src[y + d, max(x - hw, 0):min(x + hw, w - 1) + 1].sum(0)
    return total


def ref_blend_sum(src, wt, r, y, x):
    k = int(math.floor(r))
    t = r - k
    return (1 - t) * ref_shape_sum(src, wt, k, y, x) + t * ref_shape_sum(src, wt, k + 1, y, x)


def _prefix(src, pad):
    h, w, _ = src.shape
    p = np.zeros((h + 1, 4 * (w + 2 * pad + 1)), np.float32)
    gather.row_prefix(src, pad, p)
    return p


@pytest.mark.parametrize("blades", [0, 6])
def test_gather_far_matches_reference(blades):
    rng = np.random.default_rng(RNG_SEED + blades)
    h, w, kmax = 19, 27, 6
    luts = make_luts(3.0, 0.85)
    src = np.empty((h, w, 4), np.float32)
    src[..., 3] = rng.uniform(0.001, 1.0, (h, w))
    src[..., :3] = rng.uniform(0, 1.5, (h, w, 3)) * src[..., 3:]
    rad = rng.uniform(0, kmax + 1 - 1e-3, (h, w)).astype(np.float32)
    rad[4, :] = 3.0  # a run of equal K
    rad[5, :] = np.linspace(0, kmax + 0.99, w)
    need = (rng.random((h, w)) < 0.8).astype(np.uint8)
    wt = gather.shape_table(kmax, blades)
    pad = kmax + 2
    out = np.full((h, w, 3), 77, np.uint8)
    scratch = np.zeros((bokeh.threads(), 3, 4 * gather.RUN), np.float32)
    # radius planes that make far_radius_row hand back ``rad`` itself (all far field)
    ones, zeros = np.ones((h, w), np.float32), np.zeros((h, w), np.float32)
    gather.gather_far(_prefix(src, pad), rad, ones, zeros, zeros, np.float32(0), np.float32(kmax + 1 - 1e-3),
                     zeros, False, need, wt, kmax + 2, pad, scratch,
                     np.zeros((bokeh.threads(), w), np.float32), luts.encode, out)
    for y in range(h):
        for x in range(w):
            if not need[y, x]:
                assert np.all(out[y, x] == 77)
                continue
            s = ref_blend_sum(src.astype(np.float64), wt, float(rad[y, x]), y, x)
            expect = ref_encode(s[:3] / s[3], 3.0, 0.85)
            assert np.abs(out[y, x].astype(int) - expect).max() <= 1, (y, x)


def test_gather_near_matches_reference():
    rng = np.random.default_rng(RNG_SEED)
    h, w, kmax = 21, 17, 5
    src = np.zeros((h, w, 4), np.float32)
    cov = np.where(rng.random((h, w)) < 0.3, rng.uniform(0, 1, (h, w)), 0.0)
    src[..., 3] = cov
    src[..., :3] = rng.uniform(0, 1, (h, w, 3)) * cov[..., None]
    rad = rng.uniform(0, kmax + 1 - 1e-3, (h, w)).astype(np.float32)
    rad[rng.random((h, w)) < 0.2] = 0.0
    wt = gather.shape_table(kmax)
    pad = kmax + 2
    out = np.full((h, w, 4), np.nan, np.float32)
    scratch = np.zeros((bokeh.threads(), 2, 4 * gather.RUN), np.float32)
    gather.gather_near(_prefix(src, pad), rad, wt, gather.shape_areas(wt), kmax + 2, pad, scratch, out)
    ones = np.ones((h, w, 1))
    for y in range(h):
        for x in range(w):
            if rad[y, x] <= 0:
                np.testing.assert_array_equal(out[y, x], 0.0)
                continue
            s = ref_blend_sum(src.astype(np.float64), wt, float(rad[y, x]), y, x)
            count = ref_blend_sum(ones, wt, float(rad[y, x]), y, x)[0]
            np.testing.assert_allclose(out[y, x], s / count, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("r", [2.0, 4.0, 7.3, 11.0])
def test_point_spreads_to_flat_disk_at_float_precision(r):
    """A single point, gathered with a uniform radius r, is a flat disk of radius r +/- 1."""
    n = 2 * int(r) + 9
    c = n // 2
    src = np.zeros((n, n, 4), np.float32)
    src[c, c] = 1.0
    kmax = int(r) + 1
    wt = gather.shape_table(kmax)
    pad = kmax + 2
    p = _prefix(src, pad)
    acc_in = np.zeros(4 * n, np.float32)
    acc_out = np.zeros(4 * n, np.float32)
    k = int(r)
    t = np.float32(r - k)
    psf = np.zeros((n, n))
    for y in range(n):
        gather._accumulate_run(p, y, 0, n, k, wt, kmax + 2, pad, acc_in, acc_out)
        psf[y] = (acc_in + t * (acc_out - acc_in))[3::4]
    yy, xx = np.mgrid[0:n, 0:n]
    dist = np.hypot(yy - c, xx - c)
    lit = psf > 1e-6
    assert dist[lit].max() <= r + 1.0
    assert np.all(lit[dist <= r - 1.0])
    core = psf[dist <= max(r - 1.0, 0.0)]
    assert np.ptp(core) < 1e-6 and core.min() > 0.5  # flat: weight 1 inside, not a Gaussian


# -- finish -----------------------------------------------------------------------------------

@pytest.mark.parametrize("s,h,w", [(2, 15, 45), (3, 16, 47)])
@pytest.mark.parametrize("near_on", [True, False])
def test_finish_matches_reference(near_on, s, h, w):
    rng = np.random.default_rng(RNG_SEED + s)
    hl, wl = -(-h // s), -(-w // s)
    luts = make_luts(3.0, 0.85)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    bg = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    # runs of all-sharp and all-far pixels (whole 8-pixel words and parts of them) between
    # partly covered ones; rows padded to whole words, the padding never read
    alpha = np.full((h, 48), 255, np.uint8)
    alpha[:, :w] = rng.choice(np.array([0, 255, 17, 128, 254], np.uint8), (h, w))
    for y in range(h):
        a, b = sorted(rng.integers(0, w, 2))
        alpha[y, a:b] = rng.choice([0, 255])
        c = int(rng.integers(0, w - 20))
        alpha[y, c:c + 20] = 255 - alpha[y, a]
    alpha[0, :w] = 0
    alpha[1, :w] = 255
    near = np.zeros((hl, wl, 4), np.float32)
    if near_on:
        cov = np.where(rng.random((hl, wl)) < 0.3, rng.uniform(0, 1, (hl, wl)), 0.0)
        cov[:2] = 0.0  # rows without near pixels take the run path
        near[..., 3] = cov
        near[..., :3] = rng.uniform(0, 1, (hl, wl, 3)) * cov[..., None]
    tap_y, tap_x = bokeh.bilinear_taps(h, hl, s), bokeh.bilinear_taps(w, wl, s)
    out = np.zeros_like(frame)
    bokeh.finish(frame, alpha, bg, luts.decode, luts.encode, near, near_on, tap_y, tap_x,
                 np.zeros((bokeh.threads(), 4), np.float32), out)
    alpha = alpha[:, :w]
    # reference: bilinear upsampling of the near layer with centres aligned, blends in linear light
    fy = np.clip((np.arange(h) + 0.5) / s - 0.5, 0, hl - 1)
    fx = np.clip((np.arange(w) + 0.5) / s - 0.5, 0, wl - 1)
    y0, x0 = np.floor(fy).astype(int), np.floor(fx).astype(int)
    y1, x1 = np.minimum(y0 + 1, hl - 1), np.minimum(x0 + 1, wl - 1)
    wy, wx = (fy - y0)[:, None, None], (fx - x0)[None, :, None]
    nb = near.astype(np.float64)
    up = ((1 - wy) * (1 - wx) * nb[y0][:, x0] + (1 - wy) * wx * nb[y0][:, x1]
          + wy * (1 - wx) * nb[y1][:, x0] + wy * wx * nb[y1][:, x1])
    dec = luts.decode.astype(np.float64)
    a = alpha[..., None] / 255.0
    base = dec[bg] + a * (dec[frame] - dec[bg])
    lin = up[..., :3] + (1 - up[..., 3:]) * base
    expect = ref_encode(lin, 3.0, 0.85)
    plain = up[..., 3] <= 0
    expect[plain & (alpha == 255)] = frame[plain & (alpha == 255)]
    expect[plain & (alpha == 0)] = bg[plain & (alpha == 0)]
    assert np.abs(out.astype(int) - expect).max() <= 1
    # copies are exact
    assert np.array_equal(out[plain & (alpha == 255)], frame[plain & (alpha == 255)])
    assert np.array_equal(out[plain & (alpha == 0)], bg[plain & (alpha == 0)])
    # the far field already in the output: all-far pixels are left alone, the rest as before
    inplace = bg.copy()
    bokeh.finish(frame, np.pad(alpha, ((0, 0), (0, 48 - w)), constant_values=255), inplace, luts.decode,
                 luts.encode, near, near_on, tap_y, tap_x, np.zeros((bokeh.threads(), 4), np.float32), inplace)
    assert np.array_equal(inplace, out)


def test_bilinear_taps_align_pixel_centres():
    t = bokeh.bilinear_taps(9, 5, 2)
    pos = t[:, 0] + t[:, 1]
    np.testing.assert_allclose(pos, np.clip((np.arange(9) + 0.5) / 2 - 0.5, 0, 4))
    t3 = bokeh.bilinear_taps(10, 4, 3)  # a last, narrower layer pixel
    np.testing.assert_allclose(t3[:, 0] + t3[:, 1], np.clip((np.arange(10) + 0.5) / 3 - 0.5, 0, 3), atol=1e-6)
    t1 = bokeh.bilinear_taps(7, 7, 1)
    np.testing.assert_array_equal(t1[:, 0], np.arange(7))
    np.testing.assert_array_equal(t1[:, 1], 0.0)


def test_abs_max_bits_matches_numpy_and_flags_nan():
    rng = np.random.default_rng(RNG_SEED)
    a = rng.uniform(-30, 20, (13, 29)).astype(np.float32)
    a[3, 7] = -np.inf
    a[5, 2] = np.nan
    out = np.zeros(13, np.int32)
    bokeh.abs_max_bits(a, out)
    got = out.view(np.float32)
    expect = np.nanmax(np.abs(a), axis=1)
    rows = [y for y in range(13) if y != 5]
    np.testing.assert_array_equal(got[rows], expect[rows])
    assert out[5] > 0x7F800000  # NaN shows as bits above infinity
