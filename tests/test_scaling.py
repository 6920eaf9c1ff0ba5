"""Automatic quality scaling: steps down when behind, back up with headroom, no oscillation."""

from __future__ import annotations

from realtime.core.config import Preset
from realtime.app.scaling import LEVELS, QualityGovernor


def _gov():
    applied = []
    g = QualityGovernor(applied.append, Preset(), target_fps=30, window=10, cooldown_s=0.5, up_after_s=2.0)
    return g, applied


def _feed(g, ms, seconds, t0, fps=30):
    msgs = []
    n = int(seconds * fps)
    for i in range(n):
        m = g.observe(ms, now=t0 + i / fps)
        if m:
            msgs.append(m)
    return msgs, t0 + n / fps


def test_steps_down_when_behind_and_up_with_headroom():
    g, applied = _gov()
    msgs, t = _feed(g, 45.0, 1.0, 0.0)
    assert g.level >= 1 and msgs and "down" in msgs[0]
    assert applied[-1].depth.every_n_frames >= 2
    msgs, t = _feed(g, 45.0, 5.0, t)
    assert g.level == len(LEVELS) - 1  # kept stepping down while still behind
    assert applied[-1].render.max_coc_px < Preset().render.max_coc_px
    assert "quality -" in g.status()
    msgs, t = _feed(g, 10.0, 30.0, t)
    assert g.level == 0 and g.status() == ""
    assert applied[-1] == Preset()


def test_no_change_within_budget_or_in_the_dead_band():
    g, applied = _gov()
    _feed(g, 25.0, 5.0, 0.0)  # inside the budget: stay
    assert g.level == 0 and not applied
    g._set(1, 0.0, "test")
    _feed(g, 25.0, 10.0, 10.0)  # between the up and down margins: hold the level
    assert g.level == 1


def test_rebase_keeps_level_on_new_settings():
    g, applied = _gov()
    g._set(3, 0.0, "test")
    g.rebase(Preset().replace({"render": {"max_coc_px": 40.0}}))
    assert applied[-1].render.max_coc_px == 30.0 and applied[-1].depth.every_n_frames == 3
