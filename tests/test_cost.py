"""Work skipped on a still scene must not cost quality, and nothing may go stale.

The optimised pipeline and the same pipeline with every optimisation off
(:func:`realtime.pipeline.all_optimisations_off`) run in lockstep on the same frames: a real
talking-head frame held still (with camera noise), then a change (a background object moves,
a light is switched on, the camera pans, a person enters). The optimised output must match on
every frame, and the change frame itself must have run the depth model.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import talking_frame
from realtime.core.config import load_preset
from realtime.devtools.livebench import iou, psnr
from realtime.devtools.testdata import noisy
from realtime.pipeline import Pipeline, all_optimisations_off

SIZE = (640, 360)
STILL = 14  # runs at 0, 4, 8, 12 on a still scene: the change frame is not a scheduled run


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


def _lockstep(frames: list[np.ndarray]) -> tuple[list[float], list[float], list[bool]]:
    preset = load_preset("portrait")
    ps, ious, ran = [], [], []
    with Pipeline(preset) as on, Pipeline(all_optimisations_off(preset)) as off:
        for i, f in enumerate(frames):
            runs = on.depth.model_runs
            a = on.process(f, 33 * i)
            b = off.process(f, 33 * i)
            ran.append(on.depth.model_runs > runs)
            ps.append(psnr(a.frame, b.frame))
            ious.append(iou(a.matte, b.matte))
    return ps, ious, ran


def test_still_scene_skips_depth_runs_at_full_quality():
    base = talking_frame(0, clip="4.mp4", size=SIZE)
    frames = [noisy(base, 2.0, i) for i in range(24)]
    ps, ious, ran = _lockstep(frames)
    assert sum(ran) <= len(frames) // 2, ran      # the model is skipped on most still frames
    assert ran[0]                                 # never on the first
    assert min(ps) >= 38.0 and np.mean(ps) >= 45.0, ps
    assert min(ious) >= 0.99, ious


@pytest.mark.parametrize("change", ["object", "light", "pan", "person"])
def test_a_change_reaches_the_output_on_its_frame(change):
    base = talking_frame(0, clip="4.mp4", size=SIZE)
    frames = [noisy(base, 2.0, i) for i in range(STILL)]
    frames += [noisy(_changed(base, change, k), 2.0, STILL + k) for k in range(1, 5)]
    ps, ious, ran = _lockstep(frames)
    assert not all(ran[1:STILL]), ran             # it was skipping before the change...
    assert ran[STILL], ran                        # ...and the change ran the model on its own frame
    assert min(ps[STILL:]) >= 38.0, ps
    assert min(ious) >= 0.99, ious
