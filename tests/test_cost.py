"""Work skipped on a still scene must not cost quality, and nothing may go stale.

The optimised pipeline and the same pipeline with every optimisation off
(:func:`realtime.pipeline.all_optimisations_off`) run in lockstep on the same frames: a real
talking-head frame held still (with camera noise), then a change (a background object moves,
a light is switched on, the camera pans, a person enters). The optimised output must match on
every frame, and the change frame itself must have run the depth model and rendered the changed
part of the frame again (the render reuses the tiles of a still background:
``realtime/stages/render_reuse.py``).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from conftest import talking_frame
from realtime.core.config import RenderConfig, load_preset
from realtime.devtools.livebench import iou, psnr
from realtime.devtools.testdata import noisy
from realtime.pipeline import Pipeline, all_optimisations_off
from realtime.stages.render import LAYER_SCALES, Renderer, far_reach
from shaders.tiles import CELL, SOLID_MATTE

SIZE = (640, 360)
STILL = 14  # the model runs at 0 on a still scene (then every still_interval): the change frame is not a scheduled run


def _changed(base: np.ndarray, change: str, k: int) -> np.ndarray:
    """``base`` after ``change``, ``k`` frames into it (k >= 1)."""
    f = base.copy()
    h, w = f.shape[:2]
    if change == "object":  # a textured box moving across the background, top left
        x = 10 + 12 * k
        box = talking_frame(40, clip="2.mp4", size=(60, 50))
        f[10:60, x:x + 60] = box
    elif change == "light":
        f = np.clip(f.astype(np.int16) * 13 // 10 + 25, 0, 255).astype(np.uint8)
    elif change == "pan":
        f = np.ascontiguousarray(np.roll(f, 16 * k, axis=1))
    elif change == "person":  # someone steps in at the left edge
        other = talking_frame(10, clip="3.mp4", size=(w // 2, h))
        cw = min(w // 4, 40 * k)
        f[:, :cw] = other[:, w // 2 - cw:w // 2]
    return f


# where each change happens (rows, columns of SIZE), for the PSNR of that part alone
CHANGED = {"object": (slice(0, 80), slice(0, 140)), "light": (slice(None), slice(None)),
           "pan": (slice(None), slice(None)), "person": (slice(None), slice(0, 160))}


def _lockstep(frames: list[np.ndarray], region: tuple[slice, slice] | None = None):
    """PSNR and matte IoU of every frame against the all-off run, whether the depth model ran,
    the share of the frame whose far field was gathered again, the PSNR within ``region`` and
    the share of the frame's blocks that are solid subject (whose colour the reuse ignores)."""
    preset = load_preset("portrait")
    ps, ious, ran, gathered, local, solid = [], [], [], [], [], []
    with Pipeline(preset) as on, Pipeline(all_optimisations_off(preset)) as off:
        assert off.renderer.lens.reuse is None and on.renderer.lens.reuse is not None
        for i, f in enumerate(frames):
            runs = on.depth.model_runs
            a = on.process(f, 33 * i)
            b = off.process(f, 33 * i)
            ran.append(on.depth.model_runs > runs)
            ps.append(psnr(a.frame, b.frame))
            ious.append(iou(a.matte, b.matte))
            gathered.append(on.renderer.lens.reuse.gathered_share)
            solid.append(_solid_share(a.matte))
            if region is not None:
                local.append(psnr(a.frame[region], b.frame[region]))
    return ps, ious, ran, gathered, local, solid


def _solid_share(matte: np.ndarray) -> float:
    h, w = matte.shape
    hc, wc = h // CELL, w // CELL
    least = matte[:hc * CELL, :wc * CELL].reshape(hc, CELL, wc, CELL).min(axis=(1, 3))
    return float(np.mean(least >= SOLID_MATTE))


@pytest.mark.parametrize("size", [SIZE, (1280, 720), (1920, 1080)])  # layers at full, half, a third
def test_still_scene_skips_work_at_full_quality(size):
    base = talking_frame(0, clip="4.mp4", size=size)
    frames = [noisy(base, 2.0, i) for i in range(24)]
    ps, ious, ran, gathered, _, _ = _lockstep(frames)
    assert sum(ran) <= len(frames) // 2, ran      # the model is skipped on most still frames
    assert gathered[0] == 1.0                     # the first frame is rendered whole...
    assert np.median(gathered[1:]) < 0.6, gathered  # ...the background then mostly reused
    assert ran[0]                                 # never on the first
    assert min(ps) >= 38.0 and np.mean(ps) >= 45.0, ps
    assert min(ious) >= 0.99, ious


