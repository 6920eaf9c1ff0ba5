"""Depth: kernels against NumPy references, the scale stabiliser, and the stage on real frames with
the real TCMonoDepth model (ordering against ground truth, flicker on a static clip, fusion)."""

from __future__ import annotations

import logging
import threading

import cv2
import numpy as np
import pytest

from conftest import DATA, load_sequence, talking_frame
from realtime import Pipeline, load_preset
from realtime.core.config import DepthBackend as DepthBackendKind
from realtime.core.config import DepthConfig, DepthFit, SegmentationConfig
from realtime.stages.depth import (MODEL_H, MODEL_W, THREAD_NAME, DepthEstimator, OnnxDepth, OpenCVDepth, compute_fit,
                                   open_backend)
from realtime.stages.depth.fitting import MAX_PACK_ROWS, Grid, PushPull, _bounds, _sampling
from realtime.stages.filters import RangeStabiliser
from realtime.core.errors import ClosedError, FrameShapeError, FrameTypeError, ModelError, StageError
from realtime.stages.segmentation import Segmenter
from shaders import depth as k

FRAME_MS = 33


# -- NumPy references ----------------------------------------------------------------------------

def ref_box(src: np.ndarray, rb: np.ndarray, cb: np.ndarray, step: int = 1) -> np.ndarray:
    out = np.zeros((len(rb) - 1, len(cb) - 1) + src.shape[2:], np.float64)
    for i in range(len(rb) - 1):
        for j in range(len(cb) - 1):
            y1 = max(rb[i + 1], rb[i] + 1)
            x1 = max(cb[j + 1], cb[j] + 1)
            box = src[rb[i]:y1:step, cb[j]:x1:step]
            out[i, j] = box.reshape(-1, *src.shape[2:]).astype(np.float64).mean(axis=0)
    return out


def ref_knee(v: np.ndarray, top: float) -> np.ndarray:
    v = v.astype(np.float64)
    room = 1.0 - top
    t = np.maximum(v - top, 0.0)
    return np.where(v <= top, np.maximum(v, 0.0), top + room * t / (room + t))


def ref_pushpull(values: np.ndarray, weights: np.ndarray, default: float) -> np.ndarray:
    """The same push-pull, written plainly (float64, explicit padding)."""
    vws, ws = [values.astype(np.float64) * weights], [weights.astype(np.float64)]
    while ws[-1].shape[0] > 2 or ws[-1].shape[1] > 2:
        def down(a: np.ndarray) -> np.ndarray:
            h, w = a.shape
            p = np.pad(a, ((0, h % 2), (0, w % 2)), mode="edge")
            return 0.25 * (p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2])
        vws.append(down(vws[-1]))
        ws.append(down(ws[-1]))
    total = ws[-1].sum()
    fill = np.full(ws[-1].shape, vws[-1].sum() / total if total > 1e-9 else default)

    def pull(vw: np.ndarray, w: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        h, wd = w.shape
        ch, cw = coarse.shape
        cy = np.clip((np.arange(h) + 0.5) / 2 - 0.5, 0, ch - 1)
        cx = np.clip((np.arange(wd) + 0.5) / 2 - 0.5, 0, cw - 1)
        y0 = np.floor(cy).astype(int)
        x0 = np.floor(cx).astype(int)
        y1, x1 = np.minimum(y0 + 1, ch - 1), np.minimum(x0 + 1, cw - 1)
        fy, fx = (cy - y0)[:, None], (cx - x0)[None, :]
        c = (coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x1] * fx) * (1 - fy) + \
            (coarse[y1][:, x0] * (1 - fx) + coarse[y1][:, x1] * fx) * fy
        a = np.minimum(4 * w, 1.0)
        v = np.where(w > 1e-12, vw / np.maximum(w, 1e-12), c)
        return a * v + (1 - a) * c

    fill = pull(vws[-1], ws[-1], fill[:1, :1])
    for lvl in range(len(ws) - 2, -1, -1):
        fill = pull(vws[lvl], ws[lvl], fill)
    return fill


def ref_compose(matte, person, background, yi, yf, xi, xf) -> np.ndarray:
    def up(a):
        a = a.astype(np.float64)
        fy, fx = yf[:, None].astype(np.float64), xf[None, :].astype(np.float64)
        top = a[yi][:, xi] * (1 - fx) + a[yi][:, xi + 1] * fx
        bot = a[yi + 1][:, xi] * (1 - fx) + a[yi + 1][:, xi + 1] * fx
        return top * (1 - fy) + bot * fy
    p, b = up(person), up(background)
    return matte * p + (1 - matte) * b


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# -- kernels ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("h,w,nh,nw,step", [(37, 53, 11, 17, 1), (61, 53, 13, 17, 2), (29, 31, 40, 45, 1)])
def test_pack_model_input_matches_box_average(rng, h, w, nh, nw, step):
    """Downsampling (every row, every other row) and upsampling."""
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    rb, cb = _bounds(0, h, nh), _bounds(0, w, nw)
    x = np.full((1, 3, MODEL_H, MODEL_W), -1.0, np.float32)
    luma = np.zeros((nh, nw), np.float32)
    k.pack_model_input(frame.reshape(h, w * 3), rb, cb, step, 3, 5, np.zeros((nh, w * 3), np.uint16), x, luma)
    ref = ref_box(frame, rb, cb, step)  # BGR means
    np.testing.assert_allclose(x[0, 0, 3:3 + nh, 5:5 + nw], ref[..., 2], atol=1e-3)  # R first
    np.testing.assert_allclose(x[0, 2, 3:3 + nh, 5:5 + nw], ref[..., 0], atol=1e-3)
    np.testing.assert_allclose(luma, ref @ np.array([0.114, 0.587, 0.299]), atol=1e-3)
    assert (x[0, :, :3] == -1).all() and (x[0, :, :, :5] == -1).all(), "padding must be left alone"


