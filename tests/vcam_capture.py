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
        CaptureBackend.instances.append(self)

    def send(self, frame: np.ndarray) -> None:
        with self.lock:
            self.frames.append(frame.copy())
            self.times.append(time.monotonic())

    def close(self) -> None:
        self.closed = True

    def device(self) -> str:
        return self._device

    def native_fourcc(self):
        return None


def register() -> type[CaptureBackend]:
    CaptureBackend.instances.clear()
    pyvirtualcam.register_backend(NAME, CaptureBackend)
    return CaptureBackend
