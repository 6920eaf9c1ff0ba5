"""The lens renderer's promises, checked as properties on synthetic scenes and a real frame.

All three resolution paths are covered: small frames (and small blurs) render the layers at full
resolution, 720p frames with a large blur at half resolution, 1080p frames at a third.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from realtime.core.config import RenderConfig
from realtime.core.errors import ConfigError, FrameShapeError, FrameTypeError
from realtime.stages import render as render_module
from realtime.stages.render import Renderer, coc_from_disparity, layer_scale, render_bokeh
from shaders.color import linear_to_srgb, srgb_to_linear

SMALL = (97, 131)     # full-resolution layers
HD = (720, 1280)      # half-resolution layers at large blur
FHD = (1080, 1920)    # layers of a third (any blur at 1080p)
RADII = (4, 7, 12, 17, 24)


def lin(img: np.ndarray) -> np.ndarray:
    return srgb_to_linear(img / 255.0)


def luminance(img: np.ndarray) -> np.ndarray:
    """Linear-light luminance of a BGR image."""
    v = lin(img)
    return 0.0722 * v[..., 0] + 0.7152 * v[..., 1] + 0.2126 * v[..., 2]


def line_scene(shape, r, col, vertical=True):
    h, w = shape
    f = np.zeros((h, w, 3), np.uint8)
    if vertical:
        f[:, col - 1:col + 2] = 255
    else:
        f[col - 1:col + 2, :] = 255
    return f, np.full((h, w), r, np.float32)


def lit_extent(out, col, vertical=True):
    """How far (px) the lit part (any channel >= 1) reaches beyond each side of the 3-px line."""
    h, w = out.shape[:2]
    prof = out[h // 2].max(-1) if vertical else out[:, w // 2].max(-1)
    lit = np.nonzero(prof >= 1)[0]
    return (col - 1) - lit[0], lit[-1] - (col + 1)


# -- identity, uniformity, energy ---------------------------------------------------------------

@pytest.mark.parametrize("shape", [SMALL, HD, FHD])
def test_zero_coc_returns_the_input(shape):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    coc = np.zeros(shape, np.float32)
    out = render_bokeh(frame, coc)
    assert np.abs(out.astype(int) - frame).max() <= 1
    matte = rng.random(shape, dtype=np.float32)
    out = render_bokeh(frame, coc, matte)
    assert np.abs(out.astype(int) - frame).max() <= 1


@pytest.mark.parametrize("shape", [SMALL, HD, FHD])
@pytest.mark.parametrize("colour", [(0, 0, 0), (30, 140, 220), (255, 255, 255), (250, 10, 128)])
def test_uniform_field_stays_uniform(shape, colour):
    rng = np.random.default_rng(2)
    h, w = shape
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = colour
    yy, xx = np.mgrid[0:h, 0:w]
    maps = [np.full(shape, 9.5, np.float32), (xx / w * 30 - 6).astype(np.float32),
            rng.uniform(-12, 24, shape).astype(np.float32)]
    for coc in maps:
        for matte in (None, rng.random(shape, dtype=np.float32)):
            out = render_bokeh(frame, coc, matte)
            assert np.abs(out.astype(int) - frame).max() <= 1


@pytest.mark.parametrize("shape", [SMALL, HD, FHD])
@pytest.mark.parametrize("r", [5.0, 16.0])
def test_mid_tone_texture_keeps_its_mean_in_linear_light(shape, r):
    rng = np.random.default_rng(3)
    frame = rng.integers(40, 190, (*shape, 3), dtype=np.uint8)  # below the highlight threshold
    out = render_bokeh(frame, np.full(shape, r, np.float32))
    assert out.std() < 0.6 * frame.std()  # it did blur
    m_in, m_out = lin(frame).mean((0, 1)), lin(out).mean((0, 1))
    assert np.all(np.abs(m_out / m_in - 1) < 0.01)


def test_highlights_become_visible_discs():
    """A small clipped light on a mid-grey wall stays a bright disc, brighter than without boost."""
    h, w = SMALL
    frame = np.full((h, w, 3), 60, np.uint8)
    frame[h // 2 - 1:h // 2 + 2, w // 2 - 1:w // 2 + 2] = 255
    coc = np.full((h, w), 10.0, np.float32)
    boosted = render_bokeh(frame, coc)
    plain = render_bokeh(frame, coc, config=RenderConfig(highlight_boost=1.0))
    c = boosted[h // 2, w // 2].astype(int)
    assert c.min() > plain[h // 2, w // 2].astype(int).max() + 5
    # the disc is flat: the same level half-way to its rim as at its centre, and wall outside
    assert np.abs(boosted[h // 2, w // 2 + 5].astype(int) - c).max() <= 2
    assert np.abs(boosted[h // 2, w // 2 + 14].astype(int) - 60).max() <= 1


# -- point spread: a flat disk, not a Gaussian ------------------------------------------------------

@pytest.mark.parametrize("shape", [SMALL, HD])
@pytest.mark.parametrize("r", RADII)
def test_line_lights_exactly_r_on_each_side(shape, r):
    if shape == SMALL and 2 * r + 8 > shape[0]:
        shape = (2 * r + 31, 2 * r + 41)
    for vertical in (True, False):
        for col in ((shape[0] // 2, shape[0] // 2 + 1) if not vertical else (shape[1] // 2, shape[1] // 2 + 1)):
            frame, coc = line_scene(shape, r, col, vertical)
            left, right = lit_extent(render_bokeh(frame, coc), col, vertical)
            assert abs(left - r) <= 1.5 and abs(right - r) <= 1.5, (vertical, col, left, right)


def banded_line_reach(shape, radii, vertical, odd, band=64):
    """Reach beyond each side of one 3-px white line per band of uniform CoC (one frame holds
    several bands, each wider than twice the largest reach): the same numbers as one frame per
    radius, many times faster."""
    h, w = shape
    per = (w if vertical else h) // band
    reach = []
    for i0 in range(0, len(radii), per):
        chunk = radii[i0:i0 + per]
        frame = np.zeros((h, w, 3), np.uint8)
        coc = np.empty((h, w), np.float32)
        for j, r in enumerate(chunk):
            c = j * band + band // 2 + odd
            sl = slice(j * band, (j + 1) * band)
            if vertical:
                frame[:, c - 1:c + 2] = 255
                coc[:, sl] = r
            else:
                frame[c - 1:c + 2, :] = 255
                coc[sl, :] = r
        if vertical:
            coc[:, len(chunk) * band:] = chunk[-1]
        else:
            coc[len(chunk) * band:, :] = chunk[-1]
        out = render_bokeh(frame, coc)
        prof = out[h // 2].max(-1) if vertical else out[:, w // 2].max(-1)
        for j in range(len(chunk)):
            c = j * band + band // 2 + odd
            lit = np.nonzero(prof[j * band:(j + 1) * band] >= 1)[0] + j * band
            reach.append(((c - 1) - lit[0], lit[-1] - (c + 1)))
    return np.array(reach, float)


def test_line_reach_on_a_fine_grid_of_fractional_radii_at_720p():
    """Half-resolution layers, every radius 4..24 px in 0.05-px steps (just past and just before
    each layer-radius step included): the lit part reaches r +/- 1.5 px on each side."""
    radii = np.round(np.arange(4.0, 24.0001, 0.05), 2).astype(np.float32)
    for vertical in (True, False):
        for odd in (0, 1):
            err = banded_line_reach(HD, list(radii), vertical, odd) - radii[:, None]
            worst = np.abs(err).max(1)
            assert worst.max() <= 1.5, [(float(radii[i]), tuple(err[i])) for i in np.nonzero(worst > 1.5)[0][:5]]
    # the bands measure what a frame of one uniform CoC gives
    for r in (4.55, 13.3):
        frame, coc = line_scene(HD, r, HD[1] // 2 + 1)
        left, right = lit_extent(render_bokeh(frame, coc), HD[1] // 2 + 1)
        assert (left, right) == tuple(banded_line_reach(HD, [np.float32(r)], True, 1)[0])


def test_line_reach_on_a_fine_grid_of_fractional_radii_at_1080p():
    """Layers of a third, every radius 6..36 px in 0.05-px steps, the line at each of the three
    positions over a layer pixel: the lit part reaches r +/- 2.5 px on each side (the reach moves
    in steps of a layer pixel, 3 px, plus 2 px between the sides: docs/render.md)."""
    radii = np.round(np.arange(6.0, 36.0001, 0.05), 2).astype(np.float32)
    assert layer_scale(*FHD, float(radii.min())) == 3
    for vertical in (True, False):
        for odd in (0, 1, 2):
            err = banded_line_reach(FHD, list(radii), vertical, odd, band=96) - radii[:, None]
            worst = np.abs(err).max(1)
            assert worst.max() <= 2.5, [(float(radii[i]), tuple(err[i])) for i in np.nonzero(worst > 2.5)[0][:5]]


@pytest.mark.parametrize("r", [4, 12, 24])
def test_gaussian_of_similar_width_spreads_further(r):
    """What the line test tells apart: a Gaussian with the disk's spread (sigma = r / 2) lights
    the same line visibly further than r."""
    shape = (2 * r + 61, 6 * r + 41)
    col = shape[1] // 2
    frame, _ = line_scene(shape, r, col)
    g = cv2.GaussianBlur(lin(frame).astype(np.float32), (0, 0), r / 2.0)
    g8 = np.floor(linear_to_srgb(g) * 255 + 0.5).astype(np.uint8)
    left, right = lit_extent(g8, col)
    assert min(left, right) > r + 1.5  # it fails the disk's test


def point_spread(shape: tuple[int, int], r: float) -> tuple[np.ndarray, np.ndarray]:
    """One white pixel in the middle of a black frame blurred with a uniform CoC ``r``: the
    output's brightest channel and each pixel's distance from the point."""
    h, w = shape
    cy, cx = h // 2, w // 2
    frame = np.zeros((h, w, 3), np.uint8)
    frame[cy, cx] = 255
    out = render_bokeh(frame, np.full((h, w), r, np.float32)).max(-1)
    yy, xx = np.mgrid[0:h, 0:w]
    return out, np.hypot(yy - cy, xx - cx)


def assert_disk(shape: tuple[int, int], r: float, *, reach: float, lit_within: float, flat_within: float,
                flat: int) -> None:
    """The point spread of radius ``r`` on a ``shape`` frame is a disk: lit at most ``reach``
    beyond r, lit everywhere within r - ``lit_within``, flat to ``flat`` levels within r -
    ``flat_within``."""
    out, dist = point_spread(shape, r)
    lit = out >= 1
    assert dist[lit].max() <= r + reach
    assert np.all(lit[dist <= r - lit_within])
    core = out[dist <= r - flat_within].astype(int)
    assert core.max() - core.min() <= flat  # flat top, not a peak


@pytest.mark.parametrize("r", [4.0, 6.0, 9.5, 13.0, 20.0])
def test_point_becomes_a_flat_disk(r):
    assert_disk((2 * int(r) + 23,) * 2, r, reach=1.0, lit_within=1.0, flat_within=1.0, flat=1)


@pytest.mark.parametrize("r", [13.0, 20.0])
def test_point_at_720p_is_a_disk_with_a_soft_rim(r):
    """Half-resolution layers: the same disk, its rim softened and placed to a layer pixel."""
    assert_disk(HD, r, reach=2.0, lit_within=2.0, flat_within=5, flat=1)


@pytest.mark.parametrize("r", [13.0, 20.0, 36.0])
def test_point_at_1080p_is_a_disk_with_a_soft_rim(r):
    """Layers of a third: the same disk, its rim softer (over about two layer pixels)."""
    assert_disk(FHD, r, reach=2.5, lit_within=4.0, flat_within=7, flat=2)


def test_blades_give_a_polygon():
    h = w = 61
    frame = np.zeros((h, w, 3), np.uint8)
    frame[30, 30] = 255
    coc = np.full((h, w), 12.0, np.float32)
    disk = render_bokeh(frame, coc).max(-1) >= 1
    hexa = render_bokeh(frame, coc, config=RenderConfig(blades=6)).max(-1) >= 1
    assert hexa.sum() < disk.sum() and not np.any(hexa & ~disk)
    assert hexa[30 - 12, 30] and not hexa[30, 30 + 12]  # a vertex up, a flat side to the right


# -- occlusion ---------------------------------------------------------------------------------

def subject_scene(shape, r, matte_given=True):
    h, w = shape
    frame = np.full((h, w, 3), 12, np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    subject = (np.abs(yy - h / 2) < h / 4) & (np.abs(xx - w / 2) < w / 6)
    frame[subject] = 250
    coc = np.where(subject, 0.0, r).astype(np.float32)
    matte = subject.astype(np.float32) if matte_given else None
    return frame, coc, matte, subject


@pytest.mark.parametrize("shape", [(151, 181), HD, FHD])
@pytest.mark.parametrize("r", [8.0, 24.0])
@pytest.mark.parametrize("matte_given", [True, False])
def test_no_halo_around_a_sharp_subject(shape, r, matte_given):
    frame, coc, matte, subject = subject_scene(shape, r, matte_given)
    out = render_bokeh(frame, coc, matte)
    d = cv2.distanceTransform((~subject).astype(np.uint8), cv2.DIST_L2, 5)
    ring = (d >= 3) & (d <= 20)
    rise_lin = luminance(out)[ring] - luminance(frame)[ring]
    assert rise_lin.max() < 0.02 * luminance(frame)[subject].mean()
    rise_srgb = out[ring].astype(int) - frame[ring]
    assert rise_srgb.max() < 0.02 * 250
    assert np.array_equal(out[subject & (d == 0)], frame[subject])  # subject untouched


def test_soft_matte_edge_blends_subject_over_foreground_free_background():
    h, w = 121, 161
    frame = np.full((h, w, 3), 12, np.uint8)
    frame[:, : w // 2] = 240
    coc = np.full((h, w), 12.0, np.float32)
    xx = np.arange(w, dtype=np.float32)
    matte = np.broadcast_to(np.clip((w // 2 - xx) / 4 + 0.5, 0, 1), (h, w)).astype(np.float32)
    out = render_bokeh(frame, coc, matte)
    row = out[h // 2, :, 1].astype(int)
    assert row[w // 2 - 4] >= 235               # inside the subject: sharp
    assert np.all(row[w // 2 + 4:] <= 14)       # right of the edge: dark background, no glow
    assert np.all(np.diff(row[w // 2 - 4:w // 2 + 4]) <= 0)  # a monotone soft edge


@pytest.mark.parametrize("shape", [(121, 151), HD, FHD])
def test_near_field_spreads_beyond_its_silhouette(shape):
    h, w = shape
    rng = np.random.default_rng(4)
    frame = rng.integers(0, 100, (h, w, 3), dtype=np.uint8)  # sharp, textured background
    yy, xx = np.mgrid[0:h, 0:w]
    obj = np.hypot(yy - h / 2, xx - w / 2) < min(h, w) / 6
    frame[obj] = (40, 220, 240)
    r = 10.0
    coc = np.where(obj, -r, 0.0).astype(np.float32)
    out = render_bokeh(frame, coc)
    d = cv2.distanceTransform((~obj).astype(np.uint8), cv2.DIST_L2, 5)
    close = (d >= 1) & (d <= r / 2)
    far_away = d >= r + 3
    # the bright object now covers part of what was around it ...
    assert (out[close, 1].astype(int) - frame[close, 1]).mean() > 30
    # ... but not what is beyond its blur radius, which stays sharp
    assert np.array_equal(out[far_away], frame[far_away])


@pytest.mark.parametrize("shape", [(121, 151), HD, FHD])
def test_near_object_in_front_of_the_subject_has_a_soft_edge_on_both_sides(shape):
    """A hand close to the lens in front of the sharp subject: its blurred rim is see-through
    inside the silhouette too (the subject shows through), not a hard inner edge."""
    h, w = shape
    frame = np.full((h, w, 3), 40, np.uint8)  # the subject's dark jacket, in focus
    yy, xx = np.mgrid[0:h, 0:w]
    obj = np.hypot(yy - h / 2, xx - w / 2) < min(h, w) / 5
    frame[obj] = 200
    r = 10.0 * h / 121 if h < 720 else 16.0
    coc = np.where(obj, -r, 0.0).astype(np.float32)
    matte = np.ones((h, w), np.float32)
    out = render_bokeh(frame, coc, matte)[..., 1].astype(float)
    inside = cv2.distanceTransform(obj.astype(np.uint8), cv2.DIST_L2, 5)
    outside = cv2.distanceTransform((~obj).astype(np.uint8), cv2.DIST_L2, 5)
    just_in = (inside >= 1) & (inside <= 2)
    just_out = (outside >= 1) & (outside <= 2)
    assert 60 < out[just_in].mean() < 175   # mixed with the jacket behind, not the object's 200
    assert 50 < out[just_out].mean() < 160  # and the object's blur covers the jacket outside
    assert out[inside >= r + 3].min() >= 195  # the core is the object


def test_subject_in_front_of_the_focus_plane_blurs_but_slightly_nearer_stays_sharp():
    h, w = HD  # subject_near_px is 3 px at 720p
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    matte = np.ones((h, w), np.float32)
    slightly = np.full((h, w), -2.0, np.float32)  # within subject_near_px (3 px at 720p)
    assert np.abs(render_bokeh(frame, slightly, matte).astype(int) - frame).max() <= 1
    hand = np.full((h, w), -12.0, np.float32)
    assert render_bokeh(frame, hand, matte).std() < 0.7 * frame.std()


# -- smoothness, resolution paths ------------------------------------------------------------

def test_blur_grows_smoothly_with_the_coc():
    h, w = 81, 301
    rng = np.random.default_rng(6)
    frame = cv2.resize(rng.integers(0, 256, (h // 3, w // 3, 3), dtype=np.uint8), (w, h))
    coc = np.broadcast_to(np.linspace(1.0, 16.0, w, dtype=np.float32), (h, w)).copy()
    a = render_bokeh(frame, coc).astype(int)
    b = render_bokeh(frame, coc + np.float32(0.01)).astype(int)
    # a hundredth of a pixel more blur is a tiny change everywhere: no band where the radius
    # crosses a whole pixel (a jump there would show even for a tiny step)
    assert np.abs(a - b).max() <= 2
    assert np.abs(a - b).mean() < 0.1


def ramp_scene(shape: tuple[int, int], top: float, bottom: float) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random texture and a CoC growing from ``top`` px at the top row to ``bottom``."""
    h, w = shape
    rng = np.random.default_rng(7)
    frame = cv2.resize(rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8), (w, h))
    yy = np.mgrid[0:h, 0:w][0]
    return frame, (top + (bottom - top) * yy / h).astype(np.float32)


