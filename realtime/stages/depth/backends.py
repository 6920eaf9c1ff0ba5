"""The depth model behind one small interface: onnxruntime (its session options from
:mod:`realtime.core.threads`, the split-off last layer from :mod:`.graph`) or cv2.dnn."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from realtime.core import models
from realtime.core.config import DepthBackend, DepthConfig
from realtime.core.errors import ModelError
from realtime.core.frames import readonly
from realtime.core.threads import model_spins, model_threads, onnx_session_options
from shaders.depth import final_conv_up2

from .graph import FinalConv, split_final_conv

log = logging.getLogger(__name__)

MODEL_W, MODEL_H = 320, 192


class DepthModel(Protocol):
    """A depth model: ``(1, 3, 192, 320)`` float32 RGB 0..255 in, ``(192, 320)`` relative inverse depth out."""

    def infer(self, x: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


class OnnxDepth:
    """onnxruntime on the CPU (the default: measured faster than cv2.dnn, see docs/depth.md).

    With ``split`` (the default) the model's last layer runs in :func:`shaders.depth.final_conv_up2`
    instead of onnxruntime (see :mod:`.graph`: the model faster for the same output, docs/depth.md),
    if the file ends the way TCMonoDepth does and, checked once at load on a test
    input, gives the same output as the whole model; otherwise the whole model runs.
    """

    def __init__(self, path: str, threads: int = 2, spin: bool = False, split: bool = True) -> None:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise ModelError(f"could not read the depth model {path} ({e})") from e
        self._sess = self._session(data, path, threads, spin)
        self._input = self._sess.get_inputs()[0].name
        self._tail: FinalConv | None = None
        self.split = False  # the last layer runs outside onnxruntime
        cut = split_final_conv(data) if split else None
        if cut is not None:
            self._try_split(cut, path, threads, spin)

    @staticmethod
    def _session(data: bytes, path: str, threads: int, spin: bool):
        import onnxruntime as ort

        so = onnx_session_options(threads, spin)
        try:
            return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise ModelError(f"onnxruntime could not load {path} ({e})") from e

    def _try_split(self, cut: FinalConv, path: str, threads: int, spin: bool) -> None:
        try:
            head = self._session(cut.head, path, threads, spin)
        except ModelError as e:
            log.info("depth model run whole: its last layer could not be split off (%s)", e)
            return
        c = cut.weight.shape[0]
        self._conv = np.empty((MODEL_H // 2, MODEL_W // 2), np.float32)
        self._out = np.empty((MODEL_H, MODEL_W), np.float32)
        whole, self._sess = self._sess, head
        self._tail = cut
        # the same output as the whole model on a busy test input, or the whole model it is
        x = np.random.default_rng(0).uniform(0.0, 255.0, (1, 3, MODEL_H, MODEL_W)).astype(np.float32)
        try:
            features = head.run(None, {self._input: x})[0]
            ok = features.shape == (1, c, MODEL_H // 2, MODEL_W // 2)
            if ok:
                final_conv_up2(features[0], cut.weight, cut.bias, self._conv, self._out)
                ref = whole.run(None, {self._input: x})[0].reshape(MODEL_H, MODEL_W)
                ok = bool(np.abs(self._out - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max())))
        except Exception as e:  # onnxruntime's own exception types
            log.info("depth model run whole: its split-off last layer failed (%s)", e)
            ok = False
        if ok:
            self.split = True
        else:
            self._sess, self._tail = whole, None

    def infer(self, x: np.ndarray) -> np.ndarray:
        if self._tail is None:
            return self._sess.run(None, {self._input: x})[0].reshape(MODEL_H, MODEL_W)
        features = self._sess.run(None, {self._input: x})[0]
        final_conv_up2(features[0], self._tail.weight, self._tail.bias, self._conv, self._out)
        return readonly(self._out)

    def close(self) -> None:
        self._sess = None


class OpenCVDepth:
    """cv2.dnn (no extra dependency beyond OpenCV, slower here)."""

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


def open_backend(cfg: DepthConfig) -> DepthModel:
    """The configured engine (``depth.backend``) on the configured model file."""
    path = models.resolve("tcmonodepth_small", cfg.model_path or None)
    if cfg.backend is DepthBackend.OPENCV:
        return OpenCVDepth(str(path))
    return OnnxDepth(str(path), threads=model_threads(cfg), spin=model_spins(cfg))
