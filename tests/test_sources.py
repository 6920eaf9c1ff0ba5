"""Sources: files in order, live sources hand over the newest frame, lose and regain devices."""

from __future__ import annotations

import time

import pytest

from conftest import DATA, people_frames
from realtime.core.errors import SourceError
from realtime.io.sources import (FrameReader, ImageFolderSource, LiveSource, ReplayReader, VideoFileSource,
                              open_source, parse_size)

CLIP = DATA / "talking" / "5.mp4"


def test_folder_source_sorted_every_frame(tmp_path):
    paths = people_frames("breakdance")[:5]
    for p in reversed(paths):  # creation order must not matter
        (tmp_path / p.name).symlink_to(p)
    (tmp_path / "notes.txt").write_text("not an image")
    src = open_source(str(tmp_path))
    names = [f.name for f in src]
    assert names == [p.stem for p in paths]
    assert src.ended and src.total == 5


def test_video_source_every_frame_in_order():
    with VideoFileSource(CLIP) as src:
        ts = [f.timestamp_ms for f in src]
    assert len(ts) == src.total == 122
    assert all(b > a for a, b in zip(ts, ts[1:]))
    assert ts[1] - ts[0] == round(1000 / src.fps)


def test_resize_on_input():
    with open_source(str(CLIP), size=(200, 100)) as src:
        f = src.read()
    assert f.frame.shape == (100, 200, 3) and f.frame.flags.c_contiguous


def test_unreadable_image_in_folder_is_named(tmp_path):
    (tmp_path / "a.png").symlink_to(people_frames("breakdance")[0])
    (tmp_path / "b.png").write_bytes(b"garbage")
    src = ImageFolderSource.from_folder(tmp_path)
    src.read()
    with pytest.raises(SourceError, match="b.png cannot be decoded"):
        src.read()


def test_empty_folder(tmp_path):
    with pytest.raises(SourceError, match="holds no images"):
        open_source(str(tmp_path))


def test_parse_size():
    assert parse_size("1280x720") == (1280, 720)
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_size("1280*720")


def test_live_source_hands_newest_and_counts_drops():
    with LiveSource(ReplayReader(CLIP, fps=60)) as src:
        got = []
        for _ in range(6):
            time.sleep(0.1)  # a slow consumer: ~5 frames arrive per read
            f = src.read(timeout=1.0)
            assert f is not None
            got.append(f)
        assert src.dropped >= 15
    ts = [f.timestamp_ms for f in got]
    assert all(b > a for a, b in zip(ts, ts[1:]))
    # handed over fresh: grabbed within ~2 frame intervals of being read
    assert max(time.perf_counter() - f.captured_at for f in got[-1:]) < 0.5


class FlakyReader(FrameReader):
    """A replayed clip whose 'device' disappears for a while (reads fail, reopening fails)."""

    def __init__(self) -> None:
        self.inner = ReplayReader(CLIP, fps=30)
        self.label = "flaky camera"
        self.unplugged_until = 0.0

    def open(self) -> None:
        if time.monotonic() < self.unplugged_until:
            raise SourceError("device gone")
        self.inner.open()
        self.width, self.height, self.fps = self.inner.width, self.inner.height, self.inner.fps

    def read(self):
        if time.monotonic() < self.unplugged_until:
            time.sleep(0.01)
            return None
        return self.inner.read()

    def close(self) -> None:
        self.inner.close()


def test_live_source_detects_loss_and_reconnects():
    reader = FlakyReader()
    with LiveSource(reader, loss_timeout=0.5) as src:
        assert src.read(timeout=1.0) is not None
        t_unplug = time.monotonic()
        reader.unplugged_until = t_unplug + 1.5
        while not src.lost and time.monotonic() - t_unplug < 3:
            time.sleep(0.01)
        assert src.lost and src.error
        assert time.monotonic() - t_unplug < 1.0  # detected within 1 s
        while src.lost and time.monotonic() - t_unplug < 6:
            time.sleep(0.01)
        assert not src.lost
        assert time.monotonic() - reader.unplugged_until < 3.0  # back within 3 s of the device
        f = src.read(timeout=1.0)
        assert f is not None and f.generation == 1 and src.reconnects == 1


def test_camera_that_does_not_exist():
    with pytest.raises(SourceError, match="camera 9 not found"):
        open_source(9)