def test_half_and_full_resolution_layers_agree():
    frame, coc = ramp_scene(HD, 4, 24)
    half = render_bokeh(frame, coc).astype(int)
    full = render_bokeh(frame, coc, config=RenderConfig(half_res_far=False)).astype(int)
    # half-res disks are matched to the full-res ones by their reach (the line test), which
    # leaves them a little less blurred inside: a small, bounded difference
    d = np.abs(half - full)
    assert d.mean() < 4.0 and np.percentile(d, 99) <= 14
    assert np.abs(frame.astype(int) - full).mean() > 4 * d.mean()  # far smaller than the blur


def test_third_and_half_resolution_layers_agree_at_1080p(monkeypatch):
    frame, coc = ramp_scene(FHD, 6, 36)
    third = render_bokeh(frame, coc).astype(int)
    full = render_bokeh(frame, coc, config=RenderConfig(half_res_far=False)).astype(int)
    monkeypatch.setattr(render_module, "LAYER_SCALES", (1, 2))
    half = render_bokeh(frame, coc).astype(int)
    # matched by their reach, a third-resolution disk is a little less blurred inside than a
    # half-resolution one, which is a little less than a full-resolution one
    d = np.abs(third - full)
    assert d.mean() < 5.0 and np.percentile(d, 99) <= 16
    assert np.abs(frame.astype(int) - full).mean() > 4 * d.mean()
    d = np.abs(third - half)
    assert d.mean() < 1.5 and np.percentile(d, 99) <= 5


