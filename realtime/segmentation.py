"""Person segmentation: MediaPipe selfie segmenter at model resolution, matte at full resolution.

The backend sees a frame already resized to the model's input (MediaPipe would otherwise
resize the full frame down and the mask back up itself, at full-resolution cost); everything
after the model's confidence is ours.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from . import models
from .config import SegModel, SegmentationConfig
from .frames import check_frame, readonly
from .stage import Stage


class SegmentationBackend(Protocol):
    """What the segmenter needs from a model: confidence for an RGB image at its input size."""

    input_size: tuple[int, int]  # (width, height)

    def segment(self, rgb: np.ndarray, timestamp_ms: int) -> np.ndarray:
        """``rgb`` (h, w, 3) uint8 at ``input_size``; returns (h, w) float32 person confidence."""
        ...

    def close(self) -> None: ...


def choose_model(cfg: SegmentationConfig, width: int, height: int) -> str:
    """Registry name of the model to use for frames of this size."""
    if cfg.model is SegModel.LANDSCAPE:
        return "selfie_landscape"
    if cfg.model is SegModel.SQUARE:
        return "selfie_square"
    return "selfie_landscape" if width * 3 > height * 4 else "selfie_square"


_INPUT_SIZES = {"selfie_landscape": (256, 144), "selfie_square": (256, 256)}


class MediaPipeSegmenter:
    """MediaPipe Tasks ``ImageSegmenter`` in VIDEO mode, confidence masks only."""

    def __init__(self, model_name: str, model_path: str = "") -> None:
        import mediapipe as mp
        from mediapipe.tasks import python as mp_tasks
        from mediapipe.tasks.python import vision

        path = models.resolve(model_name, model_path or None)
        self.input_size = _INPUT_SIZES[model_name]
        self._mp = mp
        options = vision.ImageSegmenterOptions(
            base_options=mp_tasks.BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.VIDEO,
            output_confidence_masks=True,
            output_category_mask=False,
        )
        try:
            self._seg = vision.ImageSegmenter.create_from_options(options)
        except Exception as e:  # MediaPipe raises bare RuntimeError/ValueError for bad files
            raise models.ModelError(f"MediaPipe could not load {path} ({e})") from e

    def segment(self, rgb: np.ndarray, timestamp_ms: int) -> np.ndarray:
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        result = self._seg.segment_for_video(image, int(timestamp_ms))
        conf = result.confidence_masks[0].numpy_view()
        # (h, w, 1) view into MediaPipe's buffer: copy out before the next call reuses it
        return np.array(conf.reshape(conf.shape[0], conf.shape[1]), dtype=np.float32, copy=True)

    def close(self) -> None:
        seg, self._seg = getattr(self, "_seg", None), None
        if seg is not None:
            seg.close()


class Segmenter(Stage):
    """Frame in, full-resolution person matte out (``(H, W) float32`` in [0, 1], read-only)."""

    name = "segmentation"

    def __init__(self, config: SegmentationConfig, *, backend: SegmentationBackend | None = None) -> None:
        super().__init__()
        self.config = config
        self._backend = backend
        self._backend_model: str | None = "injected" if backend is not None else None
        self._small: np.ndarray | None = None
        self._matte: np.ndarray | None = None
        self.confidence: np.ndarray | None = None  # last low-resolution model output

    def _ensure_backend(self, width: int, height: int) -> SegmentationBackend:
        if self._backend_model == "injected":
            return self._backend
        want = choose_model(self.config, width, height)
        if want != self._backend_model:
            if self._backend is not None:
                self._backend.close()
            self._backend = MediaPipeSegmenter(want, self.config.model_path)
            self._backend_model = want
        return self._backend

    def process(self, frame: np.ndarray, timestamp_ms: int) -> np.ndarray:
        ts = self._begin(timestamp_ms)
        check_frame(frame)
        h, w = frame.shape[:2]
        backend = self._ensure_backend(w, h)
        mw, mh = backend.input_size
        small = cv2.resize(frame, (mw, mh), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        conf = backend.segment(rgb, ts)
        self.confidence = conf
        if self._matte is None or self._matte.shape != (h, w):
            self._matte = np.empty((h, w), np.float32)
        cv2.resize(conf, (w, h), dst=self._matte, interpolation=cv2.INTER_LINEAR)
        np.clip(self._matte, 0.0, 1.0, out=self._matte)
        return readonly(self._matte)

    def _release(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