@pytest.mark.parametrize("change", ["object", "light", "pan", "person"])
def test_a_change_reaches_the_output_on_its_frame(change):
    base = talking_frame(0, clip="4.mp4", size=SIZE)
    frames = [noisy(base, 2.0, i) for i in range(STILL)]
    frames += [noisy(_changed(base, change, k), 2.0, STILL + k) for k in range(1, 5)]
    ps, ious, ran, gathered, local, solid = _lockstep(frames, CHANGED[change])
    assert not all(ran[1:STILL]), ran             # it was skipping before the change...
    assert ran[STILL], ran                        # ...and the change ran the model on its own frame
    assert min(gathered[1:STILL]) < 1.0, gathered  # the render reused tiles before the change
    assert min(ps[STILL:]) >= 38.0, ps
    assert min(local[STILL:]) >= 38.0, local      # where it changed too, from its first frame
    assert min(ious) >= 0.99, ious
    if change in ("light", "pan"):  # the whole frame moved: all of it but solid subject
        assert 0.2 < solid[STILL] < 0.7, solid
        assert gathered[STILL] >= 0.9 * (1.0 - solid[STILL]), (gathered, solid)


@pytest.mark.parametrize("change", ["object", "person"])
def test_a_change_reaches_the_output_on_its_frame_at_1080p(change):
    """Layers of a third (1080p): a tile is TILE_COLS x TILE_ROWS layer pixels, 48 x 24 frame pixels,
    and a layer pixel may straddle two 8x8 blocks; a change still shows on its frame."""
    base = talking_frame(0, clip="4.mp4", size=(1920, 1080))
    frames = [noisy(base, 2.0, i) for i in range(STILL)]
    frames += [noisy(_changed(base, change, k), 2.0, STILL + k) for k in range(1, 4)]
    ps, ious, ran, gathered, local, _ = _lockstep(frames, CHANGED[change])
    assert min(gathered[1:STILL]) < 1.0, gathered
    assert min(ps) >= 38.0 and min(local[STILL:]) >= 38.0, (ps, local)
    assert min(ious) >= 0.99, ious


def test_reuse_tiles_are_whole_blocks_at_every_layer_scale():
    """The plan maps 8x8 blocks to split tiles by whole multiples: a tile must span whole blocks
    at every layer scale, or a changed block would mark the wrong tile."""
    from realtime.stages.render_reuse import TILE_ROWS
    from shaders.bokeh import SEG, TILE_COLS

    assert SEG % TILE_COLS == 0  # a run of whole tiles fills a segment
    for s in LAYER_SCALES:
        assert TILE_ROWS * s % CELL == 0 and TILE_COLS * s % CELL == 0, s


