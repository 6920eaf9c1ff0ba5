"""Person segmentation: MediaPipe selfie segmenter at model resolution, matte at full resolution.

The backend sees a frame already resized to the model's input (MediaPipe would otherwise
resize the full frame down and the mask back up itself, at full-resolution cost) and returns
the person *confidence* (never the thresholded category mask). Everything after it is ours:
the confidence is refined to full resolution by a colour guided filter guided by the frame
(:mod:`shaders.matte`, see ``docs/matte.md``), or upsampled bilinearly (``refine = "bilinear"``).
The filter's local fits run on a guide ``refine_guide_scale`` times the model's input size (the
frame area-averaged once more, the confidence upsampled to it bilinearly): a finer coefficient
field than the model's grid, for 0.4-0.6 ms at 720p.
With ``crop`` on (the default) the model runs on a window around the people instead of the
whole frame (:mod:`realtime.stages.person_box`): a whole-frame pass finds them on a first frame,
a still or after ``reset()``, then each frame's window comes from the previous matte, with a
whole-frame pass every ``crop_refresh_frames`` frames, when the people reach the window's edge,
or when they are lost (then the face detector too). The model is the landscape or the square
one by the window's shape. The refinement runs inside the window; outside it the matte is 0.
Every person in frame is kept: nothing picks a largest blob.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from realtime.core import models
from realtime.core.config import REFERENCE_HEIGHT, MatteQuality, MatteRefine, ModelResize, SegModel, SegmentationConfig
from realtime.core.errors import ModelError, ModelHashError, StageError
from realtime.core.frames import check_frame, readonly
from realtime.core.stage import Stage
from realtime.stages.person_box import (TIGHT_MARGIN, CropTracker, crop_for, fade_far_background, is_landscape, person_box,
                                        scale_box, tight_window)

SEGMENTATION_MODELS = ("selfie_landscape", "selfie_square")
# a first frame up to this aspect (and wider than 4:3) also gets the square model's views
BETWEEN_SHAPES = 1.6


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
        from realtime.core.mediapipe_import import mediapipe

        mp = mediapipe()  # first: MediaPipe imported without its drawing helpers (matplotlib)
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


Crop = tuple[int, int, int, int]  # x0, y0, x1, y1 of the model's window in the frame


class Segmenter(Stage):
    """Frame in, full-resolution person matte out (``(H, W) float32`` in [0, 1], read-only)."""

    name = "segmentation"

    def __init__(self, config: SegmentationConfig, *, backend: SegmentationBackend | None = None) -> None:
        super().__init__()
        self.config = config
        self._injected = backend
        self._backends: dict[str, SegmentationBackend] = {}
        self._backend_model: str | None = "injected" if backend is not None else None
        self._identified: str | None = None
        self._rgb: dict[tuple[int, int], np.ndarray] = {}  # the model's input per input size
        self._flip: np.ndarray | None = None
        self._faded: dict[tuple[int, int], np.ndarray] = {}  # the faded confidence per model size
        self._sub: np.ndarray | None = None  # the window, contiguous (the refinement's frame)
        self._sub_matte: np.ndarray | None = None
        self._downs: dict[tuple, object] = {}
        self._refiners: dict[tuple, object] = {}
        self._matte: np.ndarray | None = None
        self._tracker = CropTracker()
        self._since_full = 0
        self._people = None  # the people's box of the last whole-frame pass (frame pixels)
        self._fresh = True  # the next frame is a first frame (a still, or after reset() / a new size)
        self._faces = None
        self._forced: str | None = None  # every run takes this model (a first frame's second opinion)
        self.crop: Crop | None = None  # the window of the last model run on this frame
        self.confidence: np.ndarray | None = None  # its low-resolution model output (read-only)
        # the matte's sampling grid (x0, y0, step_x, step_y) in frame pixels: the refinement's
        # coefficients (or the model's output with bilinear); see metrics.blockiness
        self.grid: tuple[float, float, float, float] | None = None

    def reset(self) -> None:
        super().reset()
        self._tracker.reset()
        self._since_full = 0
        self._fresh = True

    # -- model ---------------------------------------------------------------------------------
    def _want(self, width: int, height: int, window: bool) -> str:
        cfg = self.config
        if self._injected is not None:
            return "injected"
        if self._forced is not None:
            return self._forced
        if cfg.model_path and cfg.model is SegModel.AUTO:
            if self._identified is None:  # hashing once: this runs every frame
                self._identified = identify(cfg.model_path)
            return self._identified
        if window and cfg.model is SegModel.AUTO:
            return "selfie_landscape" if is_landscape(width, height) else "selfie_square"
        return choose_model(cfg, width, height)

    def _other_model(self, name: str) -> str | None:
        """The second opinion for high quality: the other selfie model, when the preset lets
        the segmenter choose (not for a forced model, a model file or an injected backend)."""
        if name == "injected" or self.config.model is not SegModel.AUTO or self.config.model_path:
            return None
        return "selfie_square" if name == "selfie_landscape" else "selfie_landscape"

    def _backend(self, name: str) -> SegmentationBackend:
        if name == "injected":
            return self._injected
        if name not in self._backends:
            # a model forced by the preset or a file replaces the others; auto keeps both
            for other in [n for n in self._backends if self.config.model is not SegModel.AUTO or self.config.model_path]:
                self._backends.pop(other).close()
            self._backends[name] = MediaPipeSegmenter(name, self.config.model_path)
        return self._backends[name]

    @property
    def model_name(self) -> str | None:
        """Registry name of the model used last ('injected' for a caller's backend), None before the first frame."""
        return self._backend_model

    # -- one model run -------------------------------------------------------------------------
    def _model_input(self, sub: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """``sub`` (BGR, contiguous) resized to the model's input, RGB (a reused buffer)."""
        from shaders.matte import AreaDownscaler

        mw, mh = size
        rgb = self._rgb.get(size)
        if rgb is None:
            rgb = self._rgb[size] = np.empty((mh, mw, 3), np.uint8)
        h, w = sub.shape[:2]
        if self.config.resize is ModelResize.AREA and w >= mw and h >= mh:
            key = (w, h, mw, mh)
            down = self._downs.get(key)
            if down is None:
                if len(self._downs) > 8:
                    self._downs.clear()
                down = self._downs[key] = AreaDownscaler((w, h), (mw, mh))
            down.run(sub, rgb)  # our kernel writes RGB directly
        else:  # OpenCV's INTER_AREA enlarges bilinearly
            interp = cv2.INTER_AREA if self.config.resize is ModelResize.AREA else cv2.INTER_LINEAR
            cv2.cvtColor(cv2.resize(sub, (mw, mh), interpolation=interp), cv2.COLOR_BGR2RGB, dst=rgb)
        return rgb

    def _checked(self, conf: object, mw: int, mh: int) -> np.ndarray:
        if not isinstance(conf, np.ndarray) or conf.shape != (mh, mw):
            got = f"shape {conf.shape}" if isinstance(conf, np.ndarray) else type(conf).__name__
            raise StageError(f"segmentation model returned {got}, expected ({mh}, {mw}) confidence")
        if conf.dtype != np.float32 or not conf.flags.c_contiguous:
            conf = np.ascontiguousarray(conf, dtype=np.float32)
        # a NaN would pass the clips below unseen and show up as a plausible matte: fail closed
        if not np.isfinite(conf.sum(dtype=np.float32)):
            raise StageError("segmentation model returned NaN or infinite confidence")
        return conf

    def _run(self, sub: np.ndarray, frame: np.ndarray, ts: int, *, mirror: bool,
             flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The model on the window ``sub``: (its RGB input, confidence at the model's size).
        ``mirror`` (quality high): also the other model, and this one on the mirrored window;
        ``flip``: only the mirrored window (a first frame's extra view)."""
        h, w = sub.shape[:2]
        name = self._want(w, h, sub is not frame)
        backend = self._backend(name)
        self._backend_model = name
        mw, mh = backend.input_size
        rgb = self._model_input(sub, (mw, mh))
        conf = self._checked(backend.segment(rgb, ts), mw, mh)
        if mirror or flip:
            conf = conf.copy()
            other = self._other_model(name) if mirror else None
            if other is not None:
                # file jobs: the models disagree where they are unsure, and neither is mirror-symmetric:
                # (this model + the other one) / 2, then averaged with this model on the mirrored window
                ob = self._backend(other)
                oc = self._checked(ob.segment(self._model_input(sub, ob.input_size), ts), *ob.input_size)
                conf += cv2.resize(oc, (mw, mh), interpolation=cv2.INTER_LINEAR)
                conf *= np.float32(0.5)
            if self._flip is None or self._flip.shape != rgb.shape:
                self._flip = np.empty_like(rgb)
            np.copyto(self._flip, rgb[:, ::-1])
            flipped = self._checked(backend.segment(self._flip, ts), mw, mh)
            conf += flipped[:, ::-1]
            conf *= np.float32(0.5)
        if self.config.fade_unsure_background:
            # views averaged above are our own copy; a single run's is the backend's buffer
            out = conf if (mirror or flip) else self._faded.get((mh, mw))
            if out is None:
                out = self._faded[(mh, mw)] = np.empty((mh, mw), np.float32)
            fade_far_background(conf, out)
            conf = out
        return rgb, conf

    def _window(self, frame: np.ndarray, crop: Crop) -> np.ndarray:
        x0, y0, x1, y1 = crop
        h, w = frame.shape[:2]
        if (x0, y0, x1, y1) == (0, 0, w, h):
            return frame
        shape = (y1 - y0, x1 - x0, 3)
        if self._sub is None or self._sub.shape != shape:
            self._sub = np.empty(shape, np.uint8)
        np.copyto(self._sub, frame[y0:y1, x0:x1])
        return self._sub

    # -- finding the people --------------------------------------------------------------------
    def _faces_box(self, frame: np.ndarray) -> tuple[float, float, float, float] | None:
        """People below the faces the face detector finds (when the matte finds nobody)."""
        from realtime.stages.focus import MediaPipeFaceDetector

        if self._faces is None:
            self._faces = MediaPipeFaceDetector(min_confidence=0.5)
        h, w = frame.shape[:2]
        boxes = []
        for x0, y0, x1, y1, _ in self._faces.detect(np.ascontiguousarray(frame[:, :, ::-1])):
            fw, fh = (x1 - x0) * w, (y1 - y0) * h
            # head and shoulders: a face is about a fifth of the shoulders' width
            boxes.append((x0 * w - 2 * fw, y0 * h - 0.5 * fh, x1 * w + 2 * fw, min(h, y1 * h + 4 * fh)))
        if not boxes:
            return None
        b = np.array(boxes)
        return (max(0.0, b[:, 0].min()), max(0.0, b[:, 1].min()), min(float(w), b[:, 2].max()), float(b[:, 3].max()))

    def _acquire(self, frame: np.ndarray, ts: int) -> tuple[Crop, np.ndarray | None]:
        """A whole-frame pass: the window for everyone in frame (the whole frame if nobody),
        and the pass's confidence when that window is the whole frame (no second run needed)."""
        h, w = frame.shape[:2]
        _, conf = self._run(frame, frame, ts, mirror=False)
        mh, mw = conf.shape
        box = person_box(conf)
        box = scale_box(box, w / mw, h / mh) if box is not None else self._faces_box(frame)
        self._people = box
        crop = crop_for(box, (w, h), self.config.crop_margin) if box is not None else (0, 0, w, h)
        self._since_full = 0
        if self._tracker.crop is not None and box is not None:
            crop = self._tracker.update(crop)
        else:
            self._tracker.crop = crop
        return crop, (conf if crop == (0, 0, w, h) else None)

    def _follow(self, conf: np.ndarray, crop: Crop, frame_size: tuple[int, int]) -> bool:
        """Next frame's window from this one's confidence; False when the people reach past a
        window edge that is not the frame's (they moved fast: look at the whole frame now)."""
        w, h = frame_size
        x0, y0, x1, y1 = crop
        mh, mw = conf.shape
        box = person_box(conf)
        if box is None:
            if crop != (0, 0, w, h):
                self._tracker.reset()  # lost them: a whole-frame pass next frame
            return True
        bx0, by0, bx1, by1 = box
        cut = (bx0 <= 0 < x0) or (by0 <= 0 < y0) or (bx1 >= mw and x1 < w) or (by1 >= mh and y1 < h)
        if cut:
            return False
        box = scale_box(box, (x1 - x0) / mw, (y1 - y0) / mh, x0, y0)
        self._tracker.update(crop_for(box, (w, h), self.config.crop_margin))
        return True

    # -- refinement ----------------------------------------------------------------------------
    def _refiner(self, model_size: tuple[int, int], size: tuple[int, int]):
        from shaders.matte import FineGuidedUpsampler, GuidedUpsampler

        cfg = self.config
        gw, gh = guide_size(model_size, size, cfg.refine_guide_scale)
        key = (model_size, (gw, gh), size, radius_at_model(cfg.refine_radius_px, gh), cfg.refine_eps,
               cfg.refine_detail, cfg.refine_protect, cfg.refine_contrast, cfg.refine_smooth)
        ref = self._refiners.get(key)
        if ref is None:  # new sizes, or knobs changed by configure()
            if len(self._refiners) > 8:
                self._refiners.clear()
            if (gw, gh) == model_size:
                ref = GuidedUpsampler(model_size, *key[2:-1], smooth=cfg.refine_smooth)
            else:
                ref = FineGuidedUpsampler(*key[:-1], smooth=cfg.refine_smooth)
            self._refiners[key] = ref
        return ref

    def _upsample(self, sub: np.ndarray, rgb: np.ndarray, conf: np.ndarray, out: np.ndarray) -> None:
        h, w = sub.shape[:2]
        if self.config.refine is MatteRefine.GUIDED:
            mh, mw = conf.shape
            ref = self._refiner((mw, mh), (w, h))
            ref.run(rgb, conf, sub, out)  # output already in [0, 1]
            gh, gw = ref.coef.shape[0], ref.coef.shape[2]
            self.grid = (self.crop[0], self.crop[1], w / gw, h / gh)
        else:
            mh, mw = conf.shape
            self.grid = (self.crop[0], self.crop[1], w / mw, h / mh)
            cv2.resize(conf, (w, h), dst=out, interpolation=cv2.INTER_LINEAR)
            np.clip(out, 0.0, 1.0, out=out)

    # -- per frame -----------------------------------------------------------------------------
    def process(self, frame: np.ndarray, timestamp_ms: int) -> np.ndarray:
        check_frame(frame)  # before _begin: a rejected frame does not use up its timestamp
        ts = self._begin(timestamp_ms)
        h, w = frame.shape[:2]
        if self._matte is None or self._matte.shape != (h, w):
            self._matte = np.empty((h, w), np.float32)
            self._tracker.reset()
            self._fresh = True
        mirror = self.config.quality is MatteQuality.HIGH
        full = (0, 0, w, h)
        first = self._fresh and self.config.crop and self.config.first_frame_views
        self._fresh = False
        if first:
            self._first_frame(frame, ts, mirror)
        elif not self.config.crop:
            crop, rgb, conf = full, *self._run(frame, frame, ts, mirror=mirror)
        else:
            crop, conf = self._tracker.crop, None
            self._since_full += 1
            if crop is None or (crop != full and self._since_full >= self.config.crop_refresh_frames):
                crop, conf = self._acquire(frame, ts)
                fresh = True
            else:
                fresh = False
            sub = self._window(frame, crop)
            rgb, conf = self._run(sub, frame, ts, mirror=mirror) if conf is None or mirror else (self._rgb_of(conf), conf)
            if not self._follow(conf, crop, (w, h)) and not fresh:
                crop, conf = self._acquire(frame, ts)
                sub = self._window(frame, crop)
                rgb, conf = self._run(sub, frame, ts, mirror=mirror) if conf is None or mirror else (self._rgb_of(conf), conf)
                self._follow(conf, crop, (w, h))
        if not first:
            self._matte_in(frame, crop, rgb, conf)
        return readonly(self._matte)

    def _matte_in(self, frame: np.ndarray, crop: Crop, rgb: np.ndarray, conf: np.ndarray) -> None:
        """The refined matte of the window ``crop`` into ``self._matte`` (0 outside it)."""
        h, w = frame.shape[:2]
        self.crop = crop
        self.confidence = readonly(conf)
        if crop == (0, 0, w, h):
            self._upsample(frame, rgb, conf, self._matte)
        else:
            x0, y0, x1, y1 = crop
            if self._sub_matte is None or self._sub_matte.shape != (y1 - y0, x1 - x0):
                self._sub_matte = np.empty((y1 - y0, x1 - x0), np.float32)
            self._upsample(self._sub, rgb, conf, self._sub_matte)
            self._matte.fill(0.0)
            self._matte[y0:y1, x0:x1] = self._sub_matte

    def _first_frame(self, frame: np.ndarray, ts: int, mirror: bool) -> None:
        """A first frame (a still, the first after reset()) is not bound by a stream's per-frame
        budget: the whole-frame pass, then the window a stream would use AND a tighter window
        around the people (its own shape, :data:`TIGHT_MARGIN`), each also mirrored; their
        refined mattes are averaged where both see the frame. The next frames of a stream take
        the one-view path from this window (the stabiliser blends the difference in).

        A frame between the models' shapes (wider than 4:3, at most :data:`BETWEEN_SHAPES`:1)
        goes to the landscape model, which squeezes it less but whose input it does not fit
        either; the square model's views are blended in with ``first_frame_square_weight``
        (docs/matte.md, change 11). Its pass leaves nothing behind: the window, the tracker and
        the reported model are the first pass's."""
        self._first_views(frame, ts, mirror)
        h, w = frame.shape[:2]
        weight = self.config.first_frame_square_weight
        if (weight <= 0 or mirror or not 3 * w > 4 * h or w > BETWEEN_SHAPES * h
                or self._other_model(self._want(w, h, False)) != "selfie_square"):
            return
        own = self._matte.copy()
        kept = (self.crop, self.grid, self.confidence, self._backend_model, self._people,
                self._tracker.crop, self._since_full)
        self._forced = "selfie_square"
        try:
            self._tracker.reset()
            self._first_views(frame, ts, mirror)
        finally:
            self._forced = None
            (self.crop, self.grid, self.confidence, self._backend_model, self._people,
             self._tracker.crop, self._since_full) = kept
        self._matte *= np.float32(weight)
        self._matte += np.float32(1.0 - weight) * own

    def _first_views(self, frame: np.ndarray, ts: int, mirror: bool) -> None:
        """The first frame's views (:meth:`_first_frame`) into ``self._matte``."""
        h, w = frame.shape[:2]
        crop, _ = self._acquire(frame, ts)
        sub = self._window(frame, crop)
        rgb, conf = self._run(sub, frame, ts, mirror=mirror, flip=True)
        self._matte_in(frame, crop, rgb, conf)
        self._follow(conf, crop, (w, h))
        if self._people is None:
            return
        tx0, ty0, tx1, ty1 = tight = tight_window(self._people, (w, h), TIGHT_MARGIN)
        if tight == crop or tx1 - tx0 < 16 or ty1 - ty0 < 16:
            return
        grid = self.grid
        sub = np.ascontiguousarray(frame[ty0:ty1, tx0:tx1])
        trgb, tconf = self._run(sub, frame, ts, mirror=mirror, flip=True)
        tmatte = np.empty((ty1 - ty0, tx1 - tx0), np.float32)
        self._upsample(sub, trgb, tconf, tmatte)
        self.grid = grid  # the window's grid stays the matte's (metrics.blockiness)
        self._backend_model = self._want(crop[2] - crop[0], crop[3] - crop[1], crop != (0, 0, w, h))
        part = self._matte[ty0:ty1, tx0:tx1]
        part += tmatte
        part *= np.float32(0.5)

    def _rgb_of(self, conf: np.ndarray) -> np.ndarray:
        mh, mw = conf.shape
        return self._rgb[(mw, mh)]

    def raw(self) -> np.ndarray:
        """The last model output upsampled bilinearly into the frame (0 outside the window): the
        matte without refinement, for comparisons."""
        out = np.zeros(self._matte.shape, np.float32)
        x0, y0, x1, y1 = self.crop
        out[y0:y1, x0:x1] = np.clip(cv2.resize(self.confidence, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR), 0, 1)
        return out

    def _release(self) -> None:
        for b in self._backends.values():
            b.close()
        self._backends.clear()
        if self._injected is not None:
            self._injected.close()
        if self._faces is not None:
            self._faces.close()
            self._faces = None
