"""Monocular depth: TCMonoDepth small, mapped to a stable disparity in [0, 1].

First version: letterboxed model input, a temporally smoothed percentile range, bilinear
upsampling, and the person forced to at least its own median disparity.
"""

from __future__ import annotations

import logging
from typing import Protocol

import cv2
import numpy as np

from . import models
from .config import DepthBackend as DepthBackendKind
from .config import DepthConfig
from .errors import ModelError
from .frames import check_frame, check_matte, readonly
from .stage import Stage

log = logging.getLogger(__name__)

MODEL_W, MODEL_H = 320, 192


class DepthBackend(Protocol):
    """A depth model: ``(1, 3, 192, 320)`` float32 RGB 0..255 in, ``(192, 320)`` relative inverse depth out."""

    def infer(self, x: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


class OnnxDepth:
    def __init__(self, path: str, threads: int = 2) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            self._sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ModelError(f"onnxruntime could not load {path} ({e})") from e
        self._input = self._sess.get_inputs()[0].name

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self._sess.run(None, {self._input: x})[0].reshape(MODEL_H, MODEL_W)

    def close(self) -> None:
        self._sess = None


class OpenCVDepth:
    def __init__(self, path: str) -> None:
        try:
            self._net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as e:
            raise ModelError(f"OpenCV could not load {path} ({e})") from e

    def infer(self, x: np.ndarray) -> np.ndarray:
        self._net.setInput(x)
        return self._net.forward().reshape(MODEL_H, MODEL_W)

    def close(self) -> None:
        self._net = None


def open_backend(cfg: DepthConfig) -> DepthBackend:
    path = models.resolve("tcmonodepth_small", cfg.model_path or None)
    if cfg.backend is DepthBackendKind.OPENCV:
        return OpenCVDepth(str(path))
    return OnnxDepth(str(path))


class DepthEstimator(Stage):
    """Frame + matte in, disparity ``(H, W) float32`` in [0, 1] (larger = nearer, read-only) out."""

    name = "depth"

    def __init__(self, config: DepthConfig, *, backend: DepthBackend | None = None) -> None:
        super().__init__()
        self.config = config
        self._backend = backend
        self.available = True
        if backend is None and config.enabled:
            try:
                self._backend = open_backend(config)
            except ModelError as e:
                log.warning("depth model unavailable, using a uniform background blur instead: %s", e)
                self.available = False
        self._range: np.ndarray | None = None
        self._disp: np.ndarray | None = None
        self._frame_no = 0

    def reset(self) -> None:
        super().reset()
        self._range = None
        self._frame_no = 0

    @property
    def uses_model(self) -> bool:
        return self.config.enabled and self._backend is not None

    def process(self, frame: np.ndarray, timestamp_ms: int, matte: np.ndarray) -> np.ndarray:
        self._begin(timestamp_ms)
        check_frame(frame)
        h, w = frame.shape[:2]
        check_matte(matte, (h, w))
        if self._disp is None or self._disp.shape != (h, w):
            self._disp = np.empty((h, w), np.float32)
        if not self.uses_model:
            bg = self.config.background_disparity
            np.multiply(matte, np.float32(1.0 - bg), out=self._disp)
            self._disp += np.float32(bg)
            return readonly(self._disp)
        if self._frame_no % self.config.every_n_frames == 0 or self._raw is None:
            self._raw = self._infer(frame)
        self._frame_no += 1
        raw = self._raw
        lo, hi = np.percentile(raw, [self.config.range_low_percentile, self.config.range_high_percentile])
        cur = np.array([lo, hi], np.float32)
        if self._range is None:
            self._range = cur
        else:
            a = np.float32(self.config.range_smoothing)
            self._range = a * self._range + (1 - a) * cur
        lo, hi = float(self._range[0]), float(self._range[1])
        small = np.clip((raw - lo) / max(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32)
        cv2.resize(small, (w, h), dst=self._disp, interpolation=cv2.INTER_LINEAR)
        person = matte > 0.5
        if person.any():
            med = np.float32(np.median(self._disp[person]))
            np.copyto(self._disp, matte * med + (1 - matte) * self._disp)
        return readonly(self._disp)

    _raw: np.ndarray | None = None

    def _infer(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        scale = min(MODEL_W / w, MODEL_H / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        x0, y0 = (MODEL_W - nw) // 2, (MODEL_H - nh) // 2
        canvas = np.zeros((MODEL_H, MODEL_W, 3), np.uint8)
        canvas[y0:y0 + nh, x0:x0 + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)
        x = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)
        out = self._backend.infer(x)
        return np.ascontiguousarray(out[y0:y0 + nh, x0:x0 + nw], dtype=np.float32)

    def _release(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
