"""The render reuse's block means (shaders/tiles.py) against a NumPy reference, on real frames."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import talking_frame
from realtime.devtools.testdata import noisy
from shaders import tiles

CELL, STATS = tiles.CELL, tiles.STATS
TOL = np.array([4.0, 4.0, 4.0, 0.02, 0.25], np.float32)
# focus, aperture, lim, near limit, subject tolerance
PARAMS = (np.float32(0.5), np.float32(20.0), np.float32(30.0), np.float32(-0.25), np.float32(3.0))


def ref_stats(frame: np.ndarray, disparity: np.ndarray, matte: np.ndarray, params=PARAMS
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block means (B, G, R of every ROW_STEP-th row, matte and CoC of every PLANE_STEP-th),
    whether a block holds a CoC plus matte * subject tolerance below the near limit, and whether
    it is solid subject (its least matte, over every row, at least SOLID_MATTE)."""
    focus, aperture, lim, near_below, subject_tol = (float(v) for v in params)
    h, w = disparity.shape
    hc, wc = -(-h // CELL), -(-w // CELL)
    coc = np.clip(aperture * (focus - disparity.astype(np.float64)), -lim, lim)
    stats = np.zeros((hc, wc, STATS), np.float64)
    near = np.zeros((hc, wc), bool)
    solid = np.zeros((hc, wc), bool)
    for cy in range(hc):
        rows = slice(cy * CELL, min(cy * CELL + CELL, h))
        for cx in range(wc):
            cols = slice(cx * CELL, min(cx * CELL + CELL, w))
            colour = frame[rows, cols][::tiles.ROW_STEP].astype(np.float64)
            stats[cy, cx, :3] = colour.reshape(-1, 3).mean(axis=0)
            m = matte[rows, cols][::tiles.PLANE_STEP]
            stats[cy, cx, 3] = m.mean()
            c = coc[rows, cols][::tiles.PLANE_STEP]
            stats[cy, cx, 4] = c.mean()
            near[cy, cx] = (c + np.clip(m, 0.0, 1.0) * subject_tol).min() < near_below
            solid[cy, cx] = matte[rows, cols].min() >= tiles.SOLID_MATTE
    return stats, near, solid


def moved_blocks(now: np.ndarray, before: np.ndarray, near: np.ndarray, solid: np.ndarray) -> np.ndarray:
    """Blocks that count as changed: near ones, and those whose means moved beyond TOL (a solid
    block's colour not counted, its CoC only beyond SOLID_COC_TOL)."""
    diff = np.abs(now - before)
    beyond = diff > TOL
    beyond[..., :3] &= ~solid[..., None]
    beyond[..., 4] &= ~solid | (diff[..., 4] > max(TOL[4], tiles.SOLID_COC_TOL))
    return near | beyond.any(axis=2)


def _planes(h: int, w: int, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth disparity with a person-shaped bump (partly in front of the focus plane) and its matte."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    matte = ((np.abs(xx - w / 2 - shift) < w / 6) & (yy > h / 3)).astype(np.float32)
    disparity = (0.3 + 0.2 * yy / h + 0.28 * matte).astype(np.float32)
    return disparity, matte


@pytest.mark.parametrize("size", [(1280, 720), (333, 251)])  # whole blocks, and ragged edges
def test_changed_blocks_matches_block_means(size):
    a = talking_frame(0, clip="4.mp4", size=size)
    b = talking_frame(45, clip="4.mp4", size=size)
    h, w = a.shape[:2]
    hc, wc = -(-h // CELL), -(-w // CELL)
    ref = np.zeros((hc, wc, STATS), np.float32)
    out = np.zeros((hc, wc), np.uint8)
    disp_a, matte_a = _planes(h, w)
    tiles.changed_blocks(a, disp_a, matte_a, PARAMS, TOL, True, ref, out)
    want_a, near_a, _ = ref_stats(a, disp_a, matte_a)
    assert out.all()  # reset: every block changed, every reference is the current mean
    np.testing.assert_allclose(ref, want_a, atol=1e-4)
    disp_b, matte_b = _planes(h, w, shift=w // 10)
    tiles.changed_blocks(b, disp_b, matte_b, PARAMS, TOL, False, ref, out)
    want_b, near_b, solid_b = ref_stats(b, disp_b, matte_b)
    moved = moved_blocks(want_b, want_a, near_b, solid_b)
    assert 0 < moved.sum() < moved.size and near_b.any()
    # some solid blocks' colour changed beyond the tolerance and did not count
    colour_only = (np.abs(want_b - want_a)[..., :3] > TOL[:3]).any(axis=2) & ~moved
    assert (colour_only & solid_b).any()
    np.testing.assert_array_equal(out.astype(bool), moved)
    # the references of changed blocks moved to the current means; the others stayed
    np.testing.assert_allclose(ref[moved], want_b[moved], atol=1e-4)
    np.testing.assert_allclose(ref[~moved], want_a[~moved], atol=1e-4)


def test_camera_noise_changes_no_block():
    base = talking_frame(0, clip="4.mp4", size=(1280, 720))
    h, w = base.shape[:2]
    hc, wc = -(-h // CELL), -(-w // CELL)
    disparity = np.full((h, w), 0.4, np.float32)  # all behind the focus plane: no near blocks
    matte = np.zeros((h, w), np.float32)
    ref = np.zeros((hc, wc, STATS), np.float32)
    out = np.zeros((hc, wc), np.uint8)
    tiles.changed_blocks(noisy(base, 2.0, 0), disparity, matte, PARAMS, TOL, True, ref, out)
    for i in range(1, 8):
        tiles.changed_blocks(noisy(base, 2.0, i), disparity, matte, PARAMS, TOL, False, ref, out)
        assert not out.any(), (i, int(out.sum()))
    lit = np.clip(base.astype(np.int16) + 6, 0, 255).astype(np.uint8)  # beyond the tolerance
    tiles.changed_blocks(noisy(lit, 2.0, 9), disparity, matte, PARAMS, TOL, False, ref, out)
    assert out.mean() > 0.9


def test_solid_subject_colour_is_not_compared_but_one_unsolid_row_is():
    """Inside solid subject the far field takes no colour: a block there counts as changed by its
    matte and CoC only. One row below SOLID_MATTE (a row the means skip) brings its colour back."""
    a = talking_frame(0, clip="4.mp4", size=(160, 96))
    b = talking_frame(45, clip="4.mp4", size=(160, 96))
    h, w = a.shape[:2]
    hc, wc = h // CELL, w // CELL
    disparity = np.full((h, w), 0.5, np.float32)  # in focus: no near blocks
    matte = np.ones((h, w), np.float32)
    matte[CELL + 1, :w // 2] = 0.9  # not a PLANE_STEP row: the block means do not see it
    ref = np.zeros((hc, wc, STATS), np.float32)
    out = np.zeros((hc, wc), np.uint8)
    tiles.changed_blocks(a, disparity, matte, PARAMS, TOL, True, ref, out)
    before = ref.copy()
    tiles.changed_blocks(b, disparity, matte, PARAMS, TOL, False, ref, out)
    want_b, near_b, solid_b = ref_stats(b, disparity, matte)
    coloured = (np.abs(want_b - before)[..., :3] > TOL[:3]).any(axis=2)
    assert not near_b.any() and coloured[1, :wc // 2].any() and coloured[~solid_b].sum() < coloured.sum()
    np.testing.assert_array_equal(solid_b[1, :wc // 2], False)
    np.testing.assert_array_equal(out.astype(bool), coloured & ~solid_b)
    # a solid block keeps the colour it was last rendered with as its reference
    np.testing.assert_allclose(ref[solid_b], before[solid_b], atol=1e-4)


def test_solid_subject_coc_counts_only_beyond_its_own_tolerance():
    """Out of the near field a solid block's CoC moves its sharp alpha by at most 1 - SOLID_MATTE:
    a step of half a pixel (beyond the CoC tolerance of 0.25) changes no solid block, while the
    same step in soft matte does; a step past SOLID_COC_TOL changes both."""
    frame = talking_frame(0, clip="4.mp4", size=(160, 96))
    h, w = frame.shape[:2]
    hc, wc = h // CELL, w // CELL
    focus, aperture = float(PARAMS[0]), float(PARAMS[1])
    matte = np.ones((h, w), np.float32)
    matte[:, w // 2:] = 0.5  # the right half: soft matte
    # behind the focus plane (CoC +2 px): nothing near
    disparity = np.full((h, w), focus - 2.0 / aperture, np.float32)
    ref = np.zeros((hc, wc, STATS), np.float32)
    out = np.zeros((hc, wc), np.uint8)
    tiles.changed_blocks(frame, disparity, matte, PARAMS, TOL, True, ref, out)
    solid = np.zeros((hc, wc), bool)
    solid[:, :wc // 2] = True
    for step, want in ((0.5, ~solid), (tiles.SOLID_COC_TOL + 0.5, np.ones_like(solid))):
        moved = disparity - np.float32(step / aperture)
        tiles.changed_blocks(frame, moved, matte, PARAMS, TOL, False, ref, out)
        np.testing.assert_array_equal(out.astype(bool), want, err_msg=f"CoC step {step} px")
        stats, near, solid_now = ref_stats(frame, moved, matte)
        assert not near.any()
        np.testing.assert_array_equal(solid_now, solid)
        disparity = moved


def test_subject_in_front_of_the_focus_plane_within_its_tolerance_is_not_near():
    """The split counts a subject pixel as near only beyond the subject tolerance (CoC plus
    matte * tolerance below -0.5): within it the block is not re-rendered on every frame."""
    frame = talking_frame(0, clip="4.mp4", size=(64, 48))
    h, w = frame.shape[:2]
    focus, aperture, lim, near_below, subject_tol = (float(v) for v in PARAMS)
    disparity = np.full((h, w), focus + 2.0 / aperture, np.float32)  # CoC -2 px everywhere
    ref = np.zeros((h // CELL, w // CELL, STATS), np.float32)
    out = np.zeros_like(ref[..., 0], np.uint8)
    for m, near in ((1.0, False), (0.7, False), (0.5, True), (0.0, True)):  # near where 2 - 3 m > 0.25
        matte = np.full((h, w), m, np.float32)
        tiles.changed_blocks(frame, disparity, matte, PARAMS, TOL, True, ref, out)
        tiles.changed_blocks(frame, disparity, matte, PARAMS, TOL, False, ref, out)
        assert out.all() == near and out.any() == near, (m, near)
