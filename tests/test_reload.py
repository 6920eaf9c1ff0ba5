"""Live preset reload with real files: edits apply within a second, broken edits are reported
once and change nothing, editors that save by rename or delete-and-recreate are followed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import FakeClock
from realtime.core import config
from realtime.app import reload
from realtime.core.errors import ModelError
from realtime.app.reload import PresetWatcher, preset_file


def preset_text(aperture: float, extra: str = "") -> str:
    return f'name = "mine"\nextends = "portrait"\n[render]\naperture_px = {aperture}\n{extra}'


class Recorder:
    def __init__(self) -> None:
        self.presets: list[config.Preset] = []
        self.errors: list[str] = []

    def change(self, p: config.Preset) -> None:
        self.presets.append(p)

    def error(self, msg: str) -> None:
        self.errors.append(msg)



def run_until(watcher: PresetWatcher, cond, limit: float = 1.0, frame: float = 0.01) -> float | None:
    """Poll like a 100 fps loop until ``cond()``; the seconds it took, or None after ``limit``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        watcher.poll()
        if cond():
            return time.monotonic() - t0
        time.sleep(frame)
    return None


def test_edit_applies_within_a_second_and_broken_edit_keeps_last_good(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(preset_text(40))
    rec = Recorder()
    with PresetWatcher(str(path), rec.change, rec.error) as w:
        assert run_until(w, lambda: rec.presets or rec.errors, limit=0.4) is None  # baseline not re-applied
        path.write_text(preset_text(70))
        took = run_until(w, lambda: rec.presets)
        assert took is not None, "edit not applied within 1 s"
        assert rec.presets[-1].render.aperture_px == 70.0 and rec.presets[-1].name == "mine"
        # a broken edit: reported once, nothing applied
        path.write_text(preset_text(70, "max_coc_px = 5000\n"))
        assert run_until(w, lambda: rec.errors) is not None, "broken edit not reported within 1 s"
        assert len(rec.presets) == 1
        assert "render.max_coc_px" in rec.errors[0] and "out of range" in rec.errors[0]
        assert "keeping the last good settings" in rec.errors[0] and str(path) in rec.errors[0]
        assert run_until(w, lambda: len(rec.errors) > 1, limit=0.6) is None  # not repeated every poll
        # a TOML syntax error too
        path.write_text(preset_text(70, "max_coc_px = \n"))
        assert run_until(w, lambda: len(rec.errors) > 1) is not None
        assert "TOML syntax error" in rec.errors[1]
        # fixed again: applied
        path.write_text(preset_text(55))
        assert run_until(w, lambda: len(rec.presets) == 2) is not None
        assert rec.presets[-1].render.aperture_px == 55.0
    assert w.poll() is False  # closed


def test_save_by_rename_and_by_delete_and_recreate(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(preset_text(40))
    rec = Recorder()
    w = PresetWatcher(path, rec.change, rec.error)
    # vim/VS Code style: write a new file, rename it over the old one
    tmp = tmp_path / ".mine.toml.swp"
    tmp.write_text(preset_text(41))
    os.replace(tmp, path)
    assert run_until(w, lambda: rec.presets) is not None
    assert rec.presets[-1].render.aperture_px == 41.0
    # delete, then create again shortly after: no error, the new content applies
    path.unlink()
    w.poll()
    time.sleep(0.3)
    w.poll()
    path.write_text(preset_text(42))
    assert run_until(w, lambda: len(rec.presets) == 2) is not None
    assert rec.errors == [] and rec.presets[-1].render.aperture_px == 42.0
    w.close()


def test_missing_file_reported_once_after_grace_then_followed_again(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(preset_text(40))
    rec = Recorder()
    clock = FakeClock()
    w = PresetWatcher(path, rec.change, rec.error, interval=0.25, missing_grace=1.0, clock=clock)
    path.unlink()
    for _ in range(12):  # 3 s of polling
        clock.t += 0.25
        w.poll()
    assert len(rec.errors) == 1 and "gone" in rec.errors[0]
    path.write_text(preset_text(40))  # the same content back: applied again (the user sees it is back)
    clock.t += 0.25
    assert w.poll() is True and rec.presets[-1].render.aperture_px == 40.0


def test_half_written_file_is_not_reported(tmp_path):
    """An editor caught mid-write: the broken content is gone by the next look."""
    path = tmp_path / "mine.toml"
    path.write_text(preset_text(40))
    rec = Recorder()
    clock = FakeClock()
    w = PresetWatcher(path, rec.change, rec.error, clock=clock)
    path.write_text('name = "mine"\nextends = "portrait"\n[render]\naperture_px = ')
    clock.t += 0.3
    assert w.poll() is False
    path.write_text(preset_text(60))
    clock.t += 0.3
    assert w.poll() is True
    assert rec.errors == [] and rec.presets[-1].render.aperture_px == 60.0


def test_polls_at_most_every_interval(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(preset_text(40))
    rec = Recorder()
    clock = FakeClock()
    w = PresetWatcher(path, rec.change, rec.error, interval=0.25, clock=clock)
    path.write_text(preset_text(45))
    for _ in range(20):  # many frames within the interval: the file is not looked at
        clock.t += 0.01
        assert w.poll() is False
    clock.t += 0.06
    assert w.poll() is True and w.applied == 1


def test_builtin_name_watches_its_configs_file(tmp_path, monkeypatch):
    assert preset_file("subtle") == Path(str(config.presets_dir())) / "subtle.toml"
    assert preset_file("subtle").is_file()
    # a private copy of configs/ so editing a built-in preset does not touch the repository
    d = tmp_path / "configs"
    d.mkdir()
    for p in Path(str(config.presets_dir())).glob("*.toml"):
        (d / p.name).write_text(p.read_text())
    monkeypatch.setattr(config, "presets_dir", lambda: d)
    monkeypatch.setattr(reload, "presets_dir", lambda: d)
    rec = Recorder()
    w = PresetWatcher("subtle", rec.change, rec.error)
    assert w.path == d / "subtle.toml"
    (d / "subtle.toml").write_text((d / "subtle.toml").read_text().replace("aperture_px = 25.0", "aperture_px = 33.0"))
    assert run_until(w, lambda: rec.presets) is not None
    assert rec.presets[-1].name == "subtle" and rec.presets[-1].render.aperture_px == 33.0


def test_on_change_failure_is_reported(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(preset_text(40))
    errors: list[str] = []

    def fail(p):
        raise ModelError("model file /nowhere.onnx does not exist")

    clock = FakeClock()
    w = PresetWatcher(path, fail, errors.append, clock=clock)
    path.write_text(preset_text(50))
    clock.t += 0.3
    assert w.poll() is False
    assert len(errors) == 1 and "/nowhere.onnx" in errors[0] and "last good" in errors[0]


def test_bad_interval():
    with pytest.raises(ValueError):
        PresetWatcher("portrait", print, print, interval=-1)
