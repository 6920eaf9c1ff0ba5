"""The picture is the user's: --size never stretches (crop or pad), odd sizes are written exactly or
refused, a folder of photos keeps each photo's size and processes each on its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import DATA
from realtime.io.fit import describe_fit, fit_frame
from realtime.io.memory import ArrayReader
from realtime.io.sources import LiveSource
from realtime.io.stills import numbered_sequence
from test_paths import cli, one_error_line, snapshot

STILLS = DATA / "stills"


def _disc(w: int, h: int) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(w, h) // 6, (255, 255, 255), -1)
    return img


def _blob_aspect(img: np.ndarray) -> float:
    ys, xs = np.nonzero(img[..., 0] > 127)
    return (xs.max() - xs.min() + 1) / (ys.max() - ys.min() + 1)


@pytest.mark.parametrize("fit", ["crop", "pad"])
@pytest.mark.parametrize("src, dst", [((512, 512), (1920, 1080)), ((640, 480), (1280, 720)),
                                      ((1280, 720), (480, 640)), ((300, 200), (641, 481))])
def test_fit_keeps_circles_round_and_meets_the_size_exactly(src, dst, fit):
    out = fit_frame(_disc(*src), dst, fit)
    assert out.shape == (dst[1], dst[0], 3) and out.flags.c_contiguous
    assert abs(_blob_aspect(out) - 1.0) < 0.03  # stretching would make the disc an ellipse
    if fit == "pad" and src[0] * dst[1] != src[1] * dst[0]:
        assert out[:, :2].max() == 0 or out[:2].max() == 0  # black bars on the short sides


def test_describe_fit_says_what_was_done():
    assert describe_fit((512, 512), (1920, 1080), "crop") == "512x512 -> 1920x1080 (scaled 3.75, cropped to 16:9)"
    assert describe_fit((512, 512), (1920, 1080), "pad") == "512x512 -> 1920x1080 (scaled 2.11, padded to 16:9)"
    assert describe_fit((640, 360), (1280, 720)) == "640x360 -> 1280x720 (scaled 2.00)"
    assert describe_fit((640, 360), (640, 360)) is None


@pytest.fixture
def talk(tmp_path) -> Path:
    clip = tmp_path / "talk.mp4"
    shutil.copyfile(DATA / "talking" / "5.mp4", clip)  # 524x524
    return clip


def test_size_on_a_square_clip_crops_and_says_so(talk, tmp_path):
    proc = cli(["--input", "talk.mp4", "--size", "960x540", "--output", "out/", "--frames", "1"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "524x524 -> 960x540 (scaled 1.83, cropped to 16:9)" in proc.stderr
    out = cv2.imread(str(tmp_path / "out" / "00000.png"))
    assert out.shape == (540, 960, 3)
    cap = cv2.VideoCapture(str(talk))
    first = cap.read()[1]
    cap.release()
    centre = (slice(120, 420), slice(330, 630))  # the face, kept sharp by the lens
    cropped = fit_frame(first, (960, 540), "crop")[centre].astype(np.int16)
    stretched = cv2.resize(first, (960, 540))[centre].astype(np.int16)
    got = out[centre].astype(np.int16)
    assert np.abs(got - cropped).mean() < 0.5 * np.abs(got - stretched).mean()


def test_fit_pad_letterboxes(talk, tmp_path):
    proc = cli(["--input", "talk.mp4", "--size", "960x540", "--fit", "pad", "--output", "out/", "--frames", "1"],
               cwd=tmp_path)
    assert proc.returncode == 0 and "padded to 16:9" in proc.stderr
    out = cv2.imread(str(tmp_path / "out" / "00000.png"))
    assert out.shape == (540, 960, 3)
    assert out[:, :200].mean() < 4 and out[:, 420:540].mean() > 30  # bars left and right, the picture between


def test_odd_size_is_written_exactly_or_refused(talk, tmp_path):
    proc = cli(["--input", "talk.mp4", "--size", "641x481", "--output", "png/", "--frames", "1", "--quiet"],
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert cv2.imread(str(tmp_path / "png" / "00000.png")).shape == (481, 641, 3)
    before = snapshot(tmp_path)
    proc = cli(["--input", "talk.mp4", "--size", "641x481", "--output", "x.mp4", "--frames", "2"], cwd=tmp_path)
    line = one_error_line(proc)
    assert "x.mp4 needs an even width and height, got 641x481" in line and "--size 640x480" in line
    assert snapshot(tmp_path) == before


def _photos(folder: Path, sizes, names) -> list[Path]:
    folder.mkdir()
    out = []
    for src, size, name in zip(sorted(STILLS.glob("*.jpg")), sizes, names):
        img = cv2.imread(str(src))
        p = folder / name
        cv2.imwrite(str(p), fit_frame(img, size, "crop"), [cv2.IMWRITE_JPEG_QUALITY, 95])
        out.append(p)
    return out


def test_folder_of_photos_keeps_each_size(tmp_path):
    sizes = [(300, 200), (160, 240), (400, 266)]
    _photos(tmp_path / "photos", sizes, ["a.jpg", "b.jpg", "c.jpg"])
    proc = cli(["--input", "photos", "--output", "out/"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "as stills" in proc.stderr and "each at its own size" in proc.stderr
    for name, (w, h) in zip("abc", sizes):
        assert cv2.imread(str(tmp_path / "out" / f"{name}.png")).shape == (h, w, 3)
    # one video cannot hold them: refused before anything is written
    before = snapshot(tmp_path)
    line = one_error_line(cli(["--input", "photos", "--output", "all.mp4"], cwd=tmp_path))
    assert "differ in size" in line and "--size" in line
    assert snapshot(tmp_path) == before


def test_stills_are_processed_each_on_its_own(tmp_path):
    """Same size, unrelated photos: the second comes out exactly as when it is processed alone
    (temporal state reset); numbered as frames of a video, it carries the first one's state."""
    _photos(tmp_path / "photos", [(320, 240)] * 2, ["beach.jpg", "office.jpg"])
    _photos(tmp_path / "frames", [(320, 240)] * 2, ["00000.jpg", "00001.jpg"])
    (tmp_path / "alone").mkdir()
    shutil.copyfile(tmp_path / "photos" / "office.jpg", tmp_path / "alone" / "office.jpg")
    for folder in ("photos", "frames", "alone"):
        proc = cli(["--input", folder, "--output", f"out-{folder}/", "--save-depth", f"d-{folder}", "--quiet"],
                   cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr

    def read(path: str) -> np.ndarray:
        return cv2.imread(str(tmp_path / path), cv2.IMREAD_UNCHANGED).astype(np.int16)

    assert np.abs(read("out-photos/office.png") - read("out-alone/office.png")).mean() < 0.01
    assert np.abs(read("d-photos/office.png") - read("d-alone/office.png")).mean() < 0.01
    # as frames of one video the depth carries the first photo's state: what the reset avoids
    assert np.abs(read("d-frames/00001.png") - read("d-alone/office.png")).mean() > 2.0
    proc = cli(["--input", "frames", "--output", "f2/", "--save-depth", "d2", "--stills", "--quiet"], cwd=tmp_path)
    assert proc.returncode == 0 and np.abs(read("d2/00001.png") - read("d-alone/office.png")).mean() < 0.01


def test_numbered_names_rule():
    p = [Path(n) for n in ("00000.jpg", "00001.jpg", "00002.jpg")]
    assert numbered_sequence(p)
    assert numbered_sequence([Path("frame_0007.png"), Path("frame_0008.png")])
    assert not numbered_sequence([Path("IMG_0001.jpg"), Path("IMG_0005.jpg")])  # gaps: separate photos
    assert not numbered_sequence([Path("beach.jpg"), Path("office.jpg")])
    assert not numbered_sequence([Path("a1.jpg"), Path("b2.jpg")])


def test_camera_with_another_aspect_is_fitted_not_stretched():
    frames = [_disc(640, 480)]
    with LiveSource(ArrayReader(frames, fps=60.0), size=(1280, 720), fit="crop") as src:
        assert src.size == (1280, 720)
        assert "camera gives 640x480, not the 1280x720 asked: 640x480 -> 1280x720 (scaled 2.00, cropped to 16:9)" \
            in src.describe()
        sf = None
        while sf is None:
            sf = src.read(timeout=1.0)
        assert sf.frame.shape == (720, 1280, 3) and abs(_blob_aspect(sf.frame) - 1.0) < 0.03
