"""Inputs that are hostile or unlucky (issue 19): names that are not UTF-8, huge pictures,
photos with an EXIF orientation, truncated JPEGs, colliding names, long inputs. The real CLI."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import cv2
import numpy as np

from conftest import DATA
from hostile import CLIP, cli
from realtime.io.imagefile import ENV_MAX_PIXELS, frame_name
from realtime.io.memory import ArraySource

STILL = DATA / "stills" / "doctor-5871743_640.jpg"
FAST = ["--preset", "blur-only", "--quiet"]


def _small_jpeg(w: int = 160, h: int = 120) -> bytes:
    img = cv2.resize(cv2.imread(str(STILL)), (w, h), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", img)[1].tobytes()


def _with_orientation(jpeg: bytes, orientation: int) -> bytes:
    """The JPEG with an EXIF APP1 segment holding only the orientation tag (big-endian TIFF)."""
    tiff = b"MM\0*" + struct.pack(">I", 8) + struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) \
        + struct.pack(">I", 0)
    app1 = b"Exif\0\0" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def _one_line_exit_2(r, *expect: str) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    for e in expect:
        assert e in lines[0], lines[0]
    return lines[0]


def test_non_utf8_names_in_and_out(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.jpg").write_bytes(_small_jpeg())
    bad = os.fsencode(inputs) + b"/b\xff.jpg"
    with open(bad, "wb") as f:
        f.write(_small_jpeg())
    out = os.fsencode(tmp_path) + b"/out\xfe/"
    r = cli("--input", inputs, "--output", out, *FAST)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == [b"a.png", b"b\xff.png"]
    assert cv2.imdecode(np.fromfile(os.fsdecode(out + b"b\xff.png"), np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)
    # a video in and out under such names
    clip = os.fsencode(tmp_path) + b"/clip\xff.mp4"
    shutil.copyfile(CLIP, clip)
    video = os.fsencode(tmp_path) + b"/v\xfd/out\xfc.mp4"
    r = cli("--input", clip, "--output", video, "--frames", "3", "--size", "128x128", *FAST)
    assert r.returncode == 0, r.stderr
    assert os.path.getsize(video) > 0
    assert not [n for n in os.listdir(os.path.dirname(video)) if n != b"out\xfc.mp4"]


def test_huge_png_header_is_one_line(tmp_path):
    png = tmp_path / "huge.png"
    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0\0\0\0" + b"\0" * 64)
    r = cli("--input", png, "--output", f"{tmp_path}/out/", *FAST)
    _one_line_exit_2(r, "40000x40000", "pixel cap", ENV_MAX_PIXELS)
    assert not (tmp_path / "out").exists()


def test_large_jpeg_is_decoded_smaller_and_said(tmp_path):
    img = tmp_path / "big.jpg"
    img.write_bytes(_small_jpeg(640, 480))
    r = cli("--input", img, "--output", f"{tmp_path}/out/", "--preset", "blur-only", env={ENV_MAX_PIXELS: "100000"})
    assert r.returncode == 0, r.stderr
    assert "pixel cap" in r.stderr and "1/2 size" in r.stderr  # 640x480 -> 320x240 under 100000 pixels
    assert cv2.imread(str(tmp_path / "out" / "00000.png")).shape == (240, 320, 3)


def test_video_above_the_cap_needs_size(tmp_path):
    r = cli("--input", CLIP, "--output", tmp_path / "v.mp4", "--frames", "2", *FAST, env={ENV_MAX_PIXELS: "100000"})
    _one_line_exit_2(r, "524x524", "--size")
    r = cli("--input", CLIP, "--output", tmp_path / "v.mp4", "--frames", "2", "--size", "256x256", *FAST,
            env={ENV_MAX_PIXELS: "100000"})
    assert r.returncode == 0, r.stderr


def test_exif_orientation_is_honoured(tmp_path):
    photo = tmp_path / "phone.jpg"
    photo.write_bytes(_with_orientation(_small_jpeg(200, 120), 6))  # stored 200x120, shown 120x200
    r = cli("--input", photo, "--output", f"{tmp_path}/out/", *FAST)
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(tmp_path / "out" / "00000.png")).shape == (200, 120, 3)


def test_truncated_jpeg_is_warned_and_counted(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = _small_jpeg()
    (inputs / "good.jpg").write_bytes(good)
    (inputs / "cut.jpg").write_bytes(good[: len(good) * 6 // 10])
    r = cli("--input", inputs, "--output", f"{tmp_path}/out/", "--preset", "blur-only")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "truncated" in ln]
    assert any("cut.jpg" in ln and "is truncated" in ln for ln in lines), r.stderr
    assert any("1 input picture(s) were truncated" in ln for ln in lines), r.stderr
    assert not any("good.jpg" in ln for ln in lines)


def test_colliding_names_keep_their_extension(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a.jpg", "a.png", "b.jpg"):
        img = cv2.imdecode(np.frombuffer(_small_jpeg(), np.uint8), cv2.IMREAD_COLOR)
        cv2.imwrite(str(inputs / name), img)
    r = cli("--input", inputs, "--output", f"{tmp_path}/out/", "--preset", "blur-only")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["a.jpg.png", "a.png.png", "b.png"]
    assert "inputs share a name" in r.stderr


def test_frame_names_widen_past_100000_frames():
    assert frame_name(7, 122) == "00007"
    assert frame_name(7, 100_000) == "00007"
    assert frame_name(7, 100_001) == "000007"
    names = [frame_name(i, 150_000) for i in (9, 99_999, 100_000, 149_999)]
    assert names == sorted(names) and len(set(map(len, names))) == 1
    src = ArraySource([np.zeros((8, 8, 3), np.uint8)], count=3, start=100_000)
    assert [f.name for f in src] == ["100000", "100001", "100002"]
    long = ArraySource([np.zeros((8, 8, 3), np.uint8)], count=100_001)
    assert long.read().name == "000000"


def test_live_frame_names_sort_for_days():
    from realtime.io.memory import ArrayReader
    from realtime.io.sources import LiveSource

    with LiveSource(ArrayReader([np.zeros((8, 8, 3), np.uint8)], fps=200)) as src:
        frame = None
        while frame is None:
            frame = src.read(timeout=1.0)
    assert frame.name == "00000000"