def test_layer_scale_follows_the_gather_work():
    """720p with the default blur keeps half-resolution layers, 1080p gets a third (the same
    layer-pixel radii and work as 720p), small frames and small blurs full resolution, and
    ``half_res_far = false`` full resolution everywhere."""
    r = Renderer(RenderConfig())
    assert layer_scale(720, 1280, r.scaled(720)[1]) == 2
    assert layer_scale(1080, 1920, r.scaled(1080)[1]) == 3
    assert layer_scale(1080, 1920, 3.0) == 3
    assert layer_scale(97, 131, 24.0) == 1 and layer_scale(480, 640, 6.0) == 1
    assert layer_scale(480, 640, 12.0) == 2
    assert layer_scale(1080, 1920, 36.0, reduced=False) == 1
    assert layer_scale(720, 1280, 24.0) == 2 and layer_scale(720, 1280, 24.5) == 3


# -- API ------------------------------------------------------------------------------------------

def test_coc_from_disparity_sign_scale_and_clamp():
    disp = np.array([[0.0, 0.5, 0.7, 1.0]], np.float32)
    coc = coc_from_disparity(disp, 0.7, 100.0, 24.0)
    np.testing.assert_allclose(coc, [[24.0, 20.0, 0.0, -24.0]], atol=1e-5)
    assert coc.dtype == np.float32
    out = np.empty_like(coc)
    assert coc_from_disparity(disp, 0.5, 10.0, 24.0, out=out) is out
    with pytest.raises(FrameTypeError):
        coc_from_disparity(disp.astype(np.float64), 0.5, 10.0, 24.0)
    with pytest.raises(FrameShapeError):
        coc_from_disparity(disp[0], 0.5, 10.0, 24.0)


