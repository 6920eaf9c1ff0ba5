"""Matte refinement kernels against slow NumPy references, on odd-sized seeded inputs."""

from __future__ import annotations

import numpy as np
import pytest

from shaders.matte import GuidedUpsampler, apply_coeffs, area_downscale, guided_coeffs, sample_table, widen_coeffs


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


def ref_coeffs(guide: np.ndarray, p: np.ndarray, r: int, eps: float, detail: float, protect: float) -> np.ndarray:
    """The guided filter's (a_b, a_g, a_r, b) per low-res pixel, written out with np.linalg."""
    I = guide.astype(np.float64) / 255.0 - 0.5
    p = p.astype(np.float64)
    h, w = p.shape
    mI = ref_box_mean(I, r)
    mp = ref_box_mean(p, r)
    mII = ref_box_mean(I[..., :, None] * I[..., None, :], r)
    mIp = ref_box_mean(I * p[..., None], r)
    mpp = ref_box_mean(p * p, r)
    cov = mII - mI[..., :, None] * mI[..., None, :]
    cov_ip = mIp - mI * mp[..., None]
    a = np.linalg.solve(cov + eps * np.eye(3), cov_ip[..., None])[..., 0]
    b = mp - np.einsum("yxk,yxk->yx", a, mI)
    var_p = mpp - mp * mp
    explained = np.einsum("yxk,yxk->yx", a, cov_ip)
    r2 = np.clip(explained / np.maximum(var_p, 1e-8), 0.0, 1.0)
    am = ref_box_mean(a, r)
    bm = ref_box_mean(b, r)
    mpm = ref_box_mean(mp, r)
    r2m = ref_box_mean(r2, r)
    wgt = np.minimum(4.0 * p * (1.0 - p) * protect, 1.0) if protect > 0 else np.ones_like(p)
    bb = bm - 0.5 * am.sum(axis=2) + detail * (1.0 - r2m) * (p - mpm)
    out = np.empty((h, w, 4))
    out[..., :3] = wgt[..., None] * am / 255.0
    out[..., 3] = wgt * bb + (1.0 - wgt) * p
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
    h, w = frame.shape[:2]
    c = ref_bilinear(coef, h, w)
    q = np.einsum("yxk,yxk->yx", c[..., :3], frame.astype(np.float64)) + c[..., 3]
    return np.clip(q, 0.0, 1.0)


# -- inputs ----------------------------------------------------------------------------------------