@pytest.mark.parametrize("h,w,nh,nw,step,row_step", [(61, 53, 13, 17, 2, 2), (29, 31, 40, 45, 1, 3)])
def test_pack_luma_is_the_packs_luma_on_its_rows(rng, h, w, nh, nw, step, row_step):
    """The still check's luma: the pack's (to float rounding), on every row_step-th row only."""
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    rb, cb = _bounds(0, h, nh), _bounds(0, w, nw)
    x = np.zeros((1, 3, MODEL_H, MODEL_W), np.float32)
    full = np.zeros((nh, nw), np.float32)
    k.pack_model_input(frame.reshape(h, w * 3), rb, cb, step, 0, 0, np.zeros((nh, w * 3), np.uint16), x, full)
    luma = np.full((nh, nw), -1.0, np.float32)
    k.pack_luma(frame.reshape(h, w * 3), rb, cb, step, row_step, np.zeros((nh, w * 3), np.uint16), luma)
    np.testing.assert_allclose(luma[::row_step], full[::row_step], rtol=1e-6, atol=1e-4)
    rest = np.ones(nh, bool)
    rest[::row_step] = False
    assert (luma[rest] == -1).all(), "the other rows must be left alone"


def test_pack_model_input_row_sums_do_not_overflow():
    """16-bit row sums: 257 white rows per box is the most the grid ever reads."""
    frame = np.full((2 * 257, 3, 3), 255, np.uint8)
    frame[257:] = 7
    rb, cb = _bounds(0, 2 * 257, 2), _bounds(0, 3, 1)
    x = np.zeros((1, 3, MODEL_H, MODEL_W), np.float32)
    luma = np.zeros((2, 1), np.float32)
    k.pack_model_input(frame.reshape(2 * 257, 9), rb, cb, 1, 0, 0, np.zeros((2, 9), np.uint16), x, luma)
    np.testing.assert_allclose(x[0, :, :2, 0], [[255, 7]] * 3)