@pytest.mark.parametrize("focus,aperture,max_coc", [
    (float("nan"), 10.0, 24.0), (float("inf"), 10.0, 24.0), (0.5, float("nan"), 24.0),
    (0.5, float("-inf"), 24.0), (0.5, 10.0, float("nan")), (0.5, 10.0, float("inf")), (0.5, 10.0, -1.0),
    ("near", 10.0, 24.0)])
def test_coc_from_disparity_rejects_non_finite_or_negative_lens_numbers(focus, aperture, max_coc):
    """A NaN CoC map would render silently as all in focus: bad numbers fail with a sentence."""
    disp = np.array([[0.0, 0.5, 1.0]], np.float32)
    with pytest.raises(ConfigError, match="must") as e:
        coc_from_disparity(disp, focus, aperture, max_coc)
    assert isinstance(e.value, ValueError)
    if isinstance(focus, float) and not np.isfinite(focus):  # the stage passes its focus through
        with Renderer(RenderConfig()) as r, pytest.raises(ConfigError):
            r.process(np.zeros((2, 3, 3), np.uint8), 1, np.zeros((2, 3), np.float32), np.vstack([disp, disp]), focus)
    # zero blur and a negative aperture (near and far swapped) are still numbers
    assert np.all(coc_from_disparity(disp, 0.5, 10.0, 0.0) == 0.0)
    assert coc_from_disparity(disp, 0.5, -10.0, 24.0)[0, 0] < 0