def _scene(seed: int, lh: int, lw: int, fh: int, fw: int):
    """A person-like blob over a textured background, its low-res confidence and a frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:fh, 0:fw]
    cy, cx = fh * rng.uniform(0.4, 0.6), fw * rng.uniform(0.4, 0.6)
    inside = ((yy - cy) / (0.35 * fh)) ** 2 + ((xx - cx) / (0.25 * fw)) ** 2 < 1.0
    fg, bg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    frame = np.where(inside[..., None], fg, bg) + rng.normal(0, 12, (fh, fw, 3))
    frame = np.clip(frame, 0, 255).astype(np.uint8)
    import cv2

    guide = cv2.resize(frame, (lw, lh), interpolation=cv2.INTER_AREA)
    p = cv2.resize(inside.astype(np.float32), (lw, lh), interpolation=cv2.INTER_AREA)
    p = np.clip(cv2.GaussianBlur(p, (0, 0), 1.2) + rng.normal(0, 0.05, p.shape), 0, 1).astype(np.float32)
    return frame, guide, p, inside


def _run_coeffs(guide, p, r, eps, detail, protect):
    g = GuidedUpsampler((p.shape[1], p.shape[0]), (p.shape[1], p.shape[0]), r, eps, detail, protect)
    return g.coefficients(guide, p).copy()


# -- tests -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed,lh,lw,r,eps,detail,protect", [
    (0, 13, 17, 2, 1e-3, 1.0, 8.0),
    (1, 9, 23, 3, 1e-4, 0.5, 0.0),
    (2, 21, 11, 1, 1e-2, 0.0, 2.0),
    (3, 7, 5, 4, 1e-3, 1.0, 8.0),  # radius larger than half the image: windows clipped everywhere
])
def test_coefficients_match_reference(seed, lh, lw, r, eps, detail, protect):
    _, guide, p, _ = _scene(seed, lh, lw, 3 * lh, 3 * lw)
    got = _run_coeffs(guide, p, r, eps, detail, protect)
    want = ref_coeffs(guide, p, r, eps, detail, protect)
    # a is per 0..255 level: compare it scaled back to the [0, 1] guide
    np.testing.assert_allclose(got[..., :3] * 255, want[..., :3] * 255, atol=2e-3, rtol=2e-3)
    np.testing.assert_allclose(got[..., 3], want[..., 3], atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("n_out,n_in", [(13, 5), (5, 13), (17, 17), (9, 1), (1280, 256), (721, 144)])
def test_sample_table_matches_reference_geometry(n_out, n_in):
    i0, i1, w1 = sample_table(n_out, n_in)
    src = np.random.default_rng(n_out).random(n_in)
    got = src[i0] * (1 - w1) + src[i1] * w1
    want = ref_bilinear(src[None, :], 1, n_out)[0]
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert i0.min() >= 0 and i1.max() <= n_in - 1 and w1.min() >= 0 and w1.max() <= 1


@pytest.mark.parametrize("seed,lh,lw,fh,fw", [(4, 11, 13, 37, 53), (5, 7, 9, 7, 9), (6, 5, 17, 31, 29), (7, 1, 3, 5, 11)])
def test_apply_matches_reference(seed, lh, lw, fh, fw):
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (fh, fw, 3), dtype=np.uint8)
    coef = np.empty((lh, lw, 4), np.float32)
    coef[..., :3] = rng.normal(0, 1.0 / 255, (lh, lw, 3))
    coef[..., 3] = rng.uniform(-0.5, 1.5, (lh, lw))
    wide = np.empty((lh, 4, fw), np.float32)
    widen_coeffs(coef, *sample_table(fw, lw), wide)
    out = np.full((fh, fw), np.nan, np.float32)
    apply_coeffs(frame, wide, *sample_table(fh, lh), out)
    want = ref_apply(frame, coef)
    np.testing.assert_allclose(out, want, atol=1e-5)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert 0.0 < (want == 0).mean() + (want == 1).mean() < 1.0  # the clip was exercised, not everywhere


def test_flat_confidence_passes_through():
    """A confidence that is the same everywhere has nothing to follow: the matte is that value."""
    frame, guide, _, _ = _scene(8, 15, 19, 45, 57)
    for v in (0.0, 0.3, 1.0):
        p = np.full((15, 19), v, np.float32)
        out = np.empty((45, 57), np.float32)
        GuidedUpsampler((19, 15), (57, 45), 3, 1e-3).run(guide, p, frame, out)
        np.testing.assert_allclose(out, v, atol=1e-4)


def test_edge_follows_the_frame_not_the_blurry_confidence():
    """A soft, shifted confidence edge snaps to the frame's sharp edge at full resolution."""
    fh, fw, lh, lw = 60, 120, 12, 24
    frame = np.full((fh, fw, 3), 40, np.uint8)
    frame[:, 63:] = 200  # sharp edge at x = 63 (not on a low-res pixel boundary)
    import cv2

    guide = cv2.resize(frame, (lw, lh), interpolation=cv2.INTER_AREA)
    x = (np.arange(lw) + 0.5) * fw / lw
    p = np.tile(np.clip((x - 58.0) / 20.0 + 0.5, 0, 1), (lh, 1)).astype(np.float32)  # ramp centred at 58
    out = np.empty((fh, fw), np.float32)
    GuidedUpsampler((lw, lh), (fw, fh), 3, 1e-4, 1.0, 0.0).run(guide, p, frame, out)
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
        GuidedUpsampler((lw, lh), (128, 96), 6, 1e-4, 1.0, protect).run(hole, p, big, out)
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


def test_guided_coeffs_is_the_kernel_the_upsampler_runs():
    """The class adds buffers only: calling the kernel directly gives the same coefficients."""
    _, guide, p, _ = _scene(11, 11, 15, 33, 45)
    g = GuidedUpsampler((15, 11), (45, 33), 2, 1e-3, 1.0, 8.0)
    a = g.coefficients(guide, p).copy()
    f32 = np.float32
    bufs14 = [np.empty((11, 15 * 14), np.float32) for _ in range(3)]
    bufs6 = [np.empty((11, 15 * 6), np.float32) for _ in range(3)]
    out = np.empty((11, 15, 4), np.float32)
    guided_coeffs(guide, p, 2, f32(1e-3), f32(1.0), f32(8.0), *bufs14, *bufs6, np.empty(15 * 14, np.float32), out)
    np.testing.assert_array_equal(a, out)


@pytest.mark.parametrize("seed,oh,ow,sy,sx", [(12, 7, 9, 5, 5), (13, 3, 11, 2, 3), (14, 1, 1, 4, 7), (15, 5, 4, 1, 1)])
def test_area_downscale_matches_block_mean_and_opencv(seed, oh, ow, sy, sx):
    import cv2

    rng = np.random.default_rng(seed)
    src = rng.integers(0, 256, (oh * sy, ow * sx, 3), dtype=np.uint8)
    out = np.empty((oh, ow, 3), np.uint8)
    area_downscale(src, sy, sx, np.empty(ow * sx * 3, np.int32), out)
    ref = src.reshape(oh, sy, ow, sx, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(out - ref).max() <= 0.5 + 1e-9  # rounded mean
    np.testing.assert_array_equal(out, np.floor(ref + 0.5).astype(np.uint8))
    cv = cv2.resize(src, (ow, oh), interpolation=cv2.INTER_AREA)
    if (sy * sx) % 2:  # no exact .5 ties: OpenCV agrees bit for bit (it rounds ties to even)
        np.testing.assert_array_equal(out, cv)
    else:
        assert np.abs(out.astype(int) - cv).max() <= 1
