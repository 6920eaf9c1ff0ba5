"""``depth.fade_behind``: an unsure matte far from the person's core fades where the depth model
puts it behind the person, and nowhere else (realtime/stages/depth/behind.py)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import load_sequence
from realtime import Pipeline, load_preset
from realtime.core.config import DepthFit
from realtime.devtools.metrics import background_plate, iou
from realtime.stages.depth.behind import CORE, NEAR, BehindFade
from realtime.stages.depth.fitting import Grid, compute_fit

W, H = 1280, 720


def _scene():
    """A person's core, a soft band of hair beside it, an unsure backdrop above it reaching far
    from it, and a second, unsure person far to the right at the first one's depth."""
    g = Grid(compute_fit(H, W, DepthFit.LETTERBOX))
    fit = g.fit
    matte = np.zeros((H, W), np.float32)
    matte[300:720, 200:500] = 1.0   # the core
    matte[300:720, 500:520] = 0.5   # hair, 20 px from the core: within NEAR
    matte[100:300, 200:500] = 0.8   # a backdrop above the head, up to 200 px from the core
    matte[400:700, 900:1200] = 0.7  # someone the model is unsure of
    sy, sx = fit.nh / H, fit.nw / W
    depth = np.full((fit.nh, fit.nw), 0.3, np.float32)  # the background
    depth[:int(300 * sy), int(150 * sx):int(550 * sx)] = 0.1  # the backdrop: well behind its median
    depth[int(300 * sy):, int(190 * sx):int(530 * sx)] = 1.0  # the person and their hair
    depth[int(390 * sy):int(710 * sy), int(890 * sx):int(1210 * sx)] = 1.0  # the second person
    seen = np.zeros((fit.nh, fit.nw), np.float32)
    seen[int(300 * sy):, int(200 * sx):int(500 * sx)] = 1.0  # the matte of the frame the model saw
    return g, matte, depth, seen


def test_a_backdrop_behind_the_person_fades_and_nothing_else_moves():
    g, matte, depth, seen = _scene()
    fade = BehindFade(g)
    fade.update(depth, seen)
    assert fade.ready
    out = fade.apply(matte)
    assert out is not matte
    np.testing.assert_array_equal(out[310:720, 210:520], matte[310:720, 210:520])  # core and hair
    np.testing.assert_allclose(out[450:650, 950:1150], 0.7, atol=1e-6)  # the second person stays
    assert np.all(out <= matte) and out.min() >= 0.0                    # only ever fades
    near = NEAR * np.hypot(W, H)  # in frame pixels (the grid has the frame's shape)
    col = out[100:300, 350]
    assert np.all(col[300 - 100 - int(0.8 * near):] == pytest.approx(0.8))  # close to the core: kept
    assert np.all(col[:300 - 100 - int(2.3 * near)] < 0.02)                # twice NEAR and beyond: gone
    assert np.all(np.diff(col) >= -1e-6)                                   # a ramp, not a cut
    # at the background's median depth a backdrop only partly fades (1 - 0.6 far from the core)
    depth[:int(300 * (g.fit.nh / H)), int(150 * (g.fit.nw / W)):int(550 * (g.fit.nw / W))] = 0.3
    fade.update(depth, seen)
    assert fade.apply(matte)[110, 350] == pytest.approx(0.8 * 0.4, abs=0.01)


def test_nothing_to_fade_hands_the_matte_back_untouched():
    g, matte, depth, seen = _scene()
    fade = BehindFade(g)
    fade.update(depth, seen)
    clean = np.where(matte >= CORE, matte, 0.0).astype(np.float32)
    assert fade.apply(clean) is clean                     # no unsure matte far from the core
    nocore = np.full((H, W), 0.7, np.float32)
    assert fade.apply(nocore) is nocore                   # no core: no distance to measure
    fade.update(np.full_like(depth, 0.5), seen)           # the depth sees nobody in front
    assert not fade.ready and fade.apply(matte) is matte
    fade.update(depth, np.zeros_like(seen))               # the model's frame had nobody
    assert not fade.ready and fade.apply(matte) is matte


def test_the_pipeline_carries_the_faded_matte_on_real_frames():
    """dance-twirl (DAVIS, hand-drawn masks): people in the crowd behind the dancer sit at partial
    matte and the depth model puts most of them behind her. With the fade (the preset's default)
    that plate shrinks and the dancer's outline does not get worse; the result's matte is the
    faded one. (On every third frame, the mean holds; frame 40 loses 0.07 IoU, where the model is sure only of her legs
    and unsure of her upper body, which the depth model puts nearly as far as the crowd.)"""
    frames, masks = load_sequence("dance-twirl")
    preset = load_preset("portrait")
    assert preset.depth.fade_behind
    res = {}
    for name, p in (("on", preset), ("off", preset.replace({"depth": {"fade_behind": False}}))):
        got = []
        with Pipeline(p) as pipe:
            for i in range(0, len(frames), 3):
                pipe.reset()
                r = pipe.process(frames[i], 0)
                got.append((background_plate(r.matte, masks[i]), iou(r.matte, masks[i])))
                if name == "off":
                    assert pipe.depth.matte is not None
        res[name] = np.array(got)
    assert res["on"][:, 0].sum() < 0.98 * res["off"][:, 0].sum(), res
    assert res["on"][:, 1].mean() >= res["off"][:, 1].mean() - 0.002, res
