"""Live controls through the controller API (no window): keys, click to focus, views, help,
live reload, PreviewSink wiring; the debug views; the key table in the docs.

The real pipeline (real MediaPipe and ONNX models) runs on small talking-head frames.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from conftest import FakeClock, ROOT, talking_frame
from realtime.app import controls, debugviews as dv
from realtime.core.config import load_preset
from realtime.app.controls import BINDINGS, Controller
from realtime.core.errors import ModelError
from realtime.pipeline import Pipeline
from realtime.io.sinks import OutputFrame, PreviewSink

SIZE = (320, 240)
_ts = itertools.count(1000, 33)



@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return [talking_frame(i, size=SIZE) for i in range(3)]


@pytest.fixture(scope="module")
def pipe():
    p = Pipeline(load_preset("portrait"))
    yield p
    p.close()


def step(ctl: Controller, frame: np.ndarray):
    """One loop iteration as the streaming loop does it."""
    ctl.poll()
    r = ctl.pipeline.process(frame, next(_ts))
    ctl.observe(frame, r)
    return r


@pytest.fixture
def ctl(pipe, frames):
    pipe.apply(load_preset("portrait"))
    pipe.focus.override = None
    clock = FakeClock(5000.0)
    c = Controller(pipe, clock=clock, live_reload=False)
    c.clock = clock
    for f in frames:
        step(c, f)
    return c


def quiet(ctl: Controller) -> None:
    """Let any message and marker expire."""
    ctl.clock.t += 100.0


def background_change(r, frame) -> float:
    """Mean |output - input| where the matte says background."""
    bg = r.matte < 0.1
    assert bg.mean() > 0.2  # the clip has plenty of background
    return float(np.abs(r.frame.astype(np.int16) - frame.astype(np.int16))[bg].mean())


def test_aperture_keys_step_clamp_and_blur_more(ctl, frames):
    start = ctl.pipeline.preset.render.aperture_px
    msg = ctl.handle_key("+")
    assert ctl.preset.render.aperture_px == pytest.approx(start * controls.STEP)
    assert msg.startswith("aperture") and ctl.message == msg
    # keys only record the change; poll() (the loop, pipeline idle) applies it
    assert ctl.pipeline.preset.render.aperture_px == start
    ctl.poll()
    assert ctl.pipeline.preset.render.aperture_px == pytest.approx(start * controls.STEP)
    ctl.handle_key("-")
    assert ctl.preset.render.aperture_px == pytest.approx(start)
    assert ctl.handle_key("=") and ctl.preset.render.aperture_px > start  # '+' without shift
    for _ in range(60):
        msg = ctl.handle_key("+")
    assert ctl.preset.render.aperture_px == 1000.0 and "maximum" in msg
    for _ in range(80):
        msg = ctl.handle_key("-")
    assert ctl.preset.render.aperture_px == 0.0 and "minimum" in msg
    ctl.handle_key("+")
    ctl.poll()
    assert ctl.pipeline.preset.render.aperture_px == controls.MIN_STEP_PX
    # the lens really follows: a wider aperture changes the background more
    pipe = ctl.pipeline
    pipe.focus.override = 0.95  # focus near, so the background is well behind it
    pipe.apply(pipe.preset.replace({"render": {"aperture_px": 8.0, "max_coc_px": 24.0}}))
    c = Controller(pipe, live_reload=False)
    small = background_change(step(c, frames[0]), frames[0])
    for _ in range(6):
        c.handle_key("+")
    assert c.preset.render.aperture_px > 30
    large = background_change(step(c, frames[0]), frames[0])
    assert large > small * 1.2


def test_radius_keys(ctl):
    r0 = ctl.pipeline.preset.render.max_coc_px
    ctl.handle_key("]")
    assert ctl.preset.render.max_coc_px == pytest.approx(r0 * controls.STEP)
    ctl.handle_key("[")
    ctl.handle_key("[")
    assert ctl.preset.render.max_coc_px == pytest.approx(round(r0 / controls.STEP, 2))
    for _ in range(40):
        ctl.handle_key("]")
    ctl.poll()
    assert ctl.pipeline.preset.render.max_coc_px == 128.0


def test_keys_with_quality_scaling_keep_the_users_base(pipe):
    """With the governor applying, a key works on the user's value, not on the reduced one."""
    from realtime.app.scaling import QualityGovernor

    base = load_preset("portrait")
    pipe.apply(base)
    gov = QualityGovernor(pipe.apply, base, 30.0, window=1, cooldown_s=0.0)
    c = Controller(pipe, live_reload=False, apply=gov.rebase)  # built at start, like the loop's
    for i in range(3):
        gov.observe(500.0, now=float(i))  # far behind: three levels down (radius -25%)
    assert gov.level == 3 and pipe.preset.render.max_coc_px == pytest.approx(0.75 * base.render.max_coc_px)
    c.handle_key("]")
    c.poll()
    want = round(base.render.max_coc_px * controls.STEP, 2)
    assert c.preset.render.max_coc_px == pytest.approx(want)  # the user's value
    assert pipe.preset.render.max_coc_px == pytest.approx(0.75 * want)  # the level on top of it
    assert gov.base.render.max_coc_px == pytest.approx(want)


