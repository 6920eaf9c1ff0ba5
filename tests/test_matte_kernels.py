"""Matte refinement kernels against slow NumPy references, on odd-sized seeded inputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from shaders.matte import (SETTLE, AreaDownscaler, FineGuidedUpsampler, GuidedUpsampler, area_downscale,
                           area_resample, area_table, guided_coeffs, sample_table)


# -- slow references -------------------------------------------------------------------------------

def ref_box_mean(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window clipped at the borders, pixel by pixel (float64)."""
    h, w = a.shape[:2]
    out = np.empty(a.shape, np.float64)
    for y in range(h):
        for x in range(w):
            win = a[max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1]
            out[y, x] = win.reshape(-1, *a.shape[2:]).mean(axis=0)
    return out


def ref_half(a: np.ndarray) -> np.ndarray:
    """2x2 block means; a block past an odd edge repeats the last row or column."""
    h, w = a.shape[:2]
    a = np.concatenate([a, a[-1:]], axis=0) if h % 2 else a
    a = np.concatenate([a, a[:, -1:]], axis=1) if w % 2 else a
    return 0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])


def ref_up_from_half(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear from the half grid: model pixel y sits at clip(y / 2 - 1/4, 0, hh - 1)."""
    hh, hw = a.shape[:2]
    ys = np.clip(np.arange(h) / 2.0 - 0.25, 0, hh - 1)
    xs = np.clip(np.arange(w) / 2.0 - 0.25, 0, hw - 1)
    y0 = np.minimum(np.floor(ys).astype(int), max(hh - 2, 0))
    x0 = np.minimum(np.floor(xs).astype(int), max(hw - 2, 0))
    y1 = np.minimum(y0 + 1, hh - 1)
    x1 = np.minimum(x0 + 1, hw - 1)
    wy = np.minimum(ys - y0, 1.0)[:, None, None]
    wx = np.minimum(xs - x0, 1.0)[None, :, None]
    s = a.reshape(hh, hw, -1)
    top = s[y0][:, x0] * (1 - wx) + s[y0][:, x1] * wx
    bot = s[y1][:, x0] * (1 - wx) + s[y1][:, x1] * wx
    return (top * (1 - wy) + bot * wy).reshape(h, w, *a.shape[2:])


def ref_coeffs(guide: np.ndarray, p: np.ndarray, r: int, eps: float, detail: float, protect: float,
               rgb: bool = False, contrast: float = 1.0) -> np.ndarray:
    """The refinement's planar (a_b, a_g, a_r, b) per model pixel, written out with np.linalg:
    local fits on the statistics' 2x2 block means with box radius round(r / 2), their box means
    upsampled."""
    h, w = p.shape
    rh = max(1, int(round(r / 2)))
    G = guide.astype(np.float64) / 255.0 - 0.5
    P = p.astype(np.float64)
    mI = ref_box_mean(ref_half(G), rh)
    mp = ref_box_mean(ref_half(P), rh)
    mII = ref_box_mean(ref_half(G[..., :, None] * G[..., None, :]), rh)
    mIp = ref_box_mean(ref_half(G * P[..., None]), rh)
    mpp = ref_box_mean(ref_half(P * P), rh)
    cov = mII - mI[..., :, None] * mI[..., None, :]
    cov_ip = mIp - mI * mp[..., None]
    a = np.linalg.solve(cov + eps * np.eye(3), cov_ip[..., None])[..., 0]
    b = mp - np.einsum("yxk,yxk->yx", a, mI)
    explained = np.einsum("yxk,yxk->yx", a, cov_ip)
    r2 = np.clip(explained / np.maximum(mpp - mp * mp, 1e-8), 0.0, 1.0)
    lin = np.concatenate([a, b[..., None], mp[..., None], r2[..., None]], axis=2)
    lin = ref_up_from_half(ref_box_mean(lin, rh), h, w)
    am, bm, mpm, r2m = lin[..., :3], lin[..., 3], lin[..., 4], lin[..., 5]
    v = p.astype(np.float64)
    v = np.where(v <= SETTLE, 0.0, np.where(v >= 1 - SETTLE, 1.0, v))
    wgt = np.minimum(4.0 * v * (1.0 - v) * protect, 1.0) if protect > 0 else np.ones_like(v)
    bb = bm - 0.5 * am.sum(axis=2) + detail * (1.0 - r2m) * (v - mpm)
    if rgb:
        am = am[..., ::-1]  # the frame is BGR
    out = np.empty((h, 4, w))
    out[:, :3] = np.moveaxis(wgt[..., None] * am / 255.0, 2, 1)
    out[:, 3] = wgt * bb + (1.0 - wgt) * v
    # the contrast about 1/2: q -> contrast (q - 1/2) + 1/2
    out[:, :3] *= contrast
    out[:, 3] = contrast * (out[:, 3] - 0.5) + 0.5
    return out


def ref_bilinear(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resampling with pixel centres aligned and clamped edges (cv2 INTER_LINEAR's geometry)."""
    h, w = src.shape[:2]
    ys = np.clip((np.arange(out_h) + 0.5) * h / out_h - 0.5, 0, h - 1)
    xs = np.clip((np.arange(out_w) + 0.5) * w / out_w - 0.5, 0, w - 1)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    wy = (ys - y0)[:, None, None]
    wx = (xs - x0)[None, :, None]
    s = src.astype(np.float64).reshape(h, w, -1)
    top = s[y0][:, x0] * (1 - wx) + s[y0][:, x1] * wx
    bot = s[y1][:, x0] * (1 - wx) + s[y1][:, x1] * wx
    return (top * (1 - wy) + bot * wy).reshape(out_h, out_w, *src.shape[2:])


def ref_apply(frame: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """clip(a . frame + b, 0, 1) with planar (lh, 4, lw) coefficients upsampled bilinearly."""
    h, w = frame.shape[:2]
    c = ref_bilinear(np.moveaxis(coef, 1, 2), h, w)
    q = np.einsum("yxk,yxk->yx", c[..., :3], frame.astype(np.float64)) + c[..., 3]
    return np.clip(q, 0.0, 1.0)


def ref_area(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Area average (each output pixel the mean over its footprint, partial pixels weighted)."""
    def weights(n_in, n_out):
        m = np.zeros((n_out, n_in))
        s = n_in / n_out
        for o in range(n_out):
            for i in range(n_in):
                m[o, i] = max(0.0, min((o + 1) * s, i + 1) - max(o * s, i)) / s
        return m
    wy, wx = weights(src.shape[0], out_h), weights(src.shape[1], out_w)
    return np.einsum("oy,yxc,px->opc", wy, src.astype(np.float64), wx)


# -- inputs ----------------------------------------------------------------------------------------

def _scene(seed: int, lh: int, lw: int, fh: int, fw: int):
    """A person-like blob over a textured background, its low-res confidence (certain away from
    the edge, as the real model's is) and a frame. Guide is BGR."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:fh, 0:fw]
    cy, cx = fh * rng.uniform(0.4, 0.6), fw * rng.uniform(0.4, 0.6)
    inside = ((yy - cy) / (0.35 * fh)) ** 2 + ((xx - cx) / (0.25 * fw)) ** 2 < 1.0
    fg, bg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    frame = np.where(inside[..., None], fg, bg) + rng.normal(0, 12, (fh, fw, 3))
    frame = np.clip(frame, 0, 255).astype(np.uint8)
    guide = cv2.resize(frame, (lw, lh), interpolation=cv2.INTER_AREA)
    p = cv2.resize(inside.astype(np.float32), (lw, lh), interpolation=cv2.INTER_AREA)
    p = cv2.GaussianBlur(p, (0, 0), 1.2) + rng.normal(0, 0.05, p.shape)
    p = np.where((p < 0.1) | (p > 0.9), np.round(p), p)  # the model's certain 0s and 1s
    p = np.clip(p, 0, 1).astype(np.float32)
    return frame, guide, p, inside


def _run_coeffs(guide, p, r, eps, detail, protect, rgb=False, contrast=1.0):
    g = GuidedUpsampler((p.shape[1], p.shape[0]), (p.shape[1], p.shape[0]), r, eps, detail, protect, contrast,
                        rgb_guide=rgb)
    return g.coefficients(guide, p).copy()


# -- coefficients ----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed,lh,lw,r,eps,detail,protect,rgb,contrast", [
    (0, 13, 17, 4, 1e-3, 1.0, 8.0, False, 1.0),
    (1, 9, 23, 6, 1e-4, 0.5, 0.0, True, 1.0),
    (2, 21, 11, 2, 1e-2, 0.0, 2.0, False, 1.0),
    (3, 7, 5, 8, 1e-3, 1.0, 8.0, True, 1.0),  # radius larger than the image: windows clipped everywhere
    (16, 14, 20, 3, 1e-4, 1.0, 8.0, True, 1.0),  # even sizes
    (17, 1, 9, 2, 1e-3, 1.0, 8.0, False, 1.0),  # one row
    (25, 15, 19, 3, 1e-3, 1.0, 8.0, True, 1.15),  # contrast
    (26, 11, 13, 2, 1e-4, 0.5, 0.0, False, 2.5),
])
def test_coefficients_match_reference(seed, lh, lw, r, eps, detail, protect, rgb, contrast):
    _, guide, p, _ = _scene(seed, lh, lw, 3 * lh, 3 * lw)
    if rgb:
        guide = np.ascontiguousarray(guide[..., ::-1])
    got = _run_coeffs(guide, p, r, eps, detail, protect, rgb, contrast)
    want = ref_coeffs(guide, p, r, eps, detail, protect, rgb, contrast)
    # a is per 0..255 level: compare it scaled back to the [0, 1] guide
    np.testing.assert_allclose(got[:, :3] * 255, want[:, :3] * 255, atol=2e-3, rtol=2e-3)
    np.testing.assert_allclose(got[:, 3], want[:, 3], atol=2e-3, rtol=2e-3)


def test_rgb_and_bgr_guides_give_the_same_coefficients():
    _, guide, p, _ = _scene(18, 11, 15, 33, 45)
    bgr = _run_coeffs(guide, p, 4, 1e-3, 1.0, 8.0, rgb=False)
    rgb = _run_coeffs(np.ascontiguousarray(guide[..., ::-1]), p, 4, 1e-3, 1.0, 8.0, rgb=True)
    # same numbers up to float32 rounding (the regression sums the channels in another order)
    np.testing.assert_allclose(rgb[:, :3] * 255, bgr[:, :3] * 255, atol=1e-4)
    np.testing.assert_allclose(rgb[:, 3], bgr[:, 3], atol=1e-4)


def test_certain_confidence_gives_constant_coefficients():
    """Where the model is sure (within SETTLE of 0 or 1) the coefficients are exactly (0, 0, 0, p)."""
    _, guide, p, _ = _scene(19, 15, 19, 45, 57)
    p[0, 0] = SETTLE / 2
    p[-1, -1] = 1 - SETTLE / 2
    coef = _run_coeffs(guide, p, 4, 1e-4, 1.0, 8.0)
    sure = (p <= SETTLE) | (p >= 1 - SETTLE)
    assert 0.2 < sure.mean() < 0.95
    assert np.all(coef[:, :3][np.broadcast_to(sure[:, None], coef[:, :3].shape)] == 0.0)
    np.testing.assert_array_equal(coef[:, 3][sure], np.round(p[sure]))


def test_guided_coeffs_is_the_kernel_the_upsampler_runs():
    """The class adds buffers only: calling the kernel directly gives the same coefficients."""
    _, guide, p, _ = _scene(11, 11, 15, 33, 45)
    g = GuidedUpsampler((15, 11), (45, 33), 4, 1e-3, 1.0, 8.0, rgb_guide=False)
    a = g.coefficients(guide, p).copy()
    f32 = np.float32
    hh, hw = 6, 8
    out = np.empty((11, 4, 15), np.float32)
    guided_coeffs(guide, p, 2, f32(1e-3), f32(1.0), f32(8.0), f32(1.0), False,
                  *[np.empty((14, hh, hw), np.float32) for _ in range(2)],
                  *[np.empty((6, hh, hw), np.float32) for _ in range(2)],
                  np.empty(hw + 4, np.float32), np.empty((2, hw + 4), np.float32), np.empty(hw, np.float32),
                  np.empty((6, hh, 15), np.float32),
                  np.empty((9, 16), np.float32), out)
    np.testing.assert_array_equal(a, out)


# -- full-resolution pass --------------------------------------------------------------------------

@pytest.mark.parametrize("n_out,n_in", [(13, 5), (5, 13), (17, 17), (9, 1), (1280, 256), (721, 144)])
def test_sample_table_matches_reference_geometry(n_out, n_in):
    i0, i1, w1 = sample_table(n_out, n_in)
    src = np.random.default_rng(n_out).random(n_in)
    got = src[i0] * (1 - w1) + src[i1] * w1
    want = ref_bilinear(src[None, :], 1, n_out)[0]
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert i0.min() >= 0 and i1.max() <= n_in - 1 and w1.min() >= 0 and w1.max() <= 1


def _patchy_coeffs(rng, lh: int, lw: int) -> np.ndarray:
    """Coefficients with constant patches (a = 0, b in {0, 1, 0.3}) next to computed ones."""
    coef = np.empty((lh, 4, lw), np.float32)
    coef[:, :3] = rng.normal(0, 1.0 / 255, (lh, 3, lw))
    coef[:, 3] = rng.uniform(-0.5, 1.5, (lh, lw))
    kind = np.kron(rng.integers(0, 4, (lh // 3 + 1, lw // 3 + 1)), np.ones((3, 3), int))[:lh, :lw]
    kind[: lh // 2, : lw // 2] = 1  # a large constant block
    for k, v in ((1, 0.0), (2, 1.0), (3, 0.3)):
        coef[:, :3][np.broadcast_to((kind == k)[:, None], (lh, 3, lw))] = 0.0
        coef[:, 3][kind == k] = v
    return coef


@pytest.mark.parametrize("seed,lh,lw,fh,fw", [
    (4, 11, 13, 37, 53), (5, 7, 9, 7, 9), (6, 5, 17, 31, 29), (7, 1, 3, 5, 11), (20, 9, 1, 19, 7),
    (21, 12, 16, 60, 80), (22, 13, 11, 5, 4),
])
def test_apply_matches_reference(seed, lh, lw, fh, fw):
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (fh, fw, 3), dtype=np.uint8)
    g = GuidedUpsampler((lw, lh), (fw, fh), 2, 1e-3)
    g._wide[:] = np.nan  # widened coefficients read where they were not computed would show
    for _ in range(2):  # the second frame must not use what the first one left behind
        g.coef[:] = _patchy_coeffs(rng, lh, lw)
        out = np.full((fh, fw), np.nan, np.float32)
        g.apply(frame, out)
        want = ref_apply(frame, g.coef)
        np.testing.assert_allclose(out, want, atol=1e-5)
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_constant_runs_tile_the_row_and_hold_their_value():
    """The runs of each row pair cover the output columns once, in order; a run marked constant
    sits where all four surrounding coefficients have a = 0 and that b."""
    rng = np.random.default_rng(23)
    lh, lw, fh, fw = 10, 14, 41, 57
    g = GuidedUpsampler((lw, lh), (fw, fh), 2, 1e-3)
    g.coef[:] = _patchy_coeffs(rng, lh, lw)
    g.apply(rng.integers(0, 256, (fh, fw, 3), dtype=np.uint8), np.empty((fh, fw), np.float32))
    x0s = sample_table(fw, lw)[0]
    n_const = 0
    for i in range(lh - 1):
        runs = g.spans[i, :g.nspans[i]]
        assert runs[0, 0] == 0 and runs[-1, 1] == fw and np.all(runs[1:, 0] == runs[:-1, 1])
        for (xa, xb), v in zip(runs, g.values[i, :g.nspans[i]]):
            if v < 0:
                continue
            n_const += 1
            js = np.unique(x0s[xa:xb])
            corners = g.coef[i:i + 2][:, :, np.concatenate([js, js + 1])]
            assert np.all(corners[:, :3] == 0) and np.all(corners[:, 3] == v)
    assert n_const >= lh  # the patches were found


def test_flat_confidence_passes_through():
    """A confidence that is the same everywhere has nothing to follow: the matte is that value."""
    frame, guide, _, _ = _scene(8, 15, 19, 45, 57)
    for v in (0.0, 0.3, 1.0):
        p = np.full((15, 19), v, np.float32)
        out = np.empty((45, 57), np.float32)
        GuidedUpsampler((19, 15), (57, 45), 3, 1e-3, rgb_guide=False).run(guide, p, frame, out)
        np.testing.assert_allclose(out, v, atol=1e-4)


def test_edge_follows_the_frame_not_the_blurry_confidence():
    """A soft, shifted confidence edge snaps to the frame's sharp edge at full resolution."""
    fh, fw, lh, lw = 60, 120, 12, 24
    frame = np.full((fh, fw, 3), 40, np.uint8)
    frame[:, 63:] = 200  # sharp edge at x = 63 (not on a low-res pixel boundary)
    guide = cv2.resize(frame, (lw, lh), interpolation=cv2.INTER_AREA)
    x = (np.arange(lw) + 0.5) * fw / lw
    p = np.tile(np.clip((x - 58.0) / 20.0 + 0.5, 0, 1), (lh, 1)).astype(np.float32)  # ramp centred at 58
    out = np.empty((fh, fw), np.float32)
    GuidedUpsampler((lw, lh), (fw, fh), 4, 1e-4, 1.0, 0.0, rgb_guide=False).run(guide, p, frame, out)
    raw = cv2.resize(p, (fw, fh), interpolation=cv2.INTER_LINEAR)
    row, row_raw = out[fh // 2], raw[fh // 2]
    crossing = int(np.argmax(row >= 0.5))
    crossing_raw = int(np.argmax(row_raw >= 0.5))
    assert abs(crossing - 63) <= 1 < abs(crossing_raw - 63)
    # the refined edge is a step: one pixel from background-ish to person-ish
    assert row[crossing] - row[crossing - 1] > 3 * (row_raw[crossing_raw] - row_raw[crossing_raw - 1])


def test_protect_keeps_confident_interior():
    """With protect on, a background-coloured patch inside a confident person is not cut out."""
    frame, guide, p, _ = _scene(9, 24, 32, 96, 128)
    lh, lw = p.shape
    p[:] = 0.0
    p[6:18, 8:24] = 1.0
    hole = guide.copy()
    hole[10:13, 14:17] = guide[0, 0]  # background colour inside the person
    big = frame.copy()
    big[40:52, 56:68] = frame[0, 0]
    outs = {}
    for protect in (0.0, 8.0):
        out = np.empty((96, 128), np.float32)
        GuidedUpsampler((lw, lh), (128, 96), 6, 1e-4, 1.0, protect, rgb_guide=False).run(hole, p, big, out)
        outs[protect] = out[40:52, 56:68].min()
    assert outs[8.0] > 0.99 and outs[0.0] < outs[8.0]


def test_output_is_in_unit_range_for_extreme_inputs():
    rng = np.random.default_rng(10)
    guide = rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)
    frame = rng.integers(0, 256, (27, 39, 3), dtype=np.uint8)
    p = (rng.random((9, 13)) > 0.5).astype(np.float32)
    for eps in (1e-6, 1.0):
        out = np.empty((27, 39), np.float32)
        GuidedUpsampler((13, 9), (39, 27), 2, eps, 1.0, 0.0).run(guide, p, frame, out)
        assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0


def test_whole_refinement_matches_reference():
    """Coefficients and full-resolution pass together, against the references chained."""
    frame, guide, p, _ = _scene(24, 13, 21, 53, 67)
    g = GuidedUpsampler((21, 13), (67, 53), 4, 1e-3, 1.0, 8.0, rgb_guide=False)
    out = np.empty((53, 67), np.float32)
    g.run(guide, p, frame, out)
    want = ref_apply(frame, ref_coeffs(guide, p, 4, 1e-3, 1.0, 8.0))
    np.testing.assert_allclose(out, want, atol=2e-3)
    assert 0.1 < np.mean((out > 0.01) & (out < 0.99)) + np.mean(out >= 0.99) < 0.9


def test_contrast_keeps_the_outline_and_narrows_the_soft_band():
    """contrast k maps the matte q to clip(k (q - 1/2) + 1/2): the same alpha-1/2 outline, a
    narrower band of partial values, and (against the chained references) the same numbers."""
    frame, guide, p, _ = _scene(27, 15, 23, 61, 71)
    outs = {}
    for k in (1.0, 1.6):
        outs[k] = np.empty((61, 71), np.float32)
        GuidedUpsampler((23, 15), (71, 61), 4, 1e-3, 1.0, 8.0, k, rgb_guide=False).run(guide, p, frame, outs[k])
    plain, steep = outs[1.0], outs[1.6]
    np.testing.assert_allclose(steep, np.clip(1.6 * (plain - 0.5) + 0.5, 0.0, 1.0), atol=1e-5)
    np.testing.assert_allclose(steep, ref_apply(frame, ref_coeffs(guide, p, 4, 1e-3, 1.0, 8.0, contrast=1.6)),
                               atol=3e-3)
    away = np.abs(plain - 0.5) > 1e-4  # ties at exactly 1/2 may round either way
    np.testing.assert_array_equal((steep >= 0.5)[away], (plain >= 0.5)[away])
    soft = lambda m: np.count_nonzero((m > 0.05) & (m < 0.95))  # noqa: E731
    assert 0 < soft(steep) < soft(plain)


@pytest.mark.parametrize("seed,lh,lw,gh,gw,fh,fw", [(28, 9, 13, 11, 16, 45, 67), (29, 7, 11, 9, 13, 27, 39)])
def test_fine_guide_is_the_frame_area_mean_and_the_confidence_upsampled(seed, lh, lw, gh, gw, fh, fw):
    """The finer guide: the same result as the references chained on the frame's INTER_AREA
    mean (RGB) at the guide's size and the confidence upsampled bilinearly to it."""
    frame, guide, p, _ = _scene(seed, lh, lw, fh, fw)
    out = np.empty((fh, fw), np.float32)
    FineGuidedUpsampler((lw, lh), (gw, gh), (fw, fh), 3, 1e-3, 1.0, 8.0, 1.15).run(guide, p, frame, out)
    fine = cv2.cvtColor(cv2.resize(frame, (gw, gh), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    fine_p = ref_bilinear(p.astype(np.float64), gh, gw)
    want = ref_apply(frame, ref_coeffs(fine, fine_p.astype(np.float32), 3, 1e-3, 1.0, 8.0, rgb=True, contrast=1.15))
    # the area kernel may round one level off OpenCV, which moves the fit by a hair
    np.testing.assert_allclose(out, want, atol=5e-3)
    assert np.mean(np.abs(out - want) > 1e-3) < 0.01
    assert 0.05 < np.mean((out > 0.01) & (out < 0.99))


# -- downscale -------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed,oh,ow,sy,sx,bands", [(12, 7, 9, 5, 5, 2), (13, 3, 11, 2, 3, 3), (14, 1, 1, 4, 7, 1),
                                                    (15, 5, 4, 1, 1, 2)])
def test_area_downscale_matches_block_mean_and_opencv(seed, oh, ow, sy, sx, bands):
    rng = np.random.default_rng(seed)
    src = rng.integers(0, 256, (oh * sy, ow * sx, 3), dtype=np.uint8)
    out = np.empty((oh, ow, 3), np.uint8)
    n = ow * sx * 3
    area_downscale(src, sy, sx, np.empty((bands, n), np.uint16), np.empty((bands, n), np.int32), out)
    ref = src.reshape(oh, sy, ow, sx, 3).astype(np.float64).mean(axis=(1, 3))[..., ::-1]  # RGB
    assert np.abs(out - ref).max() <= 0.5 + 1e-9  # rounded mean
    np.testing.assert_array_equal(out, np.floor(ref + 0.5).astype(np.uint8))
    cv = cv2.cvtColor(cv2.resize(src, (ow, oh), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    if (sy * sx) % 2:  # no exact .5 ties: OpenCV agrees bit for bit (it rounds ties to even)
        np.testing.assert_array_equal(out, cv)
    else:
        assert np.abs(out.astype(int) - cv).max() <= 1


@pytest.mark.parametrize("seed,h,w,oh,ow", [(25, 48, 64, 19, 25), (26, 31, 17, 31, 5), (27, 10, 33, 4, 33),
                                            (28, 9, 9, 1, 1), (29, 41, 53, 13, 17)])
def test_area_resample_matches_area_reference_and_opencv(seed, h, w, oh, ow):
    rng = np.random.default_rng(seed)
    src = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ys, wy = area_table(h, oh)
    xs, wx = area_table(w, ow)
    np.testing.assert_allclose(wy.sum(axis=1), 1.0, atol=1e-6)
    out = np.empty((oh, ow, 3), np.uint8)
    area_resample(src, ys, wy, xs, wx, np.empty((2, w * 3), np.float32), out)
    ref = ref_area(src, oh, ow)[..., ::-1]
    assert np.abs(out - ref).max() <= 0.5 + 1e-3  # rounded, float32 sums
    cv = cv2.cvtColor(cv2.resize(src, (ow, oh), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    assert np.abs(out.astype(int) - cv).max() <= 1


def _area_table_per_tap(n_in, n_out):
    """The overlap of each output's span [o s, (o + 1) s) with each input pixel, one at a time."""
    scale = n_in / n_out
    start, weights = area_table(n_in, n_out)
    taps = weights.shape[1]
    ref_start = np.empty(n_out, np.int32)
    ref = np.zeros((n_out, taps), np.float32)
    for o in range(n_out):
        lo, hi = o * scale, (o + 1) * scale
        i0 = min(int(np.floor(lo)), n_in - taps)
        ref_start[o] = i0
        for t in range(taps):
            ref[o, t] = max(0.0, min(hi, i0 + t + 1) - max(lo, i0 + t)) / scale
    return (start, weights), (ref_start, ref)


@pytest.mark.parametrize("n_in,n_out", [(937, 256), (1280, 320), (720, 144), (33, 4), (9, 1), (31, 31), (1001, 997)])
def test_area_table_is_the_overlap_of_every_tap(n_in, n_out):
    (start, weights), (ref_start, ref) = _area_table_per_tap(n_in, n_out)
    np.testing.assert_array_equal(start, ref_start)
    np.testing.assert_array_equal(weights, ref)  # the same float64 operations: bit for bit
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    assert start.dtype == np.int32 and weights.dtype == np.float32


def test_area_downscaler_picks_exact_kernel_for_integer_factors():
    rng = np.random.default_rng(30)
    frame = rng.integers(0, 256, (45, 60, 3), dtype=np.uint8)
    exact = AreaDownscaler((60, 45), (12, 9))
    other = AreaDownscaler((60, 45), (16, 9))
    assert exact.factors == (5, 5) and other.factors is None
    for d, (ow, oh) in ((exact, (12, 9)), (other, (16, 9))):
        out = np.empty((oh, ow, 3), np.uint8)
        d.run(frame, out)
        assert np.abs(out.astype(int) - ref_area(frame, oh, ow)[..., ::-1]).max() <= 1
    with pytest.raises(ValueError, match="downscales only"):
        AreaDownscaler((10, 10), (12, 9))


def test_warmup_compiles_what_the_segmenter_calls():
    """After the warm-up, writable and read-only frames of any size compile nothing new."""
    import shaders.area as a
    import shaders.matte as m

    kernels = (m.guided_coeffs, m.plan_spans, m.widen_coeffs, m.apply_coeffs, m.area_downscale, m.area_resample)
    m._warm()
    a._warm()
    before = [len(k.signatures) for k in kernels]
    frame, guide, p, _ = _scene(31, 9, 16, 45, 80)
    frozen = frame.copy()
    frozen.flags.writeable = False
    rgb = np.empty((9, 16, 3), np.uint8)
    for f in (frame, frozen):
        AreaDownscaler((80, 45), (16, 9)).run(f, rgb)
        AreaDownscaler((80, 45), (15, 9)).run(f, np.empty((9, 15, 3), np.uint8))
        GuidedUpsampler((16, 9), (80, 45), 3, 1e-4).run(rgb, p, f, np.empty((45, 80), np.float32))
    assert [len(k.signatures) for k in kernels] == before


def _smooth_reference(coef: np.ndarray) -> np.ndarray:
    lh, _, lw = coef.shape
    ys = np.clip(np.arange(lh)[:, None] + np.array([-1, 0, 1]), 0, lh - 1)
    xs = np.clip(np.arange(lw)[:, None] + np.array([-1, 0, 1]), 0, lw - 1)
    out = np.zeros_like(coef, dtype=np.float64)
    for dy in range(3):
        for dx in range(3):
            out += coef[ys[:, dy]][:, :, xs[:, dx]]
    return out / 9.0


@pytest.mark.parametrize("lh, lw", [(1, 1), (2, 3), (7, 11), (18, 32)])
def test_smooth_coeffs_is_a_box_mean_that_keeps_constant_patches(lh, lw):
    from shaders.matte import smooth_coeffs

    rng = np.random.default_rng(lh * 100 + lw)
    coef = rng.normal(size=(lh, 4, lw)).astype(np.float32)
    coef[: lh // 2, :, : lw // 2] = np.float32(0.7)  # a constant patch (a certain confidence)
    coef[: lh // 2, :3, : lw // 2] = 0.0
    want = _smooth_reference(coef.astype(np.float64))
    tmp = np.full_like(coef, np.nan)
    got = coef.copy()
    smooth_coeffs(got, tmp)
    np.testing.assert_allclose(got, want, atol=2e-6)
    # inside the patch (every neighbour inside too) the values stay exactly as they were
    inner = got[: max(lh // 2 - 1, 0), :, : max(lw // 2 - 1, 0)]
    assert np.all(inner[:, 3] == np.float32(0.7)) and np.all(inner[:, :3] == 0.0)