def test_grid_reads_few_enough_rows_for_its_row_sums():
    for h, w in ((720, 1280), (4320, 7680), (60000, 3)):
        g = Grid(compute_fit(h, w, DepthFit.LETTERBOX))
        rows = int(np.diff(g.row_bounds).max())
        assert -(-rows // g.step) <= MAX_PACK_ROWS, (h, w)
    assert Grid(compute_fit(720, 1280, DepthFit.LETTERBOX)).step == 2


def test_motion_adaptive_update_matches_reference(rng):
    raw = rng.random((13, 19), dtype=np.float32)
    luma = (rng.random((13, 19)) * 40).astype(np.float32)
    state = rng.random((13, 19), dtype=np.float32)
    ref_luma = (rng.random((13, 19)) * 40).astype(np.float32)
    s0, r0 = state.copy(), ref_luma.copy()
    k.motion_adaptive_update(raw, luma, np.float32(0.1), np.float32(3.0), np.float32(12.0), state, ref_luma)
    a = 0.1 + 0.9 * np.clip((np.abs(luma - r0) - 3.0) / 9.0, 0, 1)
    np.testing.assert_allclose(state, s0 + a * (raw - s0), atol=1e-5)
    np.testing.assert_allclose(ref_luma, r0 + a * (luma - r0), atol=1e-4)


def test_map_range_is_linear_then_a_soft_knee(rng):
    raw = (rng.random((23, 29)) * 3 - 1).astype(np.float32)
    out = np.zeros_like(raw)
    k.map_range(raw, np.float32(-0.2), np.float32(0.6), np.float32(0.75), out)
    np.testing.assert_allclose(out, ref_knee((raw + 0.2) * 0.6, 0.75), atol=1e-5)
    v = np.linspace(-1, 5, 601, dtype=np.float32)[None]
    m = np.zeros_like(v)
    k.map_range(v, np.float32(0), np.float32(1), np.float32(0.75), m)
    assert (np.diff(m[0]) >= -1e-7).all() and m.max() < 1.0 and m.min() == 0.0
    assert m[0, 300] < 0.99 and m[0, 300] > m[0, 250]  # v = 2: compressed, not clipped
    assert abs(float(m[0, 175]) - 0.75) < 1e-6  # v = 0.75: the knee, continuous


def test_gather_samples_matches_boolean_indexing(rng):
    v = rng.random((15, 22), dtype=np.float32)
    w = rng.random((15, 22), dtype=np.float32)
    out = np.zeros(200, np.float32)
    cnt = np.zeros(1, np.int64)
    k.gather_samples(v, w, np.float32(0.5), 2, out, cnt)
    ref = v[::2, ::2][w[::2, ::2] >= 0.5]
    assert cnt[0] == ref.size
    np.testing.assert_array_equal(out[:cnt[0]], ref)


@pytest.mark.parametrize("shape", [(37, 61), (5, 3), (2, 2)])
def test_pushpull_fill_matches_reference(rng, shape):
    values = rng.random(shape, dtype=np.float32)
    weights = (rng.random(shape) > 0.7).astype(np.float32) * rng.random(shape, dtype=np.float32)
    other = (rng.random(shape) > 0.4).astype(np.float32)
    out = np.zeros((2, *shape), np.float32)
    PushPull(shape, 2).fill(values, np.stack([weights, other]), np.array([0.5, 0.2], np.float32), out)
    np.testing.assert_allclose(out[0], ref_pushpull(values, weights, 0.5), atol=1e-4)
    np.testing.assert_allclose(out[1], ref_pushpull(values, other, 0.2), atol=1e-4)


def test_pushpull_fill_keeps_valid_values_and_fills_holes_within_their_range(rng):
    h, w = 45, 80
    values = rng.random((h, w), dtype=np.float32)
    weights = np.ones((h, w), np.float32)
    weights[10:35, 20:60] = 0.0           # a big hole
    values[10:35, 20:60] = 100.0          # garbage under it must not show
    out = np.zeros((1, h, w), np.float32)
    pp = PushPull((h, w), 1)
    pp.fill(values, weights[None], np.array([0.5], np.float32), out)
    valid = weights > 0
    np.testing.assert_allclose(out[0][valid], values[valid], atol=1e-5)
    assert out[0][~valid].min() >= values[valid].min() and out[0][~valid].max() <= values[valid].max()
    # no weight anywhere: the default everywhere
    pp.fill(values, np.zeros((1, h, w), np.float32), np.array([0.3], np.float32), out)
    np.testing.assert_allclose(out, 0.3, atol=1e-6)


def test_layer_weights_and_person_layer_match_reference(rng):
    a, b = rng.random((9, 14), dtype=np.float32), rng.random((9, 14), dtype=np.float32)
    u, i = np.zeros_like(a), np.zeros_like(a)
    u, i = np.maximum(a, b), np.minimum(a, b)
    wb, wp = np.zeros_like(a), np.zeros_like(a)
    k.layer_weights(u, i, wb, wp)
    np.testing.assert_allclose(wb, (1 - u) ** 2, atol=1e-6)
    np.testing.assert_allclose(wp, np.clip((i - 0.5) / 0.4, 0, 1), atol=1e-6)
    out = np.zeros_like(a)
    k.person_layer(a, np.float32(0.2), np.float32(0.4), np.float32(0.9), out)
    np.testing.assert_allclose(out, np.clip(a + 0.2, 0.4, 0.9), atol=1e-6)


@pytest.mark.parametrize("fit", [DepthFit.LETTERBOX, DepthFit.CROP])
def test_compose_layers_matches_bilinear_reference(rng, fit):
    h, w = 97, 171
    f = compute_fit(h, w, fit)
    person = rng.random((f.nh, f.nw), dtype=np.float32)
    background = rng.random((f.nh, f.nw), dtype=np.float32)
    matte = rng.random((h, w), dtype=np.float32)
    yi, yf = _sampling(h, f.sy, f.sh, f.nh)
    xi, xf = _sampling(w, f.sx, f.sw, f.nw)
    out = np.zeros((h, w), np.float32)
    wide_b, wide_d = np.zeros((f.nh, w), np.float32), np.zeros((f.nh, w), np.float32)
    k.widen_layers(person, background, xi, xf, wide_b, wide_d)
    state = matte.copy()  # settled: the matte itself
    k.compose_layers(matte, wide_b, wide_d, yi, yf, np.float32(0.1), np.float32(0.5), state, out)
    np.testing.assert_allclose(out, ref_compose(matte, person, background, yi, yf, xi, xf), atol=1e-5)
    # a changed matte: small changes are smoothed, large ones followed at once
    new = np.clip(matte + rng.normal(0, 0.3, matte.shape), 0, 1).astype(np.float32)
    prev = state.copy()
    k.compose_layers(new, wide_b, wide_d, yi, yf, np.float32(0.1), np.float32(0.5), state, out)
    a = 0.1 + 0.9 * np.minimum(np.abs(new - prev) / 0.5, 1.0)
    expect = prev + a * (new - prev)
    np.testing.assert_allclose(state, expect, atol=1e-5)
    np.testing.assert_allclose(out, ref_compose(expect, person, background, yi, yf, xi, xf), atol=1e-5)
    const = np.zeros_like(out)
    k.compose_constant(matte, np.float32(1.0), np.float32(0.25), const)
    np.testing.assert_allclose(const, 0.25 + 0.75 * matte, atol=1e-6)


# -- geometry -------------------------------------------------------------------------------------

@pytest.mark.parametrize("w,h", [(1280, 720), (640, 480), (720, 1280), (854, 480)])
def test_fit_never_squashes(w, h):
    lb = compute_fit(h, w, DepthFit.LETTERBOX)
    assert lb.nw <= MODEL_W and lb.nh <= MODEL_H and (lb.nw == MODEL_W or lb.nh == MODEL_H)
    assert abs(lb.nw / lb.nh - w / h) / (w / h) < 0.03, "letterbox keeps the aspect ratio"
    cr = compute_fit(h, w, DepthFit.CROP)
    assert (cr.nh, cr.nw) == (MODEL_H, MODEL_W)
    assert abs(cr.sw / cr.sh - MODEL_W / MODEL_H) < 0.02 and cr.sw <= w and cr.sh <= h


def test_cv2_widening_samples_where_the_kernel_does(rng):
    """The letterbox path widens the layers with cv2.resize: it must match widen_layers."""
    person = rng.random((13, 23), dtype=np.float32)
    background = rng.random((13, 23), dtype=np.float32)
    xi, xf = _sampling(101, 0, 101, 23)
    wide_b, wide_d = np.zeros((13, 101), np.float32), np.zeros((13, 101), np.float32)
    k.widen_layers(person, background, xi, xf, wide_b, wide_d)
    np.testing.assert_allclose(cv2.resize(background, (101, 13), interpolation=cv2.INTER_LINEAR), wide_b, atol=1e-5)
    np.testing.assert_allclose(cv2.resize(person - background, (101, 13), interpolation=cv2.INTER_LINEAR), wide_d,
                               atol=1e-5)


def ref_final_conv_up2(features, weight, bias) -> np.ndarray:
    """Zero-padded 3x3 convolution, ReLU, then ONNX ``Resize`` linear x2 with half-pixel centres."""
    c, h, w = features.shape
    p = np.pad(features.astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    conv = np.full((h, w), float(bias))
    for dy in range(3):
        for dx in range(3):
            conv += np.einsum("c,chw->hw", weight[:, dy, dx].astype(np.float64), p[:, dy:dy + h, dx:dx + w])
    conv = np.maximum(conv, 0.0)
    ys = np.clip((np.arange(2 * h) + 0.5) / 2 - 0.5, 0, h - 1)
    xs = np.clip((np.arange(2 * w) + 0.5) / 2 - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = conv[y0][:, x0] * (1 - fx) + conv[y0][:, x1] * fx
    bot = conv[y1][:, x0] * (1 - fx) + conv[y1][:, x1] * fx
    return top * (1 - fy) + bot * fy


@pytest.mark.parametrize("c,h,w", [(5, 7, 9), (3, 1, 1), (2, 4, 1), (24, 11, 13)])
def test_final_conv_up2_matches_reference(rng, c, h, w):
    features = rng.normal(0.0, 1.0, (c, h, w)).astype(np.float32)
    weight = rng.normal(0.0, 0.5, (c, 3, 3)).astype(np.float32)
    conv, out = np.zeros((h, w), np.float32), np.zeros((2 * h, 2 * w), np.float32)
    k.final_conv_up2(features, weight, np.float32(0.1), conv, out)
    ref = ref_final_conv_up2(features, weight, 0.1)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert out.min() >= 0.0
    if h * w > 20:
        assert (ref == 0).any(), "on noise the ReLU clips somewhere: the test covers it"


def test_the_model_splits_at_its_final_conv_and_nothing_else_does():
    from realtime.core import models
    from realtime.stages.depth.graph import split_final_conv

    data = models.resolve("tcmonodepth_small").read_bytes()
    cut = split_final_conv(data)
    assert cut is not None and cut.weight.shape == (24, 3, 3) and np.isfinite(cut.bias)
    assert len(cut.head) < len(data)
    assert split_final_conv(cut.head) is None, "the head ends in a 1x1 conv, not in the pattern"
    assert split_final_conv(data[: len(data) // 2]) is None  # truncated file: run whole, no exception
    assert split_final_conv(b"not a model") is None


def test_a_split_that_does_not_give_the_whole_models_output_is_not_used():
    """The load-time check: a last layer that computes something else leaves the model whole."""
    from realtime.core import models
    from realtime.stages.depth.graph import FinalConv, split_final_conv

    path = models.resolve("tcmonodepth_small")
    cut = split_final_conv(path.read_bytes())
    model = OnnxDepth(str(path), threads=1, split=False)
    try:
        x = np.random.default_rng(7).uniform(0, 255, (1, 3, MODEL_H, MODEL_W)).astype(np.float32)
        whole = model.infer(x).copy()
        model._try_split(FinalConv(cut.head, cut.weight * np.float32(1.01), cut.bias), str(path), 1, False)
        assert not model.split
        np.testing.assert_array_equal(model.infer(x), whole)
        model._try_split(cut, str(path), 1, False)  # the true layer passes the same check
        assert model.split
    finally:
        model.close()


def test_only_a_multi_threaded_run_in_the_callers_thread_spins():
    from realtime.stages.depth import model_spins

    assert model_spins(DepthConfig(asynchronous=False))  # 2 threads, the caller waits: spin briefly
    assert not model_spins(DepthConfig(asynchronous=False, spin=False))
    assert not model_spins(DepthConfig(asynchronous=False, threads=1))  # no pool to spin
    assert not model_spins(DepthConfig())  # its own thread, next to segmentation
    assert not model_spins(DepthConfig(threads=2))


def test_split_model_gives_the_whole_models_output():
    """The last layer outside onnxruntime: same output on real frames, to float rounding."""
    from realtime.core import models

    path = str(models.resolve("tcmonodepth_small"))
    split, whole = OnnxDepth(path, threads=1), OnnxDepth(path, threads=1, split=False)
    try:
        assert split.split and not whole.split
        frames = [talking_frame(i, "1.mp4", (MODEL_W, MODEL_H)) for i in (0, 40)]
        frames.append(np.random.default_rng(3).integers(0, 256, (MODEL_H, MODEL_W, 3), dtype=np.uint8))
        for f in frames:
            x = np.ascontiguousarray(f[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32)
            a, b = split.infer(x), whole.infer(x)
            assert a.shape == b.shape == (MODEL_H, MODEL_W) and not a.flags.writeable
            np.testing.assert_allclose(a, b, atol=1e-5 * float(np.abs(b).max()))
            assert b.std() > 0.01 * abs(float(b.mean())), "a flat output would prove nothing"
    finally:
        split.close()
        whole.close()


def test_sampling_hits_cell_centres():
    i0, f = _sampling(1280, 0, 1280, 320)
    u = i0 + f
    np.testing.assert_allclose(u[1::4][1:-1] + 0.125, (np.arange(1, 1280, 4)[1:-1] + 0.5) / 4 - 0.5 + 0.125, atol=1e-5)
    assert i0.max() <= 318 and f.min() >= 0 and f.max() <= 1


# -- the scale stabiliser ---------------------------------------------------------------------------

def test_range_stabiliser_ignores_noise_inside_the_dead_band(rng):
    s = RangeStabiliser(smoothing=0.9, deadband=0.08)
    s.update(0.2, 1.0)
    seen = [s.update(0.2 + rng.normal(0, 0.01), 1.0 + rng.normal(0, 0.01)) for _ in range(200)]
    lo = np.array([x[0] for x in seen])
    assert np.ptp(lo) < 1e-9, "noise well inside the band must not move the range at all"


def test_range_stabiliser_settles_after_a_step_within_n_updates():
    s = RangeStabiliser(smoothing=0.9, deadband=0.08)
    s.update(0.2, 1.0)
    n_settle = None
    for n in range(1, 200):
        lo, hi = s.update(0.2, 2.0)
        if abs(hi - 2.0) < 0.01 * 1.8 and n_settle is None:
            n_settle = n
    assert n_settle is not None and n_settle <= 45
    assert abs(s.hi - 2.0) < 0.02 and s.lo == pytest.approx(0.2)
    # moves monotonically (no overshoot) and stops tracking once there
    s2 = RangeStabiliser(smoothing=0.9, deadband=0.08)
    s2.update(0.0, 1.0)
    his = [s2.update(0.0, 1.5)[1] for _ in range(80)]
    assert (np.diff(his) >= -1e-12).all() and max(his) <= 1.5


def test_range_stabiliser_suppresses_large_noise(rng):
    s = RangeStabiliser(smoothing=0.9, deadband=0.08)
    s.update(0.0, 1.0)
    meas = 1.0 + rng.normal(0, 0.1, 300)
    out = np.array([s.update(0.0, m)[1] for m in meas])
    assert np.std(out[50:]) < 0.4 * np.std(meas)


# -- the stage on real frames --------------------------------------------------------------------

def _ordering(disparities, masks) -> float:
    ok = [np.median(d[m > 0.5]) > np.median(d[m < 0.5]) for d, m in zip(disparities, masks)]
    return float(np.mean(ok))


@pytest.fixture(scope="module")
def people():
    """Frames, GT masks and real segmentation mattes of the first 50 frames of each sequence."""
    out = {}
    for name in ("breakdance", "dance-twirl"):
        frames, masks = load_sequence(name, 40)
        with Segmenter(SegmentationConfig()) as seg:
            mattes = [seg.process(f, i * FRAME_MS + 1).copy() for i, f in enumerate(frames)]
        out[name] = (frames, masks, mattes)
    return out


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("name", ["breakdance", "dance-twirl"])
def test_person_is_nearer_than_background_with_the_real_matte(people, name, asynchronous):
    frames, masks, mattes = people[name]
    with DepthEstimator(DepthConfig(asynchronous=asynchronous)) as dep:
        disp = [dep.process(f, i * FRAME_MS + 1, m).copy() for i, (f, m) in enumerate(zip(frames, mattes))]
    for d in disp:
        assert d.dtype == np.float32 and d.shape == frames[0].shape[:2]
        assert d.min() >= 0.0 and d.max() <= 1.0
    assert _ordering(disp, masks) >= 0.95


class _Reversed:
    """Fault injection: the real model, but with its depth turned inside out (near <-> far)."""

    def __init__(self) -> None:
        self.inner = open_backend(DepthConfig())
        self.calls = 0

    def infer(self, x):
        self.calls += 1
        out = self.inner.infer(x)
        return (out.max() - out).astype(np.float32)

    def close(self):
        self.inner.close()


def test_fusion_puts_the_person_in_front_when_the_model_gets_it_wrong(people):
    """The prior (people are in front of most of the room) rescues a model that is wrong."""
    frames, masks, _ = people["dance-twirl"]
    frames, masks = frames[:20], masks[:20]
    backend = _Reversed()
    with DepthEstimator(DepthConfig(), backend=backend) as dep:
        none = np.zeros(masks[0].shape, np.float32)
        raw = [dep.process(f, i * FRAME_MS + 1, none).copy() for i, f in enumerate(frames)]
    with DepthEstimator(DepthConfig(), backend=_Reversed()) as dep:
        fused = [dep.process(f, i * FRAME_MS + 1, m).copy() for i, (f, m) in enumerate(zip(frames, masks))]
    assert _ordering(raw, masks) < 0.5, "the reversed model must really be wrong for this test to mean anything"
    assert _ordering(fused, masks) >= 0.95


def _static_clip(sigma: float, n: int) -> list[np.ndarray]:
    base = talking_frame(0).astype(np.float32)
    rng = np.random.default_rng(7)
    return [np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).round().astype(np.uint8) for _ in range(n)]


def test_static_clip_does_not_flicker_through_the_depth_stage():
    frames = _static_clip(4.0, 26)
    changes = []
    with Segmenter(SegmentationConfig()) as seg, DepthEstimator(DepthConfig()) as dep:
        prev = None
        for i, f in enumerate(frames):
            ts = i * FRAME_MS + 1
            d = dep.process(f, ts, seg.process(f, ts))
            if prev is not None and i > 10:
                changes.append(float(np.mean(np.abs(d - prev))))
            prev = d.copy()
        assert dep.person_plane is not None
    assert max(changes) < 0.001, changes


def test_static_clip_does_not_flicker_through_the_pipeline():
    frames = _static_clip(4.0, 24)
    changes, focus = [], []
    with Pipeline(load_preset("portrait")) as pipe:
        prev = None
        for i, f in enumerate(frames):
            r = pipe.process(f, i * FRAME_MS + 1)
            if prev is not None and i > 10:
                changes.append(float(np.mean(np.abs(r.disparity - prev))))
                focus.append(r.focus)
            prev = r.disparity.copy()
    assert max(changes) < 0.001, changes
    assert np.sum(np.abs(np.diff(focus))) < 0.01


def _paste(bg: np.ndarray, fg: np.ndarray, mask: np.ndarray, x: int) -> tuple[np.ndarray, np.ndarray]:
    """``fg`` where ``mask``, shifted right by ``x`` pixels, over ``bg``; returns (frame, matte)."""
    h, w = bg.shape[:2]
    m = np.zeros((h, w), np.float32)
    shifted = np.roll(mask, x, axis=1)
    if x < 0:
        shifted[:, x:] = 0
    m[:] = shifted
    frame = np.where(m[..., None] > 0.5, np.roll(fg, x, axis=1), bg)
    return np.ascontiguousarray(frame), m


def test_person_walking_in_does_not_rescale_the_scene():
    """A person slides in from the left over a still room: the room's disparity stays put."""
    frames, masks = load_sequence("dance-twirl", 1)
    person, mask = frames[0], masks[0]
    room = cv2.resize(cv2.imread(str(DATA / "depth" / "nyuv2" / "rgb_00050.jpg")), person.shape[1::-1],
                      interpolation=cv2.INTER_AREA)
    cols = np.nonzero(mask.any(axis=0))[0]
    start = -int(cols.max()) - 1           # fully outside on the left
    far_right = np.zeros(mask.shape, bool)
    far_right[:, int(cols.max()) + 60:] = True  # never reached by the person
    with DepthEstimator(DepthConfig()) as dep:
        empty = np.zeros(mask.shape, np.float32)
        for i in range(8):
            before = dep.process(room, i * FRAME_MS + 1, empty).copy()
        range_before = dep.range
        seen = []
        for j, x in enumerate(np.linspace(start, 0, 20).astype(int)):
            frame, matte = _paste(room, person, mask, int(x))
            d = dep.process(frame, (8 + j) * FRAME_MS + 1, matte)
            seen.append(float(np.mean(np.abs(d[far_right] - before[far_right]))))
        assert dep.range[1] == pytest.approx(range_before[1], rel=0.1)
        assert dep.person_plane is not None and dep.person_plane > np.median(d[far_right])
    assert max(seen) < 0.03, seen


def test_fused_disparity_edges_are_the_matte_edges():
    """With the real matte, the disparity's steep steps sit on the matte's edge and are much
    sharper than the model's own (upsampled) edges."""
    frame = talking_frame(0, size=(640, 360))
    with Segmenter(SegmentationConfig()) as seg, DepthEstimator(DepthConfig()) as dep:
        matte = seg.process(frame, 1).copy()
        d = dep.process(frame, 1, matte).copy()
        lo, hi = dep.range
        raw = cv2.resize(dep._state, (640, 360), interpolation=cv2.INTER_LINEAR)
    raw = (raw - lo) / (hi - lo) * (1 - dep.config.headroom)  # the same scale, linear, unfused

    def grad(a):
        gy, gx = np.gradient(a)
        return np.hypot(gx, gy)

    g, g_raw = grad(d), grad(raw)
    edge = cv2.dilate(((matte > 0.05) & (matte < 0.95)).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    strong = g > 0.5 * g.max()
    assert strong.sum() > 0 and (strong & edge).sum() >= 0.95 * strong.sum()
    assert g[edge].max() > 1.5 * g_raw[edge].max()


def test_fused_disparity_has_no_holes_inside_and_no_halo_outside():
    frame = talking_frame(0, size=(640, 360))
    h, w = frame.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    # a synthetic matte unlike the real person: the layers must follow it, not the model
    matte = (((yy - 200) / 150.0) ** 2 + ((xx - 330) / 110.0) ** 2 < 1).astype(np.float32)
    matte = cv2.GaussianBlur(matte, (0, 0), 1.0)
    with DepthEstimator(DepthConfig()) as dep:
        for i in range(3):
            d = dep.process(frame, i * FRAME_MS + 1, matte).copy()
        plane, relief = dep.person_plane, dep.config.person_relief
    inside = matte > 0.999
    tol = 2e-3  # matte > 0.999 still mixes in a thousandth of the background
    assert d[inside].min() >= plane - relief - tol and d[inside].max() <= plane + relief + tol
    # the background just outside the edge looks like the background a little further out (no halo)
    person = (matte > 0.01).astype(np.uint8)
    ring_near = (cv2.dilate(person, np.ones((9, 9), np.uint8)) > 0) & (matte <= 0.01)
    ring_far = (cv2.dilate(person, np.ones((41, 41), np.uint8)) > 0) & \
        ~(cv2.dilate(person, np.ones((31, 31), np.uint8)) > 0)
    assert abs(float(np.median(d[ring_near])) - float(np.median(d[ring_far]))) < 0.1


def test_contract_and_validation():
    frame = talking_frame(0, size=(320, 180))
    matte = np.zeros((180, 320), np.float32)
    with DepthEstimator(DepthConfig()) as dep:
        d = dep.process(frame, 1, matte)
        assert d.shape == (180, 320) and d.dtype == np.float32 and not d.flags.writeable
        with pytest.raises(FrameTypeError):
            dep.process(frame, 2, matte.astype(np.float64))
        with pytest.raises(FrameShapeError):
            dep.process(frame, 3, matte[:-1])
        with pytest.raises(ValueError):
            dep.process(frame, 3, matte)  # not after 3: timestamps must increase
        # another frame size is fine (new buffers), and tiny frames too
        d2 = dep.process(talking_frame(0, size=(97, 61)), 10, np.ones((61, 97), np.float32))
        assert d2.shape == (61, 97) and np.isfinite(d2).all()
    with pytest.raises(ClosedError):
        dep.process(frame, 20, matte)
    dep.close()  # idempotent


def test_crop_fit_and_opencv_backend_give_the_same_ordering(people):
    frames, masks, mattes = people["dance-twirl"]
    for cfg in (DepthConfig(fit=DepthFit.CROP), DepthConfig(backend=DepthBackendKind.OPENCV)):
        with DepthEstimator(cfg) as dep:
            disp = [dep.process(f, i * FRAME_MS + 1, m).copy() for i, (f, m) in enumerate(zip(frames[:10], mattes))]
        assert _ordering(disp, masks[:10]) >= 0.95


def test_opencv_and_onnxruntime_agree():
    x = np.random.default_rng(0).random((1, 3, MODEL_H, MODEL_W), dtype=np.float32) * 255
    from realtime.core import models

    path = str(models.resolve("tcmonodepth_small"))
    a, b = OnnxDepth(path), OpenCVDepth(path)
    try:
        np.testing.assert_allclose(a.infer(x), b.infer(x), atol=1e-4)
    finally:
        a.close()
        b.close()


def test_every_n_frames_reuses_the_last_result_without_popping():
    frames = _static_clip(2.0, 12)
    backend = _CountingModel()
    with DepthEstimator(DepthConfig(every_n_frames=3, still_interval=1, asynchronous=False), backend=backend) as dep:
        prev = None
        for i, f in enumerate(frames):
            d = dep.process(f, i * FRAME_MS + 1, np.zeros(f.shape[:2], np.float32))
            if prev is not None and i > 3:
                assert np.mean(np.abs(d - prev)) < 0.002
            prev = d.copy()
    assert backend.calls == 4


class _CountingModel:
    """The real model, counting its calls (and optionally failing: fault injection)."""

    def __init__(self, fail_after: int | None = None, garbage: bool = False) -> None:
        self.inner = open_backend(DepthConfig())
        self.calls = 0
        self.fail_after = fail_after
        self.garbage = garbage

    def infer(self, x):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            if self.garbage:
                return np.full((MODEL_H, MODEL_W), np.nan, np.float32)
            raise RuntimeError("injected failure")
        return self.inner.infer(x)

    def close(self):
        self.inner.close()


def test_a_dropped_stage_does_not_leave_its_thread_behind():
    import gc

    dep = DepthEstimator(DepthConfig(asynchronous=True))
    assert THREAD_NAME in [t.name for t in threading.enumerate()]
    del dep
    gc.collect()
    assert THREAD_NAME not in [t.name for t in threading.enumerate() if t.is_alive()]


def test_reset_forgets_work_in_flight():
    """After reset() (a new stream), nothing computed for the old stream comes out."""
    room = cv2.resize(cv2.imread(str(DATA / "depth" / "nyuv2" / "rgb_00000.jpg")), (640, 360))
    person = talking_frame(0, size=(640, 360))
    matte = np.zeros((360, 640), np.float32)
    with DepthEstimator(DepthConfig(asynchronous=False)) as sync:
        ref = sync.process(room, 1, matte).copy()
    with DepthEstimator(DepthConfig(asynchronous=True)) as dep:
        for i in range(5):
            dep.process(person, i * FRAME_MS + 1, matte)
        dep.reset()
        d = dep.process(room, 1, matte)
        assert np.mean(np.abs(d - ref)) < 0.01


def test_asynchronous_mode_runs_in_its_own_thread_and_joins_on_close():
    frames = _static_clip(2.0, 10)
    matte = np.zeros(frames[0].shape[:2], np.float32)
    with DepthEstimator(DepthConfig(asynchronous=True)) as dep:
        names = [t.name for t in threading.enumerate()]
        assert THREAD_NAME in names
        outs = [dep.process(f, i * FRAME_MS + 1, matte).copy() for i, f in enumerate(frames)]
    assert THREAD_NAME not in [t.name for t in threading.enumerate() if t.is_alive()]
    with DepthEstimator(DepthConfig(asynchronous=False)) as sync:
        ref = [sync.process(f, i * FRAME_MS + 1, matte).copy() for i, f in enumerate(frames)]
    assert np.mean(np.abs(outs[-1] - ref[-1])) < 0.02
    for a, b in zip(outs[1:], outs[:-1]):
        assert np.mean(np.abs(a - b)) < 0.01  # newer results fold in without a pop


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("garbage", [False, True])
def test_model_failure_is_a_stage_error(asynchronous, garbage):
    frames = _static_clip(2.0, 6)
    matte = np.zeros(frames[0].shape[:2], np.float32)
    # a model call on every frame (a still scene skips most: test_cost.py)
    dep = DepthEstimator(DepthConfig(asynchronous=asynchronous, still_interval=1),
                         backend=_CountingModel(fail_after=1, garbage=garbage))
    try:
        with pytest.raises(StageError):
            for i, f in enumerate(frames):
                dep.process(f, i * FRAME_MS + 1, matte)
                if asynchronous:
                    import time
                    time.sleep(0.05)
    finally:
        dep.close()


def test_no_depth_fallback_is_a_uniform_blur(caplog):
    frame = talking_frame(0, size=(160, 90))
    matte = np.zeros((90, 160), np.float32)
    matte[20:70, 50:110] = 1.0
    with DepthEstimator(load_preset("blur-only").depth) as dep:
        d = dep.process(frame, 1, matte)
        assert not dep.uses_model
        np.testing.assert_allclose(d[matte == 1], 1.0)
        np.testing.assert_allclose(d[matte == 0], dep.config.background_disparity)
    with caplog.at_level(logging.WARNING, logger="realtime.stages.depth"):
        dep = DepthEstimator(DepthConfig(model_path="/nonexistent/model.onnx"))
        try:
            assert not dep.available and not dep.uses_model
            for i in range(3):
                d = dep.process(frame, i + 1, matte)
            np.testing.assert_allclose(d[matte == 0], dep.config.background_disparity)
        finally:
            dep.close()
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1


def test_unknown_backend_file_is_a_model_error(tmp_path):
    bad = tmp_path / "tcmonodepth_tcsmallnet_192x320.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError):
        open_backend(DepthConfig(model_path=str(bad)))


def test_configure_while_running_keeps_state_and_switches_async():
    frames = _static_clip(2.0, 6)
    matte = np.zeros(frames[0].shape[:2], np.float32)
    with DepthEstimator(DepthConfig(asynchronous=False)) as dep:
        for i in range(3):
            dep.process(frames[i], i * FRAME_MS + 1, matte)
        before = dep.range
        dep.configure(DepthConfig(asynchronous=True, range_deadband=0.1))
        assert THREAD_NAME in [t.name for t in threading.enumerate()]
        assert dep.range == before and dep._range.deadband == 0.1
        d = dep.process(frames[3], 4 * FRAME_MS + 1, matte)
        assert np.isfinite(d).all()
        dep.configure(DepthConfig(fit=DepthFit.CROP, asynchronous=False))
        assert THREAD_NAME not in [t.name for t in threading.enumerate() if t.is_alive()]
        d = dep.process(frames[4], 5 * FRAME_MS + 1, matte)
        assert d.shape == frames[0].shape[:2] and dep._grids.current.fit.nw == MODEL_W


def test_between_model_runs_the_edges_follow_the_current_matte():
    frame = talking_frame(0, size=(640, 360))
    a = np.zeros((360, 640), np.float32)
    a[60:, 200:420] = 1.0
    b = np.roll(a, 80, axis=1)  # the person moved right; the model has not run since
    backend = _CountingModel()
    with DepthEstimator(DepthConfig(every_n_frames=5, asynchronous=False), backend=backend) as dep:
        dep.process(frame, 1, a)
        d = dep.process(frame, 34, b).copy()
        plane, relief = dep.person_plane, dep.config.person_relief
    assert backend.calls == 1
    moved_in = (b == 1) & (a == 0)
    moved_out = (a == 1) & (b == 0)
    assert d[moved_in].min() >= plane - relief - 1e-3          # the person's layer where the person is now
    assert np.median(d[moved_out]) < plane - relief - 0.05     # the background where it was