def test_effect_toggle_passes_the_frame_through(ctl, frames):
    assert ctl.handle_key("e") == "effect off"
    r = step(ctl, frames[1])
    assert np.array_equal(r.frame, frames[1])
    assert ctl.handle_key("e") == "effect on"
    r = step(ctl, frames[1])
    assert not np.array_equal(r.frame, frames[1])


def test_preset_cycling_drops_tweaks_keeps_effect_off(ctl, frames):
    names = [ctl.pipeline.preset.name]
    ctl.handle_key("+")
    ctl.handle_key("e")
    for _ in range(3):
        msg = ctl.handle_key("p")
        ctl.poll()
        names.append(ctl.pipeline.preset.name)
        assert msg.startswith(f"preset {names[-1]}") and "effect off" in msg
        assert ctl.pipeline.preset.render.effect is False
        want = load_preset(names[-1]).render.aperture_px
        assert ctl.pipeline.preset.render.aperture_px == want  # the preset as written
        step(ctl, frames[0])  # the pipeline runs after each switch (stages rebuilt where needed)
    assert names[0] == "portrait" and names[-1] == "portrait"
    assert set(names) == {"portrait", "subtle", "blur-only"}


def test_broken_preset_in_the_cycle_is_reported_and_skipped(pipe, tmp_path, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "portrait"\n[render]\napperture_px = 3\n')
    pipe.apply(load_preset("portrait"))
    c = Controller(pipe, ["portrait", str(bad), "subtle"], live_reload=False)
    msg = c.handle_key("p")
    assert "bad" in msg and "apperture_px" in msg and pipe.preset.name == "portrait"
    # the pipeline refusing a preset (fault injected at its API) is reported by poll(); it keeps running
    def refuse(preset):
        raise ModelError("model file /nowhere.tflite does not exist")

    monkeypatch.setattr(pipe, "apply", refuse)
    c = Controller(pipe, ["portrait", "subtle"], live_reload=False)
    assert c.handle_key("p") == "preset subtle"
    c.poll()
    assert pipe.preset.name == "portrait" and "not applied" in c.message and "/nowhere.tflite" in c.message


def test_views_cycle_and_show_the_planes(ctl, frames):
    quiet(ctl)
    r = ctl._result
    out = np.ascontiguousarray(r.frame)
    assert ctl.compose(out) is out  # nothing to draw: the output itself, no copy
    seen = []
    for _ in range(len(controls.VIEWS)):
        ctl.handle_key("v")
        seen.append(ctl.view)
    assert seen == [*controls.VIEWS[1:], controls.VIEWS[0]]
    h, w = out.shape[:2]
    below = slice(h // 3, h)  # under the view label in the top right corner
    ctl.view = "matte"
    quiet(ctl)
    img = ctl.compose(out)
    assert np.array_equal(img[below], dv.matte_view(r.matte)[below])
    ctl.view = "disparity"
    img = ctl.compose(out)
    assert np.array_equal(img[below], dv.disparity_view(r.disparity)[below])
    ctl.view = "coc"
    img = ctl.compose(out)
    limit = ctl.pipeline.renderer.scaled(h)[1]
    assert np.array_equal(img[below], dv.coc_view(r.coc, limit)[below])
    ctl.view = "side-by-side"
    img = ctl.compose(out)
    assert img.shape == (h, 2 * w, 3)
    assert np.array_equal(img[:, :w], frames[-1]) and np.array_equal(img[below, w:], out[below])


def test_help_overlay_toggles_and_draws_in_its_box(ctl):
    quiet(ctl)
    out = np.ascontiguousarray(ctl._result.frame)
    assert ctl.handle_key("h") == "help on" and ctl.help_visible
    quiet(ctl)
    img = ctl.compose(out).copy()
    h, w = out.shape[:2]
    changed = np.any(img != out, axis=2)
    ys, xs = np.nonzero(changed)
    assert changed.mean() > 0.05  # a real box, not a dot
    assert ys.min() < h * 0.1 and xs.min() < w * 0.1  # in the top-left corner
    assert not changed[-5:, :].any() and not changed[:, -3:].any()  # the rest untouched
    ctl.handle_key("h")
    quiet(ctl)
    assert not ctl.help_visible and ctl.compose(out) is out


def test_messages_show_then_expire(ctl):
    quiet(ctl)
    out = np.ascontiguousarray(ctl._result.frame)
    msg = ctl.handle_key("x")
    assert "h shows the keys" in msg
    img = ctl.compose(out).copy()
    h = out.shape[0]
    changed = np.any(img != out, axis=2)
    assert changed[h // 2:].any() and not changed[: h // 3].any()  # bottom of the picture only
    ctl.clock.t += ctl.message_seconds + 0.01
    assert ctl.message == "" and ctl.compose(out) is out


def test_click_to_focus_pulls_to_the_median_under_the_pointer(ctl, frames):
    r = ctl._result
    d = np.array(r.disparity)
    h, w = d.shape
    x, y = 20, 30  # top left: background
    rad = max(2, int(round(controls.CLICK_RADIUS * h)))
    target = float(np.median(d[y - rad:y + rad + 1, x - rad:x + rad + 1]))  # NumPy reference
    start = r.focus
    msg = ctl.click(x, y, (w, h))
    assert f"disparity {target:.2f}" in msg
    assert ctl.pipeline.focus.override is None  # recorded; applied by the next poll
    ctl.poll()
    assert ctl.pipeline.focus.override == pytest.approx(start)  # no jump
    ctl.clock.t += ctl.focus_pull_s / 2
    ctl.poll()
    mid = ctl.pipeline.focus.override
    assert min(start, target) - 1e-6 <= mid <= max(start, target) + 1e-6
    ctl.clock.t += ctl.focus_pull_s
    res = step(ctl, frames[0])
    assert ctl.pipeline.focus.override == pytest.approx(target)
    assert res.focus == pytest.approx(target)
    # in focus where clicked: the CoC there is far smaller than the frame's largest
    assert abs(float(np.median(res.coc[y - rad:y + rad + 1, x - rad:x + rad + 1]))) < 0.25 * np.abs(res.coc).max()
    assert ctl.handle_key("f") == "focus: automatic"
    ctl.poll()
    assert ctl.pipeline.focus.override is None


def test_click_maps_scaled_and_side_by_side_coordinates(ctl):
    h, w = ctl._result.disparity.shape
    ctl.focus_pull_s = 0.0
    ctl.click(w - 10, h // 2, (w, h))
    ctl.poll()
    direct = ctl.pipeline.focus.override
    ctl.click((w - 10) * 2, h, (2 * w, 2 * h))  # a window twice the size
    ctl.poll()
    assert ctl.pipeline.focus.override == direct
    ctl.view = "side-by-side"
    ctl.click(w + w - 10, h // 2, (2 * w, h))  # the output tile on the right
    ctl.poll()
    assert ctl.pipeline.focus.override == direct
    assert "inside" in ctl.click(-5, 3, (2 * w, h)) and "inside" in ctl.click(2 * w, 3, (2 * w, h))


def test_click_before_any_frame(pipe):
    c = Controller(pipe, live_reload=False)
    assert "nothing to focus" in c.click(10, 10, (320, 240))


def test_bind_wires_a_preview_sink_without_a_window(ctl, frames):
    sink = PreviewSink()
    ctl.bind(sink)
    sink.on_key("e")
    assert ctl.preset.render.effect is False
    sink.on_key("e")
    ctl.focus_pull_s = 0.0
    sink.on_mouse(cv2.EVENT_MOUSEMOVE, 5, 5)
    assert ctl.pipeline.focus.override is None  # only a click focuses
    sink.on_mouse(cv2.EVENT_LBUTTONDOWN, 5, 5)
    ctl.poll()
    assert ctl.pipeline.focus.override is not None
    r = step(ctl, frames[0])
    ctl.observe(None, None)  # the overlay takes the result from the OutputFrame itself
    ctl.view = "matte"
    img = sink.overlay(OutputFrame(r.frame, r.matte, r.disparity, "00000", 0, 0.0, result=r, input=frames[0]))
    assert img.shape == r.frame.shape and ctl._result is r
    h = r.frame.shape[0]
    assert np.array_equal(img[h // 3:h // 2], dv.matte_view(r.matte)[h // 3:h // 2])
    # a fail-closed frame (no result) is shown as it is, not as a debug view of an old result
    shown = np.full_like(r.frame, 40)
    quiet(ctl)
    assert sink.overlay(OutputFrame(shown, None, None, "00001", 1, 0.0, input=frames[0])) is shown


def test_live_reload_through_the_controller(pipe, frames, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('extends = "portrait"\nname = "mine"\n[render]\naperture_px = 40\n')
    pipe.apply(load_preset(path))
    clock = FakeClock(5000.0)
    c = Controller(pipe, [path], clock=clock)
    step(c, frames[0])
    c.handle_key("e")  # session state survives a reload
    path.write_text('extends = "portrait"\nname = "mine"\n[render]\naperture_px = 90\n')
    clock.t += 0.3
    step(c, frames[1])
    assert pipe.preset.render.aperture_px == 90.0 and pipe.preset.render.effect is False
    assert "reloaded" in c.message
    path.write_text('extends = "portrait"\nname = "mine"\n[render]\naperture_px = -1\n')
    clock.t += 0.3
    step(c, frames[2])
    clock.t += 0.3
    step(c, frames[0])
    assert pipe.preset.render.aperture_px == 90.0  # the last good settings stay
    assert "aperture_px" in c.message and "last good" in c.message
    c.handle_key("e")
    c.close()
    path.write_text('extends = "portrait"\nname = "mine"\n[render]\naperture_px = 20\n')
    clock.t += 0.3
    step(c, frames[1])
    assert pipe.preset.render.aperture_px == 90.0  # closed: no longer watching


def test_one_key_table_for_help_and_docs():
    keys = [k for b in BINDINGS for k in b.keys]
    assert len(keys) == len(set(keys))
    assert not {"q", "\x1b"} & set(keys)  # PreviewSink's quit keys
    assert all(callable(getattr(Controller, b.action, None)) for b in BINDINGS)
    doc = (ROOT / "docs" / "controls.md").read_text()
    assert controls.markdown_table() in doc, "regenerate the table in docs/controls.md from controls.markdown_table()"


# -- debug views -------------------------------------------------------------------------------

def test_coc_view_is_diverging():
    coc = np.array([[-20.0, -5.0, 0.0, 5.0, 20.0, 60.0]], np.float32)
    img = dv.coc_view(coc, limit=20.0).astype(int)
    near, far = img[0, 0], img[0, 4]
    assert near[2] > near[0] and far[0] > far[2]  # orange (B<R) in front, blue behind
    assert img[0, 2].sum() == 0  # in focus: black
    assert img[0, 1].sum() < near.sum() and img[0, 3].sum() < far.sum()  # brighter = more blur
    assert np.array_equal(img[0, 5], img[0, 4])  # beyond the limit: clipped, never wrapped


def test_matte_and_disparity_views():
    rng = np.random.default_rng(3)
    m = rng.random((7, 9), dtype=np.float32)
    v = dv.matte_view(m)
    assert v.shape == (7, 9, 3) and np.array_equal(v[..., 0], v[..., 2])
    assert np.abs(v[..., 0].astype(int) - np.rint(m * 255)).max() <= 1
    d = np.linspace(0, 1, 63, dtype=np.float32).reshape(7, 9)
    v = dv.disparity_view(d).astype(int)
    assert v[-1, -1, 2] > v[-1, -1, 0] and v[0, 0, 0] > v[0, 0, 2]  # near red, far blue
    with pytest.raises(TypeError):
        dv.matte_view(m.astype(np.float64))
    with pytest.raises(ValueError):
        dv.matte_view(np.zeros((4, 4, 1), np.float32))


def test_debug_strip(ctl, frames):
    r = ctl._result
    strip = dv.debug_strip(frames[-1], r, tile_height=120)
    tw = round(SIZE[0] * 120 / SIZE[1])
    assert strip.shape == (120, 5 * tw + 4 * 2, 3)
    tile = cv2.resize(frames[-1], (tw, 120), interpolation=cv2.INTER_AREA)
    assert np.array_equal(strip[60:, :tw], tile[60:])  # under the label: the input itself
    assert np.array_equal(strip[:, tw:tw + 2], np.zeros((120, 2, 3), np.uint8))  # the gap
    assert not np.array_equal(strip[:20, :tw], tile[:20])  # the label
