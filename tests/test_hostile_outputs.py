"""Outputs under attack or bad luck: planted symlinks, full disks, read-only folders, folders
that already hold files, failed frames, Ctrl-C storms (issue 19). The real CLI in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import ROOT, reaped
from hostile import CLIP, SMALL, cli, leftovers, read_only_folder, tiny_filesystem
from realtime.app.cli import main
from realtime.devtools.testdata import read_video

VICTIM_TEXT = "important, never overwrite\n"


def _victim(tmp_path: Path, name: str) -> Path:
    victims = tmp_path / "victim"
    victims.mkdir(exist_ok=True)
    v = victims / name
    v.write_text(VICTIM_TEXT)
    return v


def test_planted_symlinks_are_never_written_through(tmp_path):
    out, rgba, mattes, depth = (tmp_path / n for n in ("out", "rgba", "mattes", "depth"))
    victims = []
    for folder in (out, rgba, mattes, depth):
        folder.mkdir()
        for name in (".00000.partial.png", ".00001.partial.png", "00000.png"):
            v = _victim(tmp_path, f"{folder.name}{name}")
            (folder / name).symlink_to(v)
            victims.append(v)
    for name in (".clip.partial.mp4", "clip.mp4", ".matte.partial.mp4"):
        v = _victim(tmp_path, name)
        (tmp_path / name).symlink_to(v)
        victims.append(v)
    r = cli("--input", CLIP, "--output", f"{out}/", "--output", f"rgba:{rgba}/", "--output", tmp_path / "clip.mp4",
            "--output", f"matte:{tmp_path / 'matte.mp4'}", "--save-matte", mattes, "--save-depth", depth,
            "--frames", "2", "--overwrite", "--quiet", *SMALL)
    assert r.returncode == 0, r.stderr
    for v in victims:
        assert v.read_text() == VICTIM_TEXT, f"{v} was written through a planted symlink"
    for folder in (out, rgba, mattes, depth):
        for name in ("00000.png", "00001.png"):
            f = folder / name
            assert f.is_file() and not f.is_symlink() and cv2.imread(str(f)) is not None
    clip = tmp_path / "clip.mp4"
    assert not clip.is_symlink() and len(read_video(clip)) == 2
    assert not [p for p in leftovers(tmp_path) if ".partial" not in p]


def test_debug_strip_never_writes_through_a_planted_symlink(tmp_path):
    victim = _victim(tmp_path, "strip")
    strip = tmp_path / "strip.png"
    strip.symlink_to(victim)
    r = cli("--input", CLIP, "--output", strip, "--debug-strip", "--frames", "2", "--quiet", *SMALL)
    assert r.returncode == 0, r.stderr
    assert victim.read_text() == VICTIM_TEXT
    assert not strip.is_symlink() and cv2.imread(str(strip)).shape[0] == 240
    assert not leftovers(tmp_path)


def test_full_disk_video_is_a_failed_job_with_no_file(tmp_path):
    full = tmp_path / "full"
    with tiny_filesystem(full, 100_000) as preexec:
        r = cli("--input", CLIP, "--output", full / "v.mp4", "--frames", "60", *SMALL, preexec=preexec)
        assert r.returncode == 1, r.stderr
        assert not (full / "v.mp4").exists() and not leftovers(full), os.listdir(full)
    assert "v.mp4" in r.stderr and ("incomplete" in r.stderr or "cannot write" in r.stderr)
    assert "Traceback" not in r.stderr and "60 frames" not in r.stderr


def test_one_failed_output_fails_the_job_and_the_others_finish(tmp_path):
    full = tmp_path / "full"
    good = tmp_path / "good.mp4"
    with tiny_filesystem(full, 60_000) as preexec:
        r = cli("--input", CLIP, "--output", good, "--output", f"{full}/png/", "--frames", "12", *SMALL,
                preexec=preexec)
        assert not leftovers(full)
    assert r.returncode == 1, r.stderr
    assert "output failed" in r.stderr and str(full / "png") in r.stderr and "Traceback" not in r.stderr
    assert len(read_video(good)) == 12  # the output that could be written is complete


def test_read_only_folder_for_a_video_is_one_line(tmp_path):
    with read_only_folder(tmp_path / "ro") as ro:
        r = cli("--input", CLIP, "--output", ro / "v.mp4", "--frames", "2", *SMALL)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("portrait-cam: error:") and str(ro) in lines[0]


def test_output_folder_holding_files_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "00099.png").write_bytes(b"from an earlier run")
    r = cli("--input", CLIP, "--output", f"{out}/", "--frames", "2", *SMALL)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "already holds 2 file(s)" in lines[0] and "--overwrite" in lines[0]
    assert sorted(os.listdir(out)) == ["00099.png", "notes.txt"]
    r = cli("--input", CLIP, "--output", f"{out}/", "--frames", "2", "--overwrite", "--quiet", *SMALL)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == ["00000.png", "00001.png", "00099.png", "notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("value", ["-3", "-1"])
def test_negative_frame_count_is_rejected(value, tmp_path, capsys):
    assert main(["--input", str(CLIP), "--output", str(tmp_path / "v.mp4"), "--frames", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "N >= 1" in err[0]
    assert not (tmp_path / "v.mp4").exists()


def _fail_frame(monkeypatch, bad: int) -> None:
    """The pipeline raises on frame ``bad`` (a stage failure, as a broken model would give)."""
    from realtime.core.errors import StageError
    from realtime.pipeline import Pipeline

    real = Pipeline.process
    calls = {"n": 0}

    def process(self, frame, ts):
        if not threading.current_thread().name.startswith("portrait-cam-pipeline"):
            return real(self, frame, ts)  # warm-up, in the main thread
        calls["n"] += 1
        if calls["n"] == bad + 1:
            raise StageError("depth stage returned garbage")
        return real(self, frame, ts)
    monkeypatch.setattr(Pipeline, "process", process)


@pytest.fixture
def logged():
    """What the project logged during the test (its logger does not propagate to pytest's)."""
    import io
    import logging

    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    logger = logging.getLogger("realtime")
    logger.addHandler(handler)
    try:
        yield buf
    finally:
        logger.removeHandler(handler)


def test_failed_frame_fails_a_file_job_by_default(tmp_path, monkeypatch, logged):
    _fail_frame(monkeypatch, 2)
    video, png = tmp_path / "v.mp4", tmp_path / "png"
    rc = main(["--input", str(CLIP), "--output", str(video), "--output", f"{png}/", "--frames", "5", *SMALL])
    err = logged.getvalue()
    assert rc == 1, err
    assert "1 of 5 frames failed" in err and "depth stage returned garbage" in err
    assert not video.exists() and not leftovers(tmp_path)
    assert sorted(p.name for p in png.iterdir()) == ["00000.png", "00001.png", "00003.png", "00004.png"]


def test_failed_frames_keep_writes_fail_closed_frames_and_warns(tmp_path, monkeypatch, logged):
    _fail_frame(monkeypatch, 2)
    video = tmp_path / "v.mp4"
    rc = main(["--input", str(CLIP), "--output", str(video), "--frames", "5", "--failed-frames", "keep", *SMALL])
    err = logged.getvalue()
    assert rc == 0, err
    assert "1 of 5 frames failed and were written fail-closed" in err
    assert len(read_video(video)) == 5


def test_ctrl_c_storm_always_exits_130_without_partial_files(tmp_path):
    """Three SIGINTs a few ms apart, at different moments of the job, many times: exit 130, no
    crash (SIGSEGV/SIGABRT were seen before), no traceback, no video, no temporary left."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    delays = [0.0, 0.05, 0.15, 0.3, 0.6, 0.0, 0.1, 0.45]
    for k, delay in enumerate(delays):
        work = tmp_path / f"run{k}"
        work.mkdir()
        proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--input", str(CLIP), "--output",
                                 str(work / "v.mp4"), "--output", f"{work}/png/", "--first-frame-marker",
                                 "--quiet", *SMALL], cwd=work, env=env, stderr=subprocess.PIPE, text=True)
        with reaped(proc):
            seen = []
            while (line := proc.stderr.readline()) and line.strip() != "first-frame":
                seen.append(line)  # library log lines before the first frame
            assert line, "".join(seen)
            time.sleep(delay)
            for _ in range(3):
                proc.send_signal(signal.SIGINT)
                time.sleep(0.003)
            rc = proc.wait(timeout=60)
        err = proc.stderr.read()
        assert rc == 130, f"run {k} (delay {delay}): exit {rc}\n{err}"
        assert "Traceback" not in err and "interrupted" in err
        assert not (work / "v.mp4").exists() and not leftovers(work), os.listdir(work)
