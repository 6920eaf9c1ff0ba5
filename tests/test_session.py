"""The one owner of the live settings: every path that changes the look goes through the
Session and reaches the pipeline only at a frame boundary (keys, the preset file being edited,
the quality governor, a submit from another thread such as the control page's).

The real pipeline runs on small talking-head frames, driven by the real streaming loop.
"""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest

from conftest import FakeClock, talking_frame
from realtime.app import controls
from realtime.app.controls import Controller
from realtime.app.loop import run_stream
from realtime.app.scaling import LEVELS
from realtime.app.session import Session
from realtime.core.config import load_preset
from realtime.core.errors import ConfigError
from realtime.io.sinks import NullSink
from realtime.io.memory import ArraySource
from realtime.pipeline import Pipeline

SIZE = (320, 240)
_next = itertools.count(0, 100)  # frame numbers go on across runs: timestamps keep increasing



@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return [talking_frame(i, size=SIZE) for i in range(3)]


@pytest.fixture(scope="module")
def pipe():
    p = Pipeline(load_preset("portrait"))
    p.warmup(SIZE)  # kernels compiled before the loop's watchdog times a frame
    yield p
    p.close()


@pytest.fixture
def fresh(pipe):
    pipe.apply(load_preset("portrait"))
    pipe.focus.override = None
    return pipe


def run(pipe, session, frames, n=2, **kw):
    """The real streaming loop for ``n`` frames with the session wired in."""
    report = run_stream(pipe, ArraySource(frames, count=n, start=next(_next)), [NullSink()], session=session, **kw)
    assert report.failed_frames == 0, report.failures
    return report


def test_key_path_reaches_the_pipeline_at_the_frame_boundary(fresh, frames):
    session = Session(fresh)
    seen = []
    session.subscribe(seen.append)
    ctl = Controller(fresh, session=session)
    start = fresh.preset.render.aperture_px
    ctl.handle_key("+")
    assert fresh.preset.render.aperture_px == start  # recorded, not applied
    assert session.preset.render.aperture_px == pytest.approx(start * controls.STEP)
    run(fresh, session, frames, n=1)
    assert fresh.preset.render.aperture_px == pytest.approx(start * controls.STEP)
    assert seen and seen[-1].user.render.aperture_px == pytest.approx(start * controls.STEP)
    assert seen[-1].effective == fresh.preset and seen[-1].level == 0
    ctl.handle_key("v")
    ctl.handle_key("e")
    run(fresh, session, frames, n=1)
    s = session.settings()
    assert s.view == "matte" and s.effect is False and fresh.preset.render.effect is False
    assert s.version == seen[-1].version and seen[-1].view == "matte"
    ctl.close()  # the session is the caller's: still usable
    session.set_effect(True)
    run(fresh, session, frames, n=1)
    assert fresh.preset.render.effect is True
    session.close()


