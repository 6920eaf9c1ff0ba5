"""Person segmentation: MediaPipe selfie segmenter at model resolution, matte at full resolution.

The backend sees a frame already resized to the model's input (MediaPipe would otherwise
resize the full frame down and the mask back up itself, at full-resolution cost) and returns
the person *confidence* (never the thresholded category mask). Everything after it is ours:
the confidence is refined to full resolution by a colour guided filter guided by the frame
(:mod:`shaders.matte`, see ``docs/matte.md``), or upsampled bilinearly (``refine = "bilinear"``).
The filter's local fits run on a guide ``refine_guide_scale`` times the model's input size (the
frame area-averaged once more, the confidence upsampled to it bilinearly): a finer coefficient
field than the model's grid, for 0.4-0.6 ms at 720p.
Every person in frame is kept: nothing picks a largest blob.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from realtime.core import models
from realtime.core.config import REFERENCE_HEIGHT, MatteRefine, SegModel, SegmentationConfig
from realtime.core.errors import ModelError, ModelHashError, StageError
from realtime.core.frames import check_frame, readonly
from realtime.core.stage import Stage

SEGMENTATION_MODELS = ("selfie_landscape", "selfie_square")


class SegmentationBackend(Protocol):
    """What the segmenter needs from a model: confidence for an RGB image at its input size."""

    input_size: tuple[int, int]  # (width, height)

    def segment(self, rgb: np.ndarray, timestamp_ms: int) -> np.ndarray:
        """``rgb`` (h, w, 3) uint8 at ``input_size``; returns (h, w) float32 person confidence
        (it may be a buffer the backend rewrites on its next call)."""
        ...

    def close(self) -> None: ...


def choose_model(cfg: SegmentationConfig, width: int, height: int) -> str:
    """Registry name of the model to use for frames of this size."""
    if cfg.model is SegModel.LANDSCAPE:
        return "selfie_landscape"
    if cfg.model is SegModel.SQUARE:
        return "selfie_square"
    return "selfie_landscape" if width * 3 > height * 4 else "selfie_square"


def identify(path: str) -> str:
    """Which segmentation model an explicit file is, by its sha256 (so ``model = "auto"`` with a
    ``model_path`` still knows the input size); :class:`ModelHashError` if it is neither."""
    from pathlib import Path

    p = Path(path).expanduser()
    for name in SEGMENTATION_MODELS:
        try:
            models.resolve(name, p)
            return name
        except ModelHashError:
            continue
    expected = ", ".join(f"{models.REGISTRY[n].sha256} ({models.REGISTRY[n].file})" for n in SEGMENTATION_MODELS)
    raise ModelHashError(f"model file {p} is not a known segmentation model: sha256 {models.sha256_of(p)}, "
                         f"expected one of {expected}")


class MediaPipeSegmenter:
    """MediaPipe Tasks ``ImageSegmenter`` in VIDEO mode, confidence masks only."""

    def __init__(self, model_name: str, model_path: str = "") -> None:
        import mediapipe as mp
        from mediapipe.tasks import python as mp_tasks
        from mediapipe.tasks.python import vision

        path = models.resolve(model_name, model_path or None)
        self.name = model_name
        self.input_size = models.info(model_name).input_size
        self._mp = mp
        self._last_ts: int | None = None
        self._out: np.ndarray | None = None
        options = vision.ImageSegmenterOptions(
            base_options=mp_tasks.BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.VIDEO,
            output_confidence_masks=True,
            output_category_mask=False,
        )
        try:
            self._seg = vision.ImageSegmenter.create_from_options(options)
        except Exception as e:  # MediaPipe raises bare RuntimeError/ValueError for bad files
            raise ModelError(f"MediaPipe could not load {path} ({e})") from e

    def segment(self, rgb: np.ndarray, timestamp_ms: int) -> np.ndarray:
        # VIDEO mode rejects a timestamp that does not increase (a new stream after reset()
        # starts again at 0): keep MediaPipe's clock strictly increasing regardless
        ts = int(timestamp_ms)
        if self._last_ts is not None and ts <= self._last_ts:
            ts = self._last_ts + 1
        self._last_ts = ts
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        result = self._seg.segment_for_video(image, ts)
        view = result.confidence_masks[0].numpy_view()
        # (h, w, 1) view into MediaPipe's buffer: copy out before the next call reuses it, into
        # our own buffer (rewritten by the next call, like every stage output)
        view = view.reshape(view.shape[0], view.shape[1])
        if self._out is None or self._out.shape != view.shape:
            self._out = np.empty(view.shape, np.float32)
        np.copyto(self._out, view)
        return self._out

    def close(self) -> None:
        seg, self._seg = getattr(self, "_seg", None), None
        if seg is not None:
            seg.close()


def guide_size(model_size: tuple[int, int], frame_size: tuple[int, int], scale: float) -> tuple[int, int]:
    """(width, height) of the refinement's guide: ``scale`` times the model's input, at most the frame."""
    (mw, mh), (w, h) = model_size, frame_size
    return min(w, max(mw, int(round(mw * scale)))), min(h, max(mh, int(round(mh * scale))))


def radius_at_model(radius_px_720: int, model_height: int) -> int:
    """The refinement radius in model pixels: given for a 720-pixel-high frame, and a frame of
    any height maps onto the same model rows, so the window covers the same part of the picture."""
    return max(1, int(round(radius_px_720 * model_height / float(REFERENCE_HEIGHT))))


class Segmenter(Stage):
    """Frame in, full-resolution person matte out (``(H, W) float32`` in [0, 1], read-only)."""

    name = "segmentation"

    def __init__(self, config: SegmentationConfig, *, backend: SegmentationBackend | None = None) -> None:
        super().__init__()
        self.config = config
        self._backend = backend
        self._backend_model: str | None = "injected" if backend is not None else None
        self._rgb: np.ndarray | None = None  # the model's input, also the refinement's guide
        self._small: np.ndarray | None = None  # BGR, only for frames smaller than the model's input
        self._down = None
        self._down_key: tuple[int, int, int, int] | None = None
        self._identified: str | None = None
        self._matte: np.ndarray | None = None
        self._refiner = None
        self._refiner_key: tuple | None = None
        self.confidence: np.ndarray | None = None  # last low-resolution model output (read-only)

    # -- model ---------------------------------------------------------------------------------
    def _ensure_backend(self, width: int, height: int) -> SegmentationBackend:
        if self._backend_model == "injected":
            return self._backend
        cfg = self.config
        if cfg.model_path and cfg.model is SegModel.AUTO:
            if self._identified is None:  # hashing once: this runs every frame
                self._identified = identify(cfg.model_path)
            want = self._identified
        else:
            want = choose_model(cfg, width, height)
        if want != self._backend_model:
            if self._backend is not None:
                self._backend.close()
                self._backend = None
            self._backend = MediaPipeSegmenter(want, cfg.model_path)
            self._backend_model = want
        return self._backend

    @property
    def model_name(self) -> str | None:
        """Registry name of the model in use ('injected' for a caller's backend), None before the first frame."""
        return self._backend_model

    # -- per frame -----------------------------------------------------------------------------
    def _buffers(self, h: int, w: int, mw: int, mh: int) -> None:
        from shaders.matte import AreaDownscaler, FineGuidedUpsampler, GuidedUpsampler

        if self._rgb is None or self._rgb.shape[:2] != (mh, mw):
            self._rgb = np.empty((mh, mw, 3), np.uint8)
        if self._down_key != (w, h, mw, mh):
            self._down_key = (w, h, mw, mh)
            # our area kernel also writes RGB (no cvtColor); a frame smaller than the model's
            # input goes through OpenCV (whose INTER_AREA enlarges bilinearly)
            if w >= mw and h >= mh:
                self._down = AreaDownscaler((w, h), (mw, mh))
                self._small = None
            else:
                self._down = None
                self._small = np.empty((mh, mw, 3), np.uint8)
        if self._matte is None or self._matte.shape != (h, w):
            self._matte = np.empty((h, w), np.float32)
        if self.config.refine is MatteRefine.GUIDED:
            cfg = self.config
            gw, gh = guide_size((mw, mh), (w, h), cfg.refine_guide_scale)
            key = ((mw, mh), (gw, gh), (w, h), radius_at_model(cfg.refine_radius_px, gh), cfg.refine_eps,
                   cfg.refine_detail, cfg.refine_protect, cfg.refine_contrast)
            if self._refiner_key != key:  # new sizes, or knobs changed by configure()
                if (gw, gh) == (mw, mh):
                    self._refiner = GuidedUpsampler(key[0], *key[2:])
                else:  # guide_size() caps the guide at the frame, so the area kernel applies
                    self._refiner = FineGuidedUpsampler(*key)
                self._refiner_key = key

    def _confidence(self, backend: SegmentationBackend, ts: int) -> np.ndarray:
        mw, mh = backend.input_size
        conf = backend.segment(self._rgb, ts)
        if not isinstance(conf, np.ndarray) or conf.shape != (mh, mw):
            got = f"shape {conf.shape}" if isinstance(conf, np.ndarray) else type(conf).__name__
            raise StageError(f"segmentation model returned {got}, expected ({mh}, {mw}) confidence")
        if conf.dtype != np.float32 or not conf.flags.c_contiguous:
            conf = np.ascontiguousarray(conf, dtype=np.float32)
        # a NaN would pass the clips below unseen and show up as a plausible matte: fail closed
        if not np.isfinite(conf.sum(dtype=np.float32)):
            raise StageError("segmentation model returned NaN or infinite confidence")
        return conf

    def process(self, frame: np.ndarray, timestamp_ms: int) -> np.ndarray:
        check_frame(frame)  # before _begin: a rejected frame does not use up its timestamp
        ts = self._begin(timestamp_ms)
        h, w = frame.shape[:2]
        backend = self._ensure_backend(w, h)
        mw, mh = backend.input_size
        self._buffers(h, w, mw, mh)
        # INTER_AREA: the model and the guide see an average of the pixels, not an aliased sample
        if self._down is not None:
            self._down.run(frame, self._rgb)
        else:
            cv2.resize(frame, (mw, mh), dst=self._small, interpolation=cv2.INTER_AREA)
            cv2.cvtColor(self._small, cv2.COLOR_BGR2RGB, dst=self._rgb)
        conf = self._confidence(backend, ts)
        self.confidence = readonly(conf)
        if self.config.refine is MatteRefine.GUIDED:
            self._refiner.run(self._rgb, conf, frame, self._matte)  # output already in [0, 1]
        else:
            cv2.resize(conf, (w, h), dst=self._matte, interpolation=cv2.INTER_LINEAR)
            np.clip(self._matte, 0.0, 1.0, out=self._matte)
        return readonly(self._matte)

    def _release(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
