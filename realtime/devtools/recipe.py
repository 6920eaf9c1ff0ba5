"""The field's common recipe (the benchmarks' baseline) and fitting real frames to a benchmark size.

Used by ``python run.py bench`` (peak rate) and ``bench --live`` (CPU per frame at 30 fps).
"""

from __future__ import annotations

import cv2
import numpy as np


def fit_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre-crop to the target aspect ratio, then resize (no squashing of faces)."""
    w, h = size
    fh, fw = frame.shape[:2]
    if fw * h > fh * w:
        cw = fh * w // h
        frame = frame[:, (fw - cw) // 2:(fw - cw) // 2 + cw]
    else:
        ch = fw * h // w
        frame = frame[(fh - ch) // 2:(fh - ch) // 2 + ch]
    interp = cv2.INTER_AREA if frame.shape[1] > w else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(frame, (w, h), interpolation=interp))


class Baseline:
    """The field's common recipe: full-frame MediaPipe mask, Gaussian blur sigma 12, float composite."""

    def __init__(self) -> None:
        import mediapipe as mp
        from mediapipe.tasks import python as mp_tasks
        from mediapipe.tasks.python import vision

        from realtime.core import models

        self._mp = mp
        path = models.resolve("selfie_landscape")
        opts = vision.ImageSegmenterOptions(base_options=mp_tasks.BaseOptions(model_asset_path=str(path)),
                                            running_mode=vision.RunningMode.VIDEO,
                                            output_confidence_masks=True, output_category_mask=False)
        self._seg = vision.ImageSegmenter.create_from_options(opts)
        self._ts = 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        self._ts += 33
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        res = self._seg.segment_for_video(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb), self._ts)
        mask = res.confidence_masks[0].numpy_view()
        alpha = mask.reshape(mask.shape[0], mask.shape[1], 1).astype(np.float32)
        blurred = cv2.GaussianBlur(frame, (0, 0), 12)
        out = frame.astype(np.float32) * alpha + blurred.astype(np.float32) * (1.0 - alpha)
        return out.astype(np.uint8)

    def close(self) -> None:
        self._seg.close()