def test_file_reload_path(fresh, frames, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('extends = "portrait"\nname = "mine"\n[render]\naperture_px = 40\n')
    fresh.apply(load_preset(path))
    clock = FakeClock(100.0)
    seen = []
    with Session(fresh, [path], live_reload=True, clock=clock,
                 adjust=lambda p: p.replace({"focus": {"mode": "face"}})) as session:
        session.subscribe(seen.append)
        session.toggle_effect()  # session state survives the reload
        run(fresh, session, frames, n=1)
        path.write_text('extends = "portrait"\nname = "mine"\n[render]\naperture_px = 90\n')
        clock.t += 0.3
        run(fresh, session, frames, n=1)
        p = fresh.preset
        assert p.render.aperture_px == 90.0 and p.render.effect is False and p.focus.mode.value == "face"
        assert seen[-1].user.render.aperture_px == 90.0 and "reloaded" in seen[-1].message
        path.write_text('extends = "portrait"\nname = "mine"\n[render]\naperture_px = -1\n')
        for _ in range(2):
            clock.t += 0.3
            run(fresh, session, frames, n=1)
        assert fresh.preset.render.aperture_px == 90.0 and "last good" in session.message
    path.write_text('extends = "portrait"\nname = "mine"\n[render]\naperture_px = 20\n')
    clock.t += 0.3
    session.poll()
    assert fresh.preset.render.aperture_px == 90.0  # closed: no longer watching


def test_governor_path_keeps_the_users_settings_as_the_base(fresh, frames):
    session = Session(fresh)
    gov = session.governor(30.0, window=1, cooldown_s=0.0)
    base = fresh.preset
    for i in range(3):
        gov.observe(500.0, now=float(i))  # far behind: three levels down (radius -25%)
    assert gov.level == 3 and fresh.preset == base  # decided, not yet applied
    session.poll()
    assert session.level == 3
    assert fresh.preset.render.max_coc_px == pytest.approx(0.75 * base.render.max_coc_px)
    assert fresh.preset.depth.every_n_frames >= 3
    Controller(fresh, session=session).handle_key("]")
    run(fresh, session, frames, n=1)
    want = round(base.render.max_coc_px * controls.STEP, 2)
    s = session.settings()
    assert s.user.render.max_coc_px == pytest.approx(want)  # the user's value
    assert s.effective.render.max_coc_px == pytest.approx(0.75 * want)  # the level on top of it
    assert s.level == 3 and s.level_label == LEVELS[3].label
    for i in range(3):
        gov.observe(1.0, now=10.0 + 5.0 * i)  # headroom for long enough: back up
    session.poll()
    assert session.level < 3 and fresh.preset.render.max_coc_px > 0.75 * want


def test_submit_from_another_thread_applies_between_frames(fresh, frames, monkeypatch):
    """The control page's path: a thread submits while the loop runs; every change lands at a
    frame boundary, on the loop's thread, and listeners hear it."""
    session = Session(fresh)
    seen = []
    session.subscribe(seen.append)
    applies = []  # (thread, stage running) at each pipeline.apply
    real_apply = fresh.apply

    def apply(preset):
        applies.append((threading.current_thread(), fresh.current_stage))
        return real_apply(preset)

    monkeypatch.setattr(fresh, "apply", apply)
    stop = threading.Event()

    def page():
        for v in (3.0, 5.0, 7.0, 9.0):
            session.change({"render": {"aperture_px": v}})
            if stop.wait(0.02):
                return
        session.focus_at(0.1, 0.1)

    t = threading.Thread(target=page, name="portrait-cam-test-page")
    t.start()
    try:
        report = run(fresh, session, frames, n=12)
    finally:
        stop.set()
        t.join()
    session.poll()
    assert report.failed_frames == 0 and applies
    assert all(th is threading.main_thread() and stage is None for th, stage in applies)
    assert fresh.preset.render.aperture_px == 9.0 and session.settings().user.render.aperture_px == 9.0
    assert [s.user.render.aperture_px for s in seen][-1] == 9.0
    assert isinstance(fresh.focus.override, float)  # the focus point was resolved on a real frame
    with pytest.raises(ConfigError, match="aperture_px"):
        session.change({"render": {"aperture_px": -4.0}})
    with pytest.raises(ConfigError, match="allowed"):
        session.set_view("sideways")
    with pytest.raises(ConfigError):
        session.focus_at(1.5, 0.2)
    session.poll()
    assert fresh.preset.render.aperture_px == 9.0  # refused changes change nothing


def test_concurrent_updates_keep_both_changes(fresh):
    session = Session(fresh)
    barrier = threading.Barrier(2)

    def knob(key, value):
        barrier.wait()
        for _ in range(50):
            session.change({"render": {key: value}})

    ts = [threading.Thread(target=knob, args=a, name="portrait-cam-test-knob")
          for a in (("aperture_px", 11.0), ("max_coc_px", 33.0))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    session.poll()
    assert fresh.preset.render.aperture_px == 11.0 and fresh.preset.render.max_coc_px == 33.0


def test_preset_selection_and_a_refused_preset(fresh, frames, monkeypatch):
    session = Session(fresh)
    assert session.settings().presets[:1] == ("portrait",)
    msg = session.select_preset("subtle")
    assert msg == "preset subtle" and fresh.preset.name == "portrait"
    session.poll()
    assert fresh.preset.name == "subtle" and session.settings().preset == "subtle"
    with pytest.raises(ConfigError):
        session.select_preset("no-such-preset")
    assert session.settings().preset == "subtle"

    from realtime.core.errors import ModelError

    def refuse(preset):
        raise ModelError("model file /nowhere.tflite does not exist")

    monkeypatch.setattr(fresh, "apply", refuse)
    session.select_preset("portrait")
    session.poll()
    assert fresh.preset.name == "subtle" and "not applied" in session.message
    assert session.settings().user.name == "subtle"  # the user's settings are what runs


def test_a_change_during_an_apply_builds_on_the_one_being_applied(fresh, monkeypatch):
    """While the loop applies a preset (a model may be loading), readers see it and a change
    submitted meanwhile is kept on top of it, not on the settings before it."""
    session = Session(fresh)
    real_apply = fresh.apply
    inside = threading.Event()

    def slow_apply(preset):
        inside.set()
        time.sleep(0.3)
        return real_apply(preset)

    monkeypatch.setattr(fresh, "apply", slow_apply)
    session.change({"render": {"aperture_px": 41.0}})
    loop = threading.Thread(target=session.poll, name="portrait-cam-test-loop")
    loop.start()
    assert inside.wait(5)
    assert session.preset.render.aperture_px == 41.0  # not the old value while it is applied
    session.change({"render": {"max_coc_px": 17.0}})
    loop.join()
    session.poll()
    assert fresh.preset.render.aperture_px == 41.0 and fresh.preset.render.max_coc_px == 17.0


def test_a_focus_point_waits_for_a_good_frame(fresh, frames):
    """A click that arrives while no good result exists (start, or failing closed) is kept and
    resolved on the next good frame, not lost."""
    session = Session(fresh)
    session.focus_at(0.1, 0.1)
    session.poll()  # nothing observed yet
    assert fresh.focus.override is None
    session.observe(frames[0], None)  # a failed frame
    session.poll()
    assert fresh.focus.override is None
    run(fresh, session, frames, n=2)
    assert isinstance(fresh.focus.override, float)