@pytest.mark.parametrize("s", [1, 2, 3])
def test_reuse_gathers_every_layer_pixel_within_the_blur_reach_of_a_change(s):
    """The far field of a layer pixel reads every layer pixel within kmax + 2 of it: each one
    that overlaps a changed 8x8 block must be gathered again, at every layer scale (at s = 3 a
    layer pixel can straddle two blocks)."""
    from realtime.stages.render_reuse import TileReuse

    rng = np.random.default_rng(20 + s)
    h, w, kmax = 181, 263, 8
    hl, wl = -(-h // s), -(-w // s)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    disp = rng.random((h, w), dtype=np.float32)
    matte = np.zeros((h, w), np.float32)
    params = (np.float32(0.5), np.float32(0.0), np.float32(24.0), np.float32(3.0))  # no CoC: nothing in front
    reach = far_reach(24.0, s, kmax)
    reuse = TileReuse(4.0, 1000)
    assert reuse.plan(frame, disp, matte, params, (hl, wl), s, reach, ("key",)) is None  # the first is whole
    for trial in range(6):
        hc, wc = -(-h // CELL), -(-w // CELL)
        picks = [(int(rng.integers(0, hc)), int(rng.integers(0, wc))) for _ in range(2)] + [(hc - 1, wc - 1)]
        for cy, cx in picks:
            frame[cy * CELL:(cy + 1) * CELL, cx * CELL:(cx + 1) * CELL] ^= 0x80
        plan = reuse.plan(frame, disp, matte, params, (hl, wl), s, reach, ("key",))
        assert plan is not None and plan.gather.shape == (hl, wl)
        changed = np.kron(reuse._cells, np.ones((CELL, CELL), np.uint8))[:h, :w]
        assert all(changed[cy * CELL, cx * CELL] for cy, cx in picks)
        full = np.zeros((hl * s, wl * s), np.uint8)
        full[:h, :w] = changed
        touched = full.reshape(hl, s, wl, s).max(axis=(1, 3))
        window = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
        needed = cv2.dilate(touched, window, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        missing = (needed > 0) & (plan.gather == 0)
        assert not missing.any(), (trial, np.argwhere(missing)[:5])
        assert plan.gather.mean() < 0.9  # and not everything


@pytest.mark.parametrize("size, lim", [((320, 180), 12.0), ((1280, 720), 24.0), ((1920, 1080), 36.0)])
def test_far_reach_bounds_every_gather_radius(size, lim, monkeypatch):
    """The reuse regathers the band ``far_reach`` wide around a change: no far-field pixel may
    read further, whatever the frame, matte and CoC (within the limit), the near field included,
    at each layer scale."""
    from shaders import gather

    import realtime.stages.render as render

    w, h = size
    rng = np.random.default_rng(w)
    frame = talking_frame(7, clip="3.mp4", size=size)
    # CoC from -lim to lim in blobs (the far fill-in, the near field) and a person-shaped matte
    noise = cv2.resize(rng.random((9, 16), dtype=np.float32), size, interpolation=cv2.INTER_CUBIC)
    disparity = np.clip(noise, 0.0, 1.0).astype(np.float32)
    matte = np.zeros((h, w), np.float32)
    matte[h // 3:, w // 3:2 * w // 3] = 1.0
    matte = cv2.GaussianBlur(matte, (0, 0), 3.0)
    seen = []
    real = gather.gather_far

    def spy(p, rw, fw, box_rw, box_fw, shrink, rmax, rad_near, near_on, need, *rest):
        rad = np.zeros(rw.shape[1], np.float32)
        top = 0.0
        for y in range(rw.shape[0]):
            gather.far_radius_row(rw, fw, box_rw, box_fw, shrink, rmax, rad_near, near_on, y, rad)
            top = max(top, float(rad.max()))
        seen.append((top, near_on))
        return real(p, rw, fw, box_rw, box_fw, shrink, rmax, rad_near, near_on, need, *rest)

    monkeypatch.setattr(render.gather, "gather_far", spy)
    lens = render.Lens(RenderConfig())
    coc = np.empty((h, w), np.float32)
    out = lens.render_disparity(frame, disparity, 0.5, 2.0 * lim, lim, matte, None, coc)
    assert np.abs(coc).max() > 0.95 * lim and out.shape == frame.shape
    s = render.layer_scale(h, w, lim)
    assert s == {320: 1, 1280: 2, 1920: 3}[w]
    kmax = 8 * ((int(np.ceil(lim / s)) + 1 + 7) // 8)
    (top, near_on), = seen
    assert near_on and top > lim / s - render.SHRINK[s] - 1.0  # a blur that reaches near its limit
    assert int(np.floor(top)) + 2 <= render.far_reach(lim, s, kmax) < kmax + 2


def test_render_reuse_with_something_in_front_of_the_focus_plane():
    """A still room, the subject in focus and an object in front of it (the near field, spread
    over what is behind it), which then moves: the renderer reusing tiles matches one rendering
    every tile, on every frame."""
    base = talking_frame(0, clip="4.mp4", size=(1280, 720))
    h, w = base.shape[:2]
    matte = np.zeros((h, w), np.float32)
    matte[200:720, 500:800] = 1.0
    cfg = load_preset("portrait").render
    with Renderer(cfg) as on, Renderer(dataclasses.replace(cfg, reuse_tiles=False)) as off:
        for i in range(12):
            disp = np.full((h, w), 0.3, np.float32)
            disp[200:720, 500:800] = 0.6  # the subject, in focus
            x = 100 + 24 * max(0, i - 8)  # the near object, still, then moving from frame 9
            disp[100:300, x:x + 200] = 0.8
            f = noisy(base, 2.0, i)
            a, _ = on.process(f, i + 1, matte, disp, 0.6)
            b, _ = off.process(f, i + 1, matte, disp, 0.6)
            assert psnr(a, b) >= 38.0, (i, psnr(a, b))
            if 0 < i < 9:
                assert on.lens.reuse.gathered_share < 0.7, (i, on.lens.reuse.gathered_share)


def test_the_status_line_computes_its_text_only_when_it_shows_it():
    """A live loop updates the status every frame; its percentiles and medians are computed only
    when the line is due (a few times a second at most), never for a quiet line."""
    import io

    from realtime.app.status import StatusLine

    calls = []

    def text() -> str:
        calls.append(1)
        return "30.0 fps"

    line = StatusLine(io.StringIO())
    for _ in range(100):
        line.update(text)
    assert len(calls) == 1 and line.stream.getvalue() == "30.0 fps\n"
    quiet = StatusLine(io.StringIO(), quiet=True)
    quiet.update(text)
    assert len(calls) == 1
