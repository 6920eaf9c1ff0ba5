"""Frames held in memory as sources: for the benchmark and the tests (a camera-like live feed,
or every frame in order like a file)."""

from __future__ import annotations

import time

import numpy as np

from realtime.core.errors import SourceError
from realtime.io.imagefile import frame_name
from realtime.io.sources import FrameReader, Source, SourceFrame


class ArrayReader(FrameReader):
    """Frames held in memory, delivered at ``fps`` like a camera, looping (benchmarks, tests)."""

    def __init__(self, frames: list[np.ndarray], fps: float = 30.0) -> None:
        if not frames:
            raise SourceError("ArrayReader needs at least one frame")
        self.frames = frames
        self.fps = fps
        self.height, self.width = frames[0].shape[:2]
        self.label = f"{len(frames)} frames in memory"
        self._i = 0
        self._next = 0.0

    def open(self) -> None:
        self._next = time.monotonic()

    def read(self) -> np.ndarray | None:
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next + 1.0 / self.fps, time.monotonic() - 1.0 / self.fps)
        frame = self.frames[self._i % len(self.frames)]
        self._i += 1
        return frame


class ArraySource(Source):
    """Frames held in memory, every one in order (``count`` of them, cycling), as a file job."""

    kind = "frames"

    def __init__(self, frames: list[np.ndarray], count: int | None = None, fps: float = 30.0,
                 start: int = 0) -> None:
        super().__init__()
        if not frames:
            raise SourceError("ArraySource needs at least one frame")
        self.frames = frames
        self.total = count or len(frames)
        self.fps = fps
        self.height, self.width = frames[0].shape[:2]
        self._start = start  # continue a stream: frame numbers and timestamps go on from here
        self._i = 0

    def read(self, timeout: float | None = None) -> SourceFrame | None:
        if self._i >= self.total:
            self.ended = True
            return None
        i = self._start + self._i
        self._i += 1
        return SourceFrame(self.frames[i % len(self.frames)], round(i * 1000.0 / self.fps), i,
                           frame_name(i, self._start + self.total),
                           time.perf_counter())
