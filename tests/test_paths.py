"""No output may destroy the input or another output; a refused or failed job leaves the disk as it was.

Every case runs the real command line as a subprocess and compares the files on disk before
and after.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DATA, ROOT, people_frames, reaped
from realtime.app.libnoise import QUIET_ENV


def cli(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    # The environment a user's shell would give: without the library log levels that an in-process
    # main() earlier in this test session put into os.environ (they would hide --debug's lines).
    base = {k: v for k, v in os.environ.items() if k not in QUIET_ENV}
    env = {**base, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` with a hash of its bytes (folders: 'dir')."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        else:
            out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("portrait-cam: error:"), proc.stderr
    return lines[0]


@pytest.fixture
def talk(tmp_path) -> Path:
    clip = tmp_path / "talk.mp4"
    shutil.copyfile(DATA / "talking" / "5.mp4", clip)
    return clip


@pytest.fixture
def shots(tmp_path) -> Path:
    d = tmp_path / "shots"
    d.mkdir()
    for p in people_frames("dance-twirl")[:3]:
        shutil.copyfile(p, d / p.name)
    return d


@pytest.mark.parametrize("output", ["talk.mp4", "./talk.mp4", "{abs}", "link.mp4", "hard.mp4", "matte:talk.mp4",
                                    "sub/../talk.mp4"])
def test_output_that_is_the_input_file_is_refused(output, talk, tmp_path):
    (tmp_path / "link.mp4").symlink_to(talk)
    os.link(talk, tmp_path / "hard.mp4")
    (tmp_path / "sub").mkdir()
    before = snapshot(tmp_path)
    proc = cli(["--input", "talk.mp4", "--output", output.format(abs=talk), "--frames", "3"], cwd=tmp_path)
    line = one_error_line(proc)
    assert "talk.mp4" in line and output.format(abs=talk) in line and "same file" in line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("flag, value", [
    ("--output", "shots/"), ("--output", "shots"), ("--output", "./shots/sub/"), ("--output", "{abs}/"),
    ("--output", "rgba:shots/"), ("--output", "matte:shots/m.mp4"), ("--output", "shots/out.mp4"),
    ("--save-matte", "shots"), ("--save-depth", "./shots/"), ("--output", "alias/"),
])
def test_output_inside_the_input_folder_is_refused(flag, value, shots, tmp_path):
    (tmp_path / "alias").symlink_to(shots)
    before = snapshot(tmp_path)
    args = ["--input", "shots/", "--output", "out/", flag, value.format(abs=shots)]
    if flag == "--output":
        args = ["--input", "shots/", flag, value.format(abs=shots)]
    proc = cli(args, cwd=tmp_path)
    line = one_error_line(proc)
    assert "inside the input folder shots/" in line and value.format(abs=shots) in line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("args, what", [
    (["--output", "a.mp4", "--output", "a.mp4"], "same file"),
    (["--output", "a.mp4", "--output", "./a.mp4"], "same file"),
    (["--output", "a.mp4", "--output", "matte:{tmp}/a.mp4"], "same file"),
    (["--output", "out/", "--save-matte", "out"], "same folder"),
    (["--output", "rgba:out/", "--output", "./out/"], "same folder"),
    (["--save-matte", "m", "--save-depth", "m/", "--output", "null"], "same folder"),
    (["--output", "out/", "--output", "alias/"], "same folder"),
])
def test_two_outputs_in_the_same_place_are_refused(args, what, talk, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "out")
    before = snapshot(tmp_path)
    proc = cli(["--input", "talk.mp4", "--frames", "2", *[a.format(tmp=tmp_path) for a in args]], cwd=tmp_path)
    line = one_error_line(proc)
    assert what in line and " and " in line
    assert snapshot(tmp_path) == before


def test_debug_strip_picture_that_is_the_input_is_refused(tmp_path):
    img = tmp_path / "me.png"
    shutil.copyfile(people_frames("dance-twirl")[0], img)
    before = snapshot(tmp_path)
    proc = cli(["--input", "me.png", "--output", str(img), "--debug-strip"], cwd=tmp_path)
    assert "is the input me.png" in one_error_line(proc)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("output", ["notes.txt/out.mp4", "notes.txt/frames/", "rgba:notes.txt/x/",
                                    "notes.txt/"])
def test_output_under_a_regular_file_is_one_line(output, talk, tmp_path):
    (tmp_path / "notes.txt").write_text("my notes\n")
    before = snapshot(tmp_path)
    proc = cli(["--input", "talk.mp4", "--output", output, "--frames", "2"], cwd=tmp_path)
    line = one_error_line(proc)
    assert "notes.txt is a file, not a folder" in line and "Traceback" not in proc.stderr
    assert snapshot(tmp_path) == before


def test_job_failing_on_a_missing_model_leaves_nothing(talk, tmp_path):
    empty = tmp_path / "no-models"
    empty.mkdir()
    before = snapshot(tmp_path)
    env = {"REALTIME_MODEL_DIR": str(empty), "REALTIME_CACHE_DIR": str(empty),
           "REALTIME_MODEL_URL_BASE": (tmp_path / "no-mirror").as_uri()}
    proc = cli(["--input", "talk.mp4", "--output", "new/deeper/out.mp4", "--output", "frames/a/",
                "--save-matte", "m/", "--frames", "3", "--quiet"], cwd=tmp_path, env=env)
    assert proc.returncode == 2 and "could not be downloaded" in proc.stderr, proc.stderr
    assert snapshot(tmp_path) == before  # no empty folders, no partial files, no cache folder


def test_interrupted_png_job_says_exactly_what_was_kept(tmp_path):
    png, mattes, video = tmp_path / "png", tmp_path / "m", tmp_path / "long.mp4"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--input", str(DATA / "talking" / "4.mp4"),
                             "--output", f"{png}/", "--output", str(video), "--save-matte", str(mattes), "--quiet"],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    with reaped(proc):
        deadline = time.monotonic() + 120
        while len(list(png.glob("*.png"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
    err = proc.stderr.read()
    assert rc == 130, err
    frames, kept_mattes = sorted(png.glob("[!.]*.png")), sorted(mattes.glob("[!.]*.png"))
    assert frames and kept_mattes
    assert f"{len(frames)} complete frames kept in {png}/" in err
    assert f"{len(kept_mattes)} complete frames kept in {mattes}/" in err
    assert f"unfinished {video} discarded" in err and "were discarded" not in err
    assert not video.exists() and not list(tmp_path.rglob(".*"))  # no temporary left behind
