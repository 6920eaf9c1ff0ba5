"""Where the lens focuses: a disparity value per frame.

First version: the median disparity of the person (or the configured fixed value / point).
"""

from __future__ import annotations

import numpy as np

from .config import FocusConfig, FocusMode
from .stage import Stage


class FocusTracker(Stage):
    name = "focus"

    def __init__(self, config: FocusConfig) -> None:
        super().__init__()
        self.config = config
        self.override: float | None = None  # set by click-to-focus / --focus

    def process(self, frame: np.ndarray, timestamp_ms: int, matte: np.ndarray, disparity: np.ndarray) -> float:
        self._begin(timestamp_ms)
        if self.override is not None:
            return float(self.override)
        cfg = self.config
        if cfg.mode is FocusMode.FIXED:
            return float(cfg.disparity)
        if cfg.mode is FocusMode.POINT:
            h, w = disparity.shape
            return float(disparity[min(h - 1, int(cfg.point_y * h)), min(w - 1, int(cfg.point_x * w))])
        person = matte > 0.5
        if person.any():
            return float(np.median(disparity[person]))
        return float(cfg.disparity)