def test_render_bokeh_checks_inputs_and_writes_into_out():
    frame = np.zeros((20, 30, 3), np.uint8)
    coc = np.zeros((20, 30), np.float32)
    with pytest.raises(FrameTypeError):
        render_bokeh(frame.astype(np.float32), coc)
    with pytest.raises(FrameTypeError):
        render_bokeh(frame, coc.astype(np.float64))
    with pytest.raises(FrameShapeError):
        render_bokeh(frame, coc[:10])
    with pytest.raises(FrameShapeError):
        render_bokeh(frame, coc, np.zeros((20, 31), np.float32))
    with pytest.raises(FrameShapeError):
        render_bokeh(frame, coc, out=np.empty((20, 31, 3), np.uint8))
    out = np.empty_like(frame)
    assert render_bokeh(frame, coc, out=out) is out


@pytest.mark.parametrize("shape", [SMALL, HD, (721, 1279), FHD, (1081, 1918)])
def test_render_in_place_and_into_out_agree(shape):
    rng = np.random.default_rng(11)
    h, w = shape
    frame = cv2.resize(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), (w, h))
    coc = rng.uniform(-3, 20, (h, w)).astype(np.float32)
    matte = (rng.random((h, w)) < 0.3).astype(np.float32)
    expect = render_bokeh(frame, coc, matte)
    out = np.full_like(frame, 7)
    assert np.array_equal(render_bokeh(frame, coc, matte, out=out), expect)
    inplace = frame.copy()
    render_bokeh(inplace, coc, matte, out=inplace)
    assert np.array_equal(inplace, expect)


