"""A pyvirtualcam backend that captures frames in memory (no v4l2loopback device here).

Registered with ``pyvirtualcam.register_backend``; tests select it by name so the real
v4l2loopback backend stays the default for users.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pyvirtualcam

NAME = "test-capture"


class CaptureBackend:
    instances: list["CaptureBackend"] = []

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.fourcc = pyvirtualcam.util.decode_fourcc(fourcc)
        self._device = device or "/dev/video-test"
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.closed = False
        self.lock = threading.Lock()
        self.readers = 0   # apps that have the device open now (see Reader)
        CaptureBackend.instances.append(self)

    def send(self, frame: np.ndarray) -> None:
        with self.lock:
            self.frames.append(frame.copy())
            self.times.append(time.monotonic())

    def close(self) -> None:
        self.closed = True

    def readers_present(self) -> bool:
        """What a sink asks for idle mode: does any app have the device open?"""
        with self.lock:
            return self.readers > 0

    def open_reader(self) -> "Reader":
        return Reader(self)

    def device(self) -> str:
        return self._device

    def native_fourcc(self):
        return None


class Reader:
    """An app reading the virtual camera: opens the device (counted), reads frames, closes it."""

    def __init__(self, backend: CaptureBackend) -> None:
        self.backend = backend
        with backend.lock:
            backend.readers += 1
            self.opened_at = len(backend.frames)
        self.open = True

    def read(self, timeout: float = 2.0, after: int | None = None) -> tuple[int, np.ndarray] | None:
        """The first frame sent after frame number ``after`` (default: after the device was opened)."""
        start = self.opened_at if after is None else after + 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.backend.lock:
                if len(self.backend.frames) > start:
                    return start, self.backend.frames[start]
            time.sleep(0.005)
        return None

    def close(self) -> None:
        if self.open:
            with self.backend.lock:
                self.backend.readers -= 1
            self.open = False

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def register() -> type[CaptureBackend]:
    CaptureBackend.instances.clear()
    pyvirtualcam.register_backend(NAME, CaptureBackend)
    return CaptureBackend
