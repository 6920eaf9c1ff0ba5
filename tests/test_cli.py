"""The command-line contract: real pipeline, file source, PNG/mp4/virtual-camera sinks, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import vcam_capture
from conftest import DATA, ROOT, people_frames, reaped
from realtime.app.cli import main
from realtime.devtools.testdata import read_video

N = 6


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("frames")
    for p in people_frames("dance-twirl")[:N]:
        (d / p.name).symlink_to(p)
    return d


def _read_video(path: Path) -> list[np.ndarray]:
    return read_video(path)


def _nearest(out: np.ndarray, inputs: list[np.ndarray]) -> int:
    return int(np.argmin([np.abs(out.astype(np.int16) - i).mean() for i in inputs]))


def test_folder_to_mp4_png_and_saves(frames_dir, tmp_path, capsys):
    video, pngs, mattes, depth = tmp_path / "out.mp4", tmp_path / "png", tmp_path / "m", tmp_path / "d"
    rc = main(["--input", str(frames_dir), "--output", str(video), "--output", f"{pngs}/",
               "--save-matte", str(mattes), "--save-depth", str(depth), "--quiet"])
    assert rc == 0
    inputs = [cv2.imread(str(p)) for p in sorted(frames_dir.iterdir())]
    names = [p.stem for p in sorted(frames_dir.iterdir())]
    # PNG frames: same names as the inputs, same size, in order
    outs = sorted(pngs.iterdir())
    assert [p.stem for p in outs] == names
    for i, p in enumerate(outs):
        img = cv2.imread(str(p))
        assert img.shape == inputs[0].shape
        assert _nearest(img, inputs) == i
    # mp4: every frame, right size, right order
    frames = _read_video(video)
    assert len(frames) == N and frames[0].shape == inputs[0].shape
    assert [_nearest(f, inputs) for f in frames] == list(range(N))
    # mattes and depth: 8-bit, input size, same names
    for folder in (mattes, depth):
        files = sorted(folder.iterdir())
        assert [p.stem for p in files] == names
        m = cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED)
        assert m.dtype == np.uint8 and m.ndim == 2 and m.shape == inputs[0].shape[:2]
    m = cv2.imread(str(sorted(mattes.iterdir())[0]), cv2.IMREAD_UNCHANGED)
    assert m.max() > 200 and m.min() < 50  # a person and a background
    assert not list(tmp_path.glob(".*partial*"))


def test_video_input_names_frames_from_zero(tmp_path):
    rc = main(["--input", str(DATA / "talking" / "5.mp4"), "--output", f"{tmp_path}/", "--frames", "3",
               "--size", "262x262", "--quiet"])
    assert rc == 0
    outs = sorted(tmp_path.glob("*.png"))
    assert [p.name for p in outs] == ["00000.png", "00001.png", "00002.png"]
    assert cv2.imread(str(outs[0])).shape == (262, 262, 3)


def test_single_image_input(tmp_path):
    img = people_frames("breakdance")[0]
    rc = main(["--input", str(img), "--output", f"{tmp_path}/out/", "--quiet"])
    assert rc == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["00000.png"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_single_image_to_picture_files(tmp_path):
    """``--output photo.jpg`` (and rgba:/matte: pictures) for an image input: one file each, the
    same picture as the PNG frame output, alpha = the matte, the mode a new file gets."""
    from realtime.core.file_mode import FILE_MODE

    img = people_frames("dance-twirl")[0]
    rc = main(["--input", str(img), "--output", str(tmp_path / "out.jpg"), "--output", f"rgba:{tmp_path}/cut.png",
               "--output", f"matte:{tmp_path}/sub/m.png", "--output", f"{tmp_path}/frames/", "--quiet"])
    assert rc == 0
    frame = cv2.imread(str(tmp_path / "frames" / "00000.png"))
    jpg = cv2.imread(str(tmp_path / "out.jpg"))
    cut = cv2.imread(str(tmp_path / "cut.png"), cv2.IMREAD_UNCHANGED)
    matte = cv2.imread(str(tmp_path / "sub" / "m.png"), cv2.IMREAD_UNCHANGED)
    assert jpg.shape == frame.shape == cv2.imread(str(img)).shape
    assert np.abs(jpg.astype(np.int16) - frame).mean() < 3  # JPEG of the same picture
    assert np.array_equal(cut[..., :3], frame) and np.array_equal(cut[..., 3], matte)
    assert matte.min() == 0 and matte.max() >= 250
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.png", "frames", "out.jpg", "sub"]  # no temporaries
    assert FILE_MODE == 0o666 & ~_umask()
    for p in (tmp_path / "out.jpg", tmp_path / "cut.png", tmp_path / "sub" / "m.png", tmp_path / "frames" / "00000.png"):
        assert p.stat().st_mode & 0o777 == FILE_MODE, p  # not the temporary's 0600


def test_picture_output_of_a_video_needs_frames_1(tmp_path, capsys):
    """A video into one picture is refused before anything is written; with --frames 1 it is
    the first frame, the same as the first PNG frame of a folder output."""
    clip = str(DATA / "talking" / "5.mp4")
    assert main(["--input", clip, "--output", str(tmp_path / "p.png")]) == 2
    assert "one picture, but the input has 122 frames" in _err(capsys) and not list(tmp_path.iterdir())
    rc = main(["--input", clip, "--output", str(tmp_path / "p.png"), "--output", f"{tmp_path}/f/", "--frames", "1",
               "--quiet"])
    assert rc == 0
    assert np.array_equal(cv2.imread(str(tmp_path / "p.png")), cv2.imread(str(tmp_path / "f" / "00000.png")))


def test_virtual_camera_receives_every_frame(frames_dir):
    backend = vcam_capture.register()
    rc = main(["--input", str(frames_dir), "--output", "virtualcam", "--vcam-backend", vcam_capture.NAME,
               "--vcam-format", "bgr", "--fps", "30", "--quiet"])
    assert rc == 0
    cam = backend.instances[-1]
    assert cam.closed
    h, w = cv2.imread(str(sorted(frames_dir.iterdir())[0])).shape[:2]
    assert (cam.width, cam.height) == (w, h)
    assert cam.frames and cam.frames[0].size == w * h * 3
    # the sender runs at a steady rate and never shows the raw input
    inputs = [cv2.imread(str(p)) for p in sorted(frames_dir.iterdir())]
    for f in cam.frames:
        f = f.reshape(h, w, 3)
        assert min(np.abs(f.astype(np.int16) - i).mean() for i in inputs) > 0.2


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, no traceback
    return err[0]


@pytest.mark.parametrize("argv, expect", [
    (["--input", "/nonexistent/clip.mp4", "--output", "null"], "does not exist"),
    (["--input", "7", "--output", "null"], "camera 7 not found"),
    (["--input", "{frames}", "--output", "null", "--preset", "{bad_preset}"], "unknown key 'render.radius'"),
    (["--input", "{frames}", "--output", "null", "--preset", "cinema"], "unknown preset 'cinema'"),
    (["--input", "{frames}", "--output", "out.png"], "one picture, but the input has 6 frames"),
    (["--input", "{frames}", "--output", "rgba:out.jpg"], ".jpg has no alpha channel"),
    (["--input", "{frames}", "--output", "null", "--size", "big"], "WIDTHxHEIGHT"),
    (["--input", "{frames}", "--output", "null", "--focus", "eyes"], "--focus eyes"),
    (["--input", "{frames}", "--output", "virtualcam", "--vcam-backend", vcam_capture.NAME, "--size", "641x480"],
     "even width and height"),
    (["--input", "{unreadable}", "--output", "null"], "cannot be decoded"),
    (["--bogus"], "unrecognized arguments"),
])
def test_bad_input_one_line_exit_2(argv, expect, frames_dir, tmp_path, capsys):
    vcam_capture.register()
    bad = tmp_path / "bad.toml"
    bad.write_text("[render]\nradius = 3\n")
    unreadable = tmp_path / "broken.jpg"
    unreadable.write_bytes(b"\xff\xd8 not really a jpeg")
    argv = [a.format(frames=frames_dir, bad_preset=bad, unreadable=unreadable) for a in argv]
    assert main(argv) == 2
    line = _err(capsys)
    assert line.startswith("portrait-cam: error:") and expect in line


def test_no_loopback_device_says_the_fix(frames_dir, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("REALTIME_VCAM_BACKEND", raising=False)
    monkeypatch.setattr("realtime.io.sinks.loopback_devices", lambda *a: [])
    assert main(["--input", str(frames_dir), "--output", "virtualcam"]) == 2
    assert 'sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label="Portrait Cam"' in _err(capsys)


def test_default_run_without_camera_or_loopback_exits_2(capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("realtime.io.sinks.loopback_devices", lambda *a: [])
    monkeypatch.setattr("realtime.io.pipewire.available", lambda *a: (False, "no PipeWire daemon at /run/x"))
    assert main([]) == 2
    err = _err(capsys)
    assert "modprobe v4l2loopback" in err and "no PipeWire camera (no PipeWire daemon at /run/x)" in err


def test_sigterm_stops_cleanly_and_discards_partial_file(tmp_path):
    out = tmp_path / "long.mp4"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--input", str(DATA / "talking" / "4.mp4"),
                             "--output", str(out), "--output", f"{tmp_path}/png/", "--quiet"],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    with reaped(proc):
        deadline = time.monotonic() + 60
        while not list((tmp_path / "png").glob("*.png")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=20)
    err = proc.stderr.read()
    assert rc == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_debug_strip_writes_one_labelled_picture(tmp_path):
    img = people_frames("dance-twirl")[10]
    out = tmp_path / "strip.png"
    assert main(["--input", str(img), "--output", str(out), "--debug-strip", "--quiet"]) == 0
    strip = cv2.imread(str(out))
    h, w = cv2.imread(str(img)).shape[:2]
    assert strip.shape[0] == 240 and strip.shape[1] >= 5 * round(w * 240 / h)
    # five different tiles: input, output, matte, disparity, CoC
    tw = round(w * 240 / h)
    tiles = [strip[20:, i * (tw + 2):i * (tw + 2) + tw].astype(np.int16) for i in range(5)]
    for a in range(5):
        for b in range(a + 1, 5):
            assert np.abs(tiles[a] - tiles[b]).mean() > 2


def test_debug_strip_needs_one_picture_output(capsys):
    assert main(["--input", str(people_frames("dance-twirl")[0]), "--output", "out.mp4", "--debug-strip"]) == 2
    assert "--debug-strip writes one picture" in _err(capsys)


def test_overlay_outputs_alpha_is_the_matte(frames_dir, tmp_path):
    rgba, mattes, mvid, mdir = tmp_path / "rgba", tmp_path / "m", tmp_path / "matte.mp4", tmp_path / "md"
    rc = main(["--input", str(frames_dir), "--output", f"rgba:{rgba}/", "--output", f"matte:{mvid}",
               "--output", f"matte:{mdir}/", "--save-matte", str(mattes), "--quiet"])
    assert rc == 0
    names = [p.stem for p in sorted(frames_dir.iterdir())]
    assert [p.stem for p in sorted(rgba.iterdir())] == names
    assert [p.stem for p in sorted(mdir.iterdir())] == names
    for name in names:
        px = cv2.imread(str(rgba / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        m = cv2.imread(str(mattes / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert px.shape[2] == 4 and px.dtype == np.uint8
        assert np.array_equal(px[..., 3], m)  # alpha = the final matte
        assert np.array_equal(cv2.imread(str(mdir / f"{name}.png"), cv2.IMREAD_UNCHANGED), m)
        assert m.min() == 0 and m.max() >= 250  # transparent background, opaque person
    video = _read_video(mvid)
    assert len(video) == N
    first = cv2.imread(str(mattes / f"{names[0]}.png"), cv2.IMREAD_UNCHANGED)
    assert np.abs(video[0][..., 0].astype(np.int16) - first).mean() < 3  # grey video of the matte (lossy codec)


def test_sigterm_on_a_live_run_releases_everything(tmp_path):
    """A live source into the virtual camera, stopped by SIGTERM: exit 0, camera reader and
    virtual camera closed, no thread of ours left (the autouse fixture checks threads)."""
    import threading

    backend = vcam_capture.register()
    out = tmp_path / "rec.mp4"
    stop = threading.Event()

    def terminate_once_running():
        # once processed frames flow (not during model loading), like a user stopping a call
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            frames = backend.instances[-1].frames if backend.instances else []
            if len(frames) > 10 and all(f.any() for f in frames[-5:]):
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=terminate_once_running)
    killer.start()
    try:
        rc = main(["--input", str(DATA / "talking" / "5.mp4"), "--live", "--size", "320x320", "--output", "virtualcam",
                   "--vcam-backend", vcam_capture.NAME, "--vcam-format", "bgr", "--output", str(out), "--quiet"])
    finally:
        stop.set()
        killer.join()
    assert rc == 0
    cam = backend.instances[-1]
    assert cam.closed and len(cam.frames) > 10
    assert out.exists() and len(_read_video(out)) >= 3  # a live recording is kept when stopped
    assert not [t for t in threading.enumerate() if t.name.startswith("portrait-cam")]
