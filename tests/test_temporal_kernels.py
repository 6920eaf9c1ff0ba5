"""The stabiliser's Numba kernels against slow NumPy references, on odd-sized seeded inputs."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.stages.temporal import histogram_median
from shaders import temporal as k

F32 = np.float32
SHAPES = [(37, 53), (5, 7), (40, 64), (1, 9)]


# ---- slow references -----------------------------------------------------------------------

def ref_tile_luma(frame: np.ndarray) -> np.ndarray:
    """Mean of rows 1 and 3 of each full-height tile, of all rows of a tile cut by the bottom."""
    h, w = frame.shape[:2]
    th, tw = k.tiles_shape(h, w)
    out = np.empty((th, tw), np.float64)
    for ty in range(th):
        for tx in range(tw):
            tile = frame[ty * k.TILE:(ty + 1) * k.TILE, tx * k.TILE:(tx + 1) * k.TILE]
            if tile.shape[0] == k.TILE:
                tile = tile[1::2]
            out[ty, tx] = tile.astype(np.float64).mean()
    return out


def ref_ramp(v: np.ndarray, lo: float, inv: float) -> np.ndarray:
    return np.clip((v - lo) * inv, 0.0, 1.0)


def ref_motion_weight(cur, prev, shift, lo, inv, width) -> np.ndarray:
    """Tile weights dilated over 3x3 tiles, repeated over each tile's pixel columns."""
    r = ref_ramp(np.abs(cur.astype(np.float64) - prev - shift), lo, inv)
    padded = np.pad(r, 1, constant_values=0.0)
    h, w = r.shape
    tiles = np.max([padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=0)
    return np.repeat(tiles, k.TILE, axis=1)[:, :width]


def encode(alpha: np.ndarray, side: np.ndarray, disp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kernels' state layout: uint16 alpha in 1/32767 steps with the side in bit 0, uint16
    disparity in 1/65535 steps."""
    qa = np.rint(np.clip(alpha.astype(np.float64), 0, 1) * 32767).astype(np.uint16)
    state_m = (qa << 1) | side.astype(np.uint16)
    state_d = np.rint(np.clip(disp.astype(np.float64), 0, 1) * 65535).astype(np.uint16)
    return state_m, state_d


def decode(state_m: np.ndarray, state_d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(alpha, side, disparity) in float64 from the kernels' state layout."""
    return (state_m >> 1).astype(np.float64) / 32767, (state_m & 1).astype(np.uint8), \
        state_d.astype(np.float64) / 65535


def ref_stabilise(matte, disp, motion, lean, km, kd, m_lo, m_inv, d_lo, d_inv, d_shift, band, state_m, state_d):
    """Returns (alpha state, disparity state, side, out_m, out_d, margin) after one step, in
    float64 and unquantised; margin = distance of the new alpha state from the side threshold
    it was compared with."""
    h, w = matte.shape
    mot = np.repeat(motion, k.TILE, 0)[:h].astype(np.float64)
    m, d = matte.astype(np.float64), disp.astype(np.float64)
    sm, side, sd = decode(state_m, state_d)
    sd = sd + d_shift
    f = np.maximum(np.maximum(mot, lean), ref_ramp(np.abs(m - sm), m_lo, m_inv))
    fd = np.maximum(f, ref_ramp(np.abs(d - sd), d_lo, d_inv))
    new_m = sm + (km + (1 - km) * f) * (m - sm)
    new_d = np.clip(sd + (kd + (1 - kd) * fd) * (d - sd), 0, 1)
    b = band * (1 - f)
    threshold = np.where(side != 0, 0.5 - b, 0.5 + b)
    now = new_m >= threshold
    out_m = np.where(now, np.maximum(new_m, 0.5), np.minimum(new_m, np.nextafter(F32(0.5), F32(0))))
    return new_m, new_d, now.astype(np.uint8), out_m, new_d, np.abs(new_m - threshold)


# ---- tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_tile_luma_matches_reference(shape):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    th, tw = k.tiles_shape(*shape)
    out = np.empty((th, tw), np.float32)
    k.tile_luma(frame, k.scratch_rows(shape[1]), out)
    np.testing.assert_allclose(out, ref_tile_luma(frame), rtol=0, atol=1e-3)


def test_tile_luma_extremes_do_not_overflow():
    frame = np.full((9, 11, 3), 255, np.uint8)
    out = np.empty(k.tiles_shape(9, 11), np.float32)
    k.tile_luma(frame, k.scratch_rows(11), out)
    assert np.all(out == 255.0)


@pytest.mark.parametrize("step", [1, 2, 3])
def test_luma_histogram_matches_reference(step):
    rng = np.random.default_rng(2)
    luma = (rng.random((23, 31)) * 300 - 20).astype(np.float32)  # some outside 0..256
    out = np.empty(32, np.int32)
    k.luma_histogram(luma, step, out)
    sample = luma[::step, ::step].astype(np.float64)
    ref = np.bincount(np.clip(np.trunc(sample * 32 / 256), 0, 31).astype(np.int64).ravel(), minlength=32)
    np.testing.assert_array_equal(out, ref)
    assert out.sum() == sample.size


@pytest.mark.parametrize("step", [1, 4])
def test_difference_histogram_matches_reference(step):
    rng = np.random.default_rng(3)
    a = rng.random((29, 41), dtype=np.float32)
    b = rng.random((29, 41), dtype=np.float32)
    lo, inv = F32(-0.5), F32(20.0)
    out = np.empty(20, np.int32)
    k.difference_histogram(a, b, F32(1.0), step, lo, inv, out)
    diff = (a[::step, ::step].astype(np.float64) - b[::step, ::step]) - lo
    idx = np.clip(np.trunc(diff * inv), 0, 19).astype(np.int64)
    ref = np.bincount(idx.ravel(), minlength=20)
    assert out.sum() == idx.size
    # float32 rounding may move a value sitting exactly on a bin edge to its neighbour
    assert np.abs(out - ref).sum() <= 2


def test_histogram_median_finds_the_shared_offset():
    rng = np.random.default_rng(4)
    a = rng.random((60, 80), dtype=np.float32)
    b = a - F32(0.03) + rng.normal(0, 0.002, a.shape).astype(np.float32)
    b[:20] = rng.random((20, 80), dtype=np.float32)  # a third of the frame moved: ignored by the median
    width = 1.0 / 4096
    lo = -255.5 * width
    counts = np.empty(511, np.int32)
    k.difference_histogram(a, b, F32(1.0), 1, F32(lo), F32(1 / width), counts)
    assert abs(histogram_median(counts, lo, width) - 0.03) < 0.002
    still = np.zeros(511, np.int32)
    k.difference_histogram(a, a, F32(1.0), 1, F32(lo), F32(1 / width), still)
    assert histogram_median(still, lo, width) == pytest.approx(0.0, abs=1e-12)
    # against a quantised uint16 state, read through its scale
    q = np.rint(np.clip(b, 0, 1) * 65535).astype(np.uint16)
    k.difference_histogram(a, q, k.DISP_STEP, 1, F32(lo), F32(1 / width), counts)
    assert abs(histogram_median(counts, lo, width) - 0.03) < 0.002


@pytest.mark.parametrize("shape,width", [((13, 17), 67), ((24, 40), 160), ((7, 5), 18), ((3, 1), 2)])
def test_motion_weight_matches_reference(shape, width):
    rng = np.random.default_rng(5)
    cur = (rng.random(shape) * 255).astype(np.float32)
    prev = cur + rng.normal(0, 3, shape).astype(np.float32)
    prev[1:3, 0:2] += 40  # a moving patch
    out = np.empty((shape[0], width), np.float32)
    k.motion_weight(cur, prev, F32(1.5), F32(4.0), F32(0.25), np.empty(shape, np.float32), out)
    ref = ref_motion_weight(cur, prev, 1.5, 4.0, 0.25, width)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert out.min() >= 0 and out.max() <= 1
    # the moving patch and its one-tile rim follow at once
    assert np.all(out[0:4, 0:min(3 * k.TILE, width)] == 1.0)


def _stabilise_inputs(shape, seed):
    rng = np.random.default_rng(seed)
    h, w = shape
    matte = rng.random(shape, dtype=np.float32)
    matte[rng.random(shape) < 0.3] = 0.0
    matte[rng.random(shape) < 0.3] = 1.0
    disp = rng.random(shape, dtype=np.float32)
    motion = np.repeat(rng.random(k.tiles_shape(h, w), dtype=np.float32), k.TILE, axis=1)[:, :w].copy()
    motion[motion < 0.6] = 0.0
    alpha = np.clip(matte + rng.normal(0, 0.2, shape), 0, 1).astype(np.float32)
    side = (rng.random(shape) < 0.5).astype(np.uint8)
    state_m, state_d = encode(alpha, side, disp + rng.normal(0, 0.1, shape))
    return matte, disp, motion, state_m, state_d


def _still(shape):
    return np.zeros((k.tiles_shape(*shape)[0], shape[1]), np.float32)


def _step(matte, disp, motion, state_m, state_d, out_m, out_d, smoothing=0.1, band=0.1):
    k.stabilise(matte, disp, motion, F32(0.0), F32(smoothing), F32(smoothing), F32(0.25), F32(4.0), F32(0.15),
                F32(6.0), F32(0.0), F32(band), state_m, state_d, out_m, out_d)


@pytest.mark.parametrize("shape", [(37, 53), (6, 9), (41, 3)])
def test_restart_matches_reference(shape):
    matte, disp, _, _, _ = _stabilise_inputs(shape, 8)
    state_m = np.empty(shape, np.uint16)
    state_d = np.empty(shape, np.uint16)
    out_m, out_d = np.empty(shape, np.float32), np.empty(shape, np.float32)
    k.restart(matte, disp, state_m, state_d, out_m, out_d)
    ref_m, ref_d = encode(matte, (matte >= 0.5).astype(np.uint8), disp)
    np.testing.assert_array_equal(state_m & 1, ref_m & 1)
    assert np.abs((state_m >> 1).astype(np.int64) - (ref_m >> 1)).max() <= 1
    assert np.abs(state_d.astype(np.int64) - ref_d).max() <= 1
    assert np.array_equal(out_m, matte) and np.array_equal(out_d, disp)


@pytest.mark.parametrize("shape", [(37, 53), (6, 9), (41, 3)])
@pytest.mark.parametrize("d_shift, lean", [(0.0, 0.0), (0.05, 0.0), (0.0, 0.6)])
def test_stabilise_matches_reference(shape, d_shift, lean):
    matte, disp, motion, sm, sd = _stabilise_inputs(shape, 6)
    params = (F32(lean), F32(0.1), F32(0.2), F32(0.25), F32(4.0), F32(0.15), F32(1 / 0.15), F32(d_shift), F32(0.1))
    ref = ref_stabilise(matte, disp, motion, *[float(p) for p in params], sm, sd)
    out_m = np.empty(shape, np.float32)
    out_d = np.empty(shape, np.float32)
    k.stabilise(matte, disp, motion, *params, sm, sd, out_m, out_d)
    alpha, side, sdisp = decode(sm, sd)
    np.testing.assert_allclose(alpha, ref[0], atol=2e-5)  # within one step of the uint16 states
    np.testing.assert_allclose(sdisp, ref[1], atol=1e-5)
    # a state within rounding of its side threshold may fall either way
    decided = ref[5] > 1e-4
    assert decided.mean() > 0.99
    np.testing.assert_array_equal(side[decided], ref[2][decided])
    np.testing.assert_allclose(out_m[decided], ref[3][decided], atol=1e-5)
    np.testing.assert_allclose(out_d, ref[4], atol=1e-5)
    np.testing.assert_allclose(out_d, sdisp, atol=1e-5)  # the disparity output is the state's value
    assert np.all(out_m >= 0) and np.all(out_m <= 1)


def test_stabilise_follows_at_once_where_the_tile_moved():
    matte, disp, motion, sm, sd = _stabilise_inputs((20, 24), 7)
    motion[:] = 1.0
    out_m = np.empty_like(matte)
    out_d = np.empty_like(disp)
    _step(matte, disp, motion, sm, sd, out_m, out_d)
    np.testing.assert_allclose(out_m, matte, atol=1e-6)
    np.testing.assert_allclose(out_d, disp, atol=1e-5)
    np.testing.assert_array_equal(decode(sm, sd)[1], (matte >= 0.5).astype(np.uint8))


def test_stabilise_holds_the_side_inside_the_dead_band():
    shape = (4, 8)
    half = np.full(shape, 0.5, np.float32)
    # person side, small dips below 0.5 are held at 0.5; background side, small rises held below 0.5
    matte = np.full(shape, 0.45, np.float32)
    matte[2:] = 0.55
    side = np.zeros(shape, np.uint8)
    side[:2] = 1
    sm, sd = encode(half, side, half)
    out_m = np.empty(shape, np.float32)
    out_d = np.empty(shape, np.float32)
    for _ in range(30):  # the state converges to the input, the side must not change
        _step(matte, half, _still(shape), sm, sd, out_m, out_d)
    alpha, side, _ = decode(sm, sd)
    np.testing.assert_allclose(alpha, matte, atol=0.01)  # the hold never biases the state
    assert np.all(out_m[:2] == 0.5) and np.all(side[:2] == 1)
    assert np.all(out_m[2:] < 0.5) and np.all(side[2:] == 0)
    # leaving the band flips the side and passes the value through
    matte[:] = 0.3
    for _ in range(60):
        _step(matte, half, _still(shape), sm, sd, out_m, out_d)
    assert np.all(decode(sm, sd)[1] == 0) and np.allclose(out_m, 0.3, atol=0.01)


def test_stabilise_converges_on_a_still_input_within_a_state_step():
    shape = (3, 5)
    matte = np.full(shape, 0.7, np.float32)
    disp = np.full(shape, 0.3, np.float32)
    sm, sd = encode(np.full(shape, 0.2, np.float32), np.zeros(shape, np.uint8), np.zeros(shape, np.float32))
    out_m, out_d = np.empty_like(matte), np.empty_like(matte)
    for _ in range(400):
        k.stabilise(matte, disp, _still(shape), F32(0.0), F32(0.1), F32(0.1), F32(0.9), F32(1.0), F32(0.9), F32(1.0),
                    F32(0.0), F32(0.1), sm, sd, out_m, out_d)
    # the rounded state stalls where one step of the average is below half a state step
    np.testing.assert_allclose(out_m, matte, atol=0.5 / 32767 / 0.1 + 1e-6)
    np.testing.assert_allclose(out_d, disp, atol=0.5 / 65535 / 0.1 + 1e-6)
    assert np.all(decode(sm, sd)[1] == 1)


def test_warmup_compiles_what_the_pipeline_calls():
    """The pipeline hands the matte and the disparity on read-only; Numba compiles read-only
    arrays apart, so the warm-up must cover them or the first camera frame stalls."""
    import shaders
    from realtime.core.config import TemporalConfig
    from realtime.core.frames import readonly
    from realtime.stages.temporal import Stabiliser

    shaders.warmup()
    kernels = (k.tile_luma, k.luma_histogram, k.difference_histogram, k.motion_weight, k.restart, k.stabilise)
    before = [set(fn.signatures) for fn in kernels]
    rng = np.random.default_rng(9)
    st = Stabiliser(TemporalConfig())
    for i in range(3):
        frame = rng.integers(0, 256, (9, 14, 3), dtype=np.uint8)
        st.process(frame, i, readonly(rng.random((9, 14), dtype=np.float32)),
                   readonly(rng.random((9, 14), dtype=np.float32)))
    assert [set(fn.signatures) for fn in kernels] == before