def test_nan_and_huge_coc_do_not_crash():
    rng = np.random.default_rng(8)
    frame = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    coc = rng.uniform(-20, 20, (33, 47)).astype(np.float32)
    coc[3, 4] = np.nan
    coc[5, 6] = np.inf
    coc[7, 8] = -1e9
    out = render_bokeh(frame, coc)
    assert out.shape == frame.shape and out.dtype == np.uint8


def test_renderer_stage_reuses_buffers_and_scales_with_height():
    cfg = RenderConfig()
    rng = np.random.default_rng(9)
    h, w = 90, 160
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    matte = np.zeros((h, w), np.float32)
    disp = rng.random((h, w), dtype=np.float32)
    with Renderer(cfg) as r:
        assert r.scaled(h) == pytest.approx((cfg.aperture_px * h / 720, cfg.max_coc_px * h / 720))
        out1, coc1 = r.process(frame, 1, matte, disp, 0.5)
        out2, coc2 = r.process(frame, 2, matte, disp, 0.5)
        assert out1 is out2 and coc1 is coc2  # buffers allocated once per frame size
        assert np.abs(coc1).max() <= cfg.max_coc_px * h / 720 + 1e-4
        with pytest.raises(FrameTypeError):
            r.process(frame, 3, matte.astype(np.float64), disp, 0.5)
    with Renderer(dataclasses.replace(cfg, effect=False)) as r:
        out, _ = r.process(frame, 1, matte, disp, 0.5)
        assert np.array_equal(out, frame)


