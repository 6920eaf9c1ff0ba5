"""Temporal stabiliser for the matte and the disparity.

First version: a plain exponential moving average with its own state buffers (never an alias
of what it hands out).
"""

from __future__ import annotations

import numpy as np

from .config import TemporalConfig
from .frames import check_frame, check_matte, readonly
from .stage import Stage


class Stabiliser(Stage):
    name = "temporal"

    def __init__(self, config: TemporalConfig) -> None:
        super().__init__()
        self.config = config
        self._state_matte: np.ndarray | None = None
        self._state_disp: np.ndarray | None = None
        self._out_matte: np.ndarray | None = None
        self._out_disp: np.ndarray | None = None

    def reset(self) -> None:
        super().reset()
        self._state_matte = None
        self._state_disp = None

    def process(self, frame: np.ndarray, timestamp_ms: int, matte: np.ndarray,
                disparity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._begin(timestamp_ms)
        check_frame(frame)
        shape = frame.shape[:2]
        check_matte(matte, shape)
        check_matte(disparity, shape, "disparity")
        if not self.config.enabled:
            return matte, disparity
        if self._state_matte is None or self._state_matte.shape != shape:
            self._state_matte = np.array(matte, np.float32, copy=True)
            self._state_disp = np.array(disparity, np.float32, copy=True)
            self._out_matte = np.empty(shape, np.float32)
            self._out_disp = np.empty(shape, np.float32)
        else:
            a = np.float32(self.config.matte_smoothing * 0.5)
            self._state_matte *= a
            self._state_matte += (1 - a) * matte
            b = np.float32(self.config.depth_smoothing * 0.5)
            self._state_disp *= b
            self._state_disp += (1 - b) * disparity
        np.copyto(self._out_matte, self._state_matte)
        np.copyto(self._out_disp, self._state_disp)
        return readonly(self._out_matte), readonly(self._out_disp)
