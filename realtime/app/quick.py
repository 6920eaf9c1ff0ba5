"""The quick portrait: the field's common recipe, with no Numba kernel, for a first start.

While the lens's kernels compile (a minute of CPU on a cold cache, see
``realtime.app.firststart``) a live source's frames still need a portrait: the person's
confidence from the same MediaPipe model, upsampled bilinearly, over a Gaussian blur of the
frame (computed at a quarter of the size: the blur is wide and smooth, the frame is not needed
at full resolution for it), composited by OpenCV. It needs only NumPy and OpenCV, so it runs
from the first frame; it does not follow the focus, the depth or the temporal stabiliser.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from realtime.core.config import REFERENCE_HEIGHT, Preset, SegModel
from realtime.core.frames import check_frame, readonly
from realtime.pipeline import Result
from realtime.stages.segmentation import MediaPipeSegmenter, choose_model, identify

DOWN = 4  # the blur is computed on a frame this many times smaller per side


class QuickPortrait:
    """``process(frame, ts)`` -> :class:`realtime.pipeline.Result` (the matte doubles as the
    disparity: the person near, the rest far; the focus is on the person, no CoC)."""

    def __init__(self, preset: Preset) -> None:
        self.preset = preset
        self._seg: MediaPipeSegmenter | None = None
        self._bufs: dict[str, np.ndarray] = {}
        self._last_ts: int | None = None

    def _model(self, width: int, height: int) -> MediaPipeSegmenter:
        cfg = self.preset.segmentation
        name = identify(cfg.model_path) if cfg.model_path and cfg.model is SegModel.AUTO else \
            choose_model(cfg, width, height)
        if self._seg is None or self._seg.name != name:
            self.close()
            self._seg = MediaPipeSegmenter(name, cfg.model_path)
        return self._seg

    def _buf(self, key: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        b = self._bufs.get(key)
        if b is None or b.shape != shape or b.dtype != dtype:
            b = self._bufs[key] = np.empty(shape, dtype)
        return b

    def warmup(self, size: tuple[int, int]) -> None:
        """Load the model and run once on a grey frame of ``size`` (buffers allocated)."""
        w, h = size
        self.process(np.full((h, w, 3), 128, np.uint8), 0)

    def reset(self) -> None:
        """A new stream: nothing to forget but the model's clock (kept increasing by the model)."""

    def process(self, frame: np.ndarray, timestamp_ms: int) -> Result:
        check_frame(frame)
        h, w = frame.shape[:2]
        t0 = time.perf_counter()
        seg = self._model(w, h)
        mw, mh = seg.input_size
        rgb = self._buf("rgb", (mh, mw, 3), np.uint8)
        cv2.cvtColor(cv2.resize(frame, (mw, mh), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB, dst=rgb)
        conf = seg.segment(rgb, timestamp_ms)
        matte = self._buf("matte", (h, w), np.float32)
        cv2.resize(conf, (w, h), dst=matte, interpolation=cv2.INTER_LINEAR)
        np.clip(matte, 0.0, 1.0, out=matte)
        t1 = time.perf_counter()
        out = self._buf("out", (h, w, 3), np.uint8)
        render = self.preset.render
        sigma = render.max_coc_px * 0.5 * h / REFERENCE_HEIGHT / DOWN
        if not render.effect or sigma < 0.3 or min(h, w) < 4 * DOWN:
            np.copyto(out, frame)
        else:
            small = cv2.resize(frame, (max(1, w // DOWN), max(1, h // DOWN)), interpolation=cv2.INTER_AREA)
            blurred = cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma), (w, h), interpolation=cv2.INTER_LINEAR)
            back = self._buf("back", (h, w), np.float32)
            np.subtract(1.0, matte, out=back)
            cv2.blendLinear(frame, blurred, matte, back, dst=out)
        t2 = time.perf_counter()
        coc = self._bufs.get("coc")
        if coc is None or coc.shape != (h, w):
            coc = self._bufs["coc"] = np.zeros((h, w), np.float32)
        return Result(frame=readonly(out), matte=readonly(matte), disparity=readonly(matte), focus=1.0,
                      coc=readonly(coc),
                      timestamp_ms=int(timestamp_ms),
                      timings_ms={"segmentation": (t1 - t0) * 1000.0, "render": (t2 - t1) * 1000.0})

    def close(self) -> None:
        seg, self._seg = self._seg, None
        if seg is not None:
            seg.close()
