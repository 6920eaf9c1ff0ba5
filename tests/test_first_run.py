"""What a new user meets in the first half hour: help everywhere, honest counts, models that say
where they were looked for. Each case runs the real command line as a subprocess."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA, ROOT
from test_paths import cli, one_error_line, snapshot


@pytest.mark.parametrize("argv", [
    ["--help"], ["models", "--help"], ["models", "list", "--help"], ["models", "fetch", "--help"],
    ["models", "verify", "--help"], ["bench", "--help"], ["doctor", "--help"], ["models", "fetch", "-h"],
    ["batch", "--help"],
])
def test_every_subcommand_answers_help(argv, tmp_path):
    env = {"REALTIME_CACHE_DIR": str(tmp_path / "cache"), "REALTIME_MODEL_URL_BASE": (tmp_path / "x").as_uri()}
    proc = cli(argv, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout.lower() and "error" not in proc.stderr.lower()
    assert not list(tmp_path.iterdir())  # 'fetch --help' fetched nothing


def test_top_level_help_lists_subcommands_and_live_looping(tmp_path):
    out = " ".join(cli(["--help"], cwd=tmp_path).stdout.split())
    assert "models list|fetch|verify" in out and "each has --help" in out
    assert "LOOPS" in out and "--frames N" in out


@pytest.fixture
def talk(tmp_path) -> Path:
    clip = tmp_path / "talk.mp4"
    shutil.copyfile(DATA / "talking" / "5.mp4", clip)
    return clip


@pytest.mark.parametrize("n", ["0", "-3"])
def test_frames_zero_or_less_is_refused(n, talk, tmp_path):
    before = snapshot(tmp_path)
    proc = cli(["--input", "talk.mp4", "--output", "out.mp4", "--frames", n], cwd=tmp_path)
    line = one_error_line(proc)
    assert f"--frames {n} would process nothing" in line and "leave --frames out" in line
    assert snapshot(tmp_path) == before


def test_progress_total_honours_frames(talk, tmp_path):
    proc = cli(["--input", "talk.mp4", "--output", "null", "--frames", "5", "--size", "160x160"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "5/5 100%" in proc.stderr and "/122" not in proc.stderr


def test_live_file_says_it_loops_and_frames_stops_it(talk, tmp_path):
    proc = cli(["--input", "talk.mp4", "--live", "--output", "null", "--frames", "4", "--size", "160x160"],
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    start = [ln for ln in proc.stderr.splitlines() if ln.startswith("portrait-cam: input:")]
    assert len(start) == 1 and "looping" in start[0] and "--frames N" in start[0]
    assert "4 frames in" in proc.stderr


def _empty_store(tmp_path: Path) -> dict:
    (tmp_path / "models").mkdir()
    return {"REALTIME_MODEL_DIR": str(tmp_path / "models"), "REALTIME_CACHE_DIR": str(tmp_path / "cache"),
            "REALTIME_MODEL_URL_BASE": (tmp_path / "no-mirror").as_uri()}


def test_models_verify_fails_when_the_default_presets_models_are_missing(tmp_path):
    env = _empty_store(tmp_path)
    proc = cli(["models", "verify"], cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "the default preset needs are missing" in proc.stderr
    for name in ("selfie_landscape", "face_short_range", "tcmonodepth_small"):
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(name + ":"))
        assert str(tmp_path / "models") in line and str(tmp_path / "cache") in line


def test_models_verify_passes_with_every_model_and_fails_on_one_missing(tmp_path, model_dir):
    env = _empty_store(tmp_path)
    for f in model_dir.iterdir():
        if f.suffix in (".tflite", ".onnx"):
            os.symlink(f, tmp_path / "models" / f.name)
    assert cli(["models", "verify"], cwd=tmp_path, env=env, timeout=120).returncode == 0
    (tmp_path / "models" / "tcmonodepth_tcsmallnet_192x320.onnx").unlink()
    proc = cli(["models", "verify"], cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 1 and "tcmonodepth_small" in proc.stderr


def test_models_list_shows_where_each_model_was_looked_up(tmp_path):
    env = _empty_store(tmp_path)
    proc = cli(["models", "list"], cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0
    assert f"model dir ($REALTIME_MODEL_DIR): {tmp_path / 'models'}" in proc.stdout
    assert f"cache ($REALTIME_CACHE_DIR): {tmp_path / 'cache'} (no such folder)" in proc.stdout


def test_quiet_run_stderr_holds_only_the_projects_lines(talk, tmp_path):
    proc = cli(["--input", "talk.mp4", "--output", "out/", "--frames", "3", "--quiet"], cwd=tmp_path)
    assert proc.returncode == 0 and len(list((tmp_path / "out").glob("*.png"))) == 3
    assert proc.stderr == "", proc.stderr  # no MediaPipe / TFLite / absl lines
    debug = cli(["--input", "talk.mp4", "--output", "null", "--frames", "3", "--quiet", "--debug"], cwd=tmp_path)
    assert debug.returncode == 0 and "TensorFlow Lite" in debug.stderr  # they are there, and --debug shows them


def test_a_normal_run_prints_only_its_own_lines(talk, tmp_path):
    proc = cli(["--input", "talk.mp4", "--output", "null", "--frames", "3"], cwd=tmp_path)
    assert proc.returncode == 0
    lines = [ln.strip("\r") for ln in proc.stderr.splitlines() if ln.strip()]
    progress = re.compile(r"^\[#* *\] \d+/3 ")
    assert lines and all(ln.startswith("portrait-cam: ") or progress.match(ln) for ln in lines), proc.stderr


def test_invalid_video_gives_one_line_without_ffmpegs(tmp_path):
    (tmp_path / "cut.mp4").write_bytes((DATA / "talking" / "5.mp4").read_bytes()[:20000])
    before = snapshot(tmp_path)
    proc = cli(["--input", "cut.mp4", "--output", "out.mp4"], cwd=tmp_path)
    assert "cannot be decoded" in one_error_line(proc) and "moov atom" not in proc.stderr
    assert snapshot(tmp_path) == before
    debug = cli(["--input", "cut.mp4", "--output", "out.mp4", "--debug"], cwd=tmp_path)
    assert "moov atom not found" in debug.stderr