def test_renderer_configure_takes_the_new_lens():
    """Live controls hand the stage a new [render] section: the next frame uses all of it."""
    rng = np.random.default_rng(12)
    h, w = 60, 80
    frame = np.zeros((h, w, 3), np.uint8)
    frame[30, 40] = 255
    matte = np.zeros((h, w), np.float32)
    disp = np.zeros((h, w), np.float32)
    base = RenderConfig()
    hexa = dataclasses.replace(base, blades=6, highlight_boost=5.0)
    with Renderer(base) as r:
        r.process(frame, 1, matte, disp, 1.0)
        r.configure(hexa)
        out, coc = r.process(frame, 2, matte, disp, 1.0)
        assert r.config == hexa
        expect = render_bokeh(frame, coc, matte, config=hexa)
        assert np.array_equal(out, expect)
        assert not np.array_equal(out, render_bokeh(frame, coc, matte))
        r.configure(dataclasses.replace(hexa, subject_near_px=0.0, aperture_px=20.0))
        out, coc = r.process(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), 3, matte, disp, 1.0)
        assert np.abs(coc).max() == pytest.approx(20.0 * h / 720)


def test_real_frame_keeps_the_subject_and_blurs_the_room(data_dir, model_dir):
    from conftest import talking_frame

    from realtime import Pipeline, load_preset

    frames = [talking_frame(i, "1.mp4", (640, 360)) for i in range(3)]
    # every tile rendered on every frame (reuse on a still camera: tests/test_cost.py)
    with Pipeline(load_preset("portrait").replace({"render": {"reuse_tiles": False}})) as pipe:
        for i, f in enumerate(frames):
            res = pipe.process(f, 1 + 40 * i)
        frame, matte, coc = frames[-1], np.array(res.matte), np.array(res.coc)
    out = render_bokeh(frame, coc, matte)
    sharp = (matte >= 0.999) & (np.abs(coc) <= 0.5)
    assert sharp.mean() > 0.02
    assert np.abs(out[sharp].astype(int) - frame[sharp]).max() <= 1
    assert np.array_equal(out, res.frame)  # the pipeline renders exactly this

    def detail(im):
        g = cv2.cvtColor(im, cv2.COLOR_BGR2GRAY).astype(np.float32)
        return np.abs(g - cv2.GaussianBlur(g, (0, 0), 2))

    textured_room = (matte <= 0.001) & (coc >= 8) & (detail(frame) > 3)
    assert textured_room.mean() > 0.005
    assert detail(out)[textured_room].mean() < 0.4 * detail(frame)[textured_room].mean()


def test_warmup_compiles_every_signature_the_renderer_uses():
    """No first-frame stall: after shaders.warmup() rendering compiles nothing new."""
    import shaders
    from shaders import bokeh, gather, tiles

    shaders.warmup()
    kernels = [bokeh.split_layers, gather.row_prefix, gather.gather_far, gather.gather_near,
               bokeh.finish, bokeh.abs_max_bits, tiles.changed_blocks]
    before = [len(k.signatures) for k in kernels]
    rng = np.random.default_rng(10)
    for h, w in (HD, FHD, (41, 57)):
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        coc = rng.uniform(-20, 24, (h, w)).astype(np.float32)
        render_bokeh(frame, coc, rng.random((h, w), dtype=np.float32))
        render_bokeh(frame, coc)
        with Renderer(RenderConfig()) as r:
            # planes as a caller makes them, and as the pipeline's stages hand them on (read-only);
            # the second frame plans which tiles to reuse
            for ts, ro in ((1, False), (2, True)):
                matte, disp = np.zeros((h, w), np.float32), rng.random((h, w), dtype=np.float32)
                matte.flags.writeable = disp.flags.writeable = not ro
                r.process(frame, ts, matte, disp, 0.5)
    assert [len(k.signatures) for k in kernels] == before
