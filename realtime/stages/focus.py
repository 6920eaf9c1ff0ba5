"""Where the lens focuses: one disparity value per frame.

By default on the face: MediaPipe's short-range face detector runs on a small copy of the
frame every few frames (faces move little between two detections); the largest face wins (the
one being tracked keeps winning unless another is clearly larger, so two similar faces do not
make focus hop), and its disparity is the median over the inner part of its box. Without a
face the person's median disparity is used, without a person the configured disparity. The
value is smoothed with a One Euro filter: steady when still, little lag when leaning in.

``override`` (click-to-focus, ``--focus``) takes precedence: a float is a fixed disparity, an
``(x, y)`` pixel focuses on whatever is under it (see :func:`parse_focus`).
"""

from __future__ import annotations

import logging
import math
from typing import Protocol, Sequence, Union

import cv2
import numpy as np

from realtime.core import models
from realtime.core.config import FocusConfig, FocusMode
from realtime.core.errors import ConfigError, ModelError
from realtime.core.frames import check_disparity, check_frame, check_matte
from realtime.core.stage import Stage
from realtime.stages.filters import OneEuroFilter

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float, float]  # x0, y0, x1, y1 (normalised 0..1), score
FocusOverride = Union[float, tuple[int, int], None]

_FACE_INNER = 0.6        # central part of a face box that is surely face (not hair or background)
_STICKY_AREA = 1.3       # another face must be this much larger to take focus from the tracked one
_MAX_SAMPLES = 1024      # pixels read for one median
_POINT_RADIUS = 0.01     # point focus reads a window of this fraction of the frame height
# a face whose box overlaps the previous detection's this much (IoU) has stayed put
_STILL_OVERLAP = 0.8
# ... until the person's share of the frame moves by this fraction of itself (someone came or went)
_SHARE_CHANGE = 0.1
_SHARE_STEP = 16         # the person's share is read on every 16th row and column


def parse_focus(text: str) -> FocusOverride:
    """``--focus`` value: ``"0.7"`` is a fixed disparity, ``"640,360"`` a pixel, ``"auto"`` none."""
    t = text.strip().lower()
    if t in ("", "auto", "none"):
        return None
    parts = [p.strip() for p in t.replace("x", ",").split(",")]
    try:
        if len(parts) == 1:
            v = float(parts[0])
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"--focus {text!r}: a disparity must be between 0 (far) and 1 (near)")
            return v
        if len(parts) == 2:
            x, y = int(parts[0]), int(parts[1])
            if x < 0 or y < 0:
                raise ConfigError(f"--focus {text!r}: pixel coordinates must not be negative")
            return (x, y)
    except ValueError as e:
        raise ConfigError(f"--focus {text!r} is not understood; give a disparity like 0.7, "
                          "a pixel like 640,360, or auto") from e
    raise ConfigError(f"--focus {text!r} is not understood; give a disparity like 0.7, a pixel like 640,360, or auto")


class FaceBackend(Protocol):
    """A face detector: faces in an RGB image as normalised boxes with scores."""

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """``rgb`` (h, w, 3) uint8; returns ``(x0, y0, x1, y1, score)`` per face, coordinates in 0..1."""
        ...

    def close(self) -> None: ...


class MediaPipeFaceDetector:
    """MediaPipe Tasks ``FaceDetector`` (BlazeFace short range) in image mode."""

    def __init__(self, model_path: str = "", min_confidence: float = 0.5) -> None:
        from realtime.core.mediapipe_import import mediapipe

        mp = mediapipe()  # first: MediaPipe imported without its drawing helpers (matplotlib)
        from mediapipe.tasks import python as mp_tasks
        from mediapipe.tasks.python import vision

        path = models.resolve("face_short_range", model_path or None)
        self._mp = mp
        options = vision.FaceDetectorOptions(
            base_options=mp_tasks.BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=float(min_confidence),
        )
        try:
            self._det = vision.FaceDetector.create_from_options(options)
        except Exception as e:  # MediaPipe raises bare RuntimeError/ValueError for bad files
            raise ModelError(f"MediaPipe could not load {path} ({e})") from e

    def detect(self, rgb: np.ndarray) -> list[Box]:
        h, w = rgb.shape[:2]
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        result = self._det.detect(image)
        out = []
        for d in result.detections:
            b = d.bounding_box
            score = d.categories[0].score if d.categories else 1.0
            x0, y0 = b.origin_x / w, b.origin_y / h
            out.append((x0, y0, x0 + b.width / w, y0 + b.height / h, float(score)))
        return out

    def close(self) -> None:
        det, self._det = getattr(self, "_det", None), None
        if det is not None:
            det.close()


def _median_in(disparity: np.ndarray, y0: int, y1: int, x0: int, x1: int,
               mask: np.ndarray | None = None) -> float | None:
    """Median of ``disparity`` in a box (optionally where ``mask > 0.5``), read on a sparse grid."""
    h, w = disparity.shape
    y0, y1 = max(0, y0), min(h, max(y1, y0 + 1))
    x0, x1 = max(0, x0), min(w, max(x1, x0 + 1))
    if y0 >= y1 or x0 >= x1:
        return None
    step = max(1, int(math.sqrt((y1 - y0) * (x1 - x0) / _MAX_SAMPLES)))
    d = disparity[y0:y1:step, x0:x1:step]
    if mask is not None:
        d = d[mask[y0:y1:step, x0:x1:step] > 0.5]
    if d.size == 0:
        return None
    return float(np.median(d))


class FocusTracker(Stage):
    """Frame, matte and (stabilised) disparity in, focus disparity out."""

    name = "focus"

    def __init__(self, config: FocusConfig, *, face_backend: FaceBackend | None = None) -> None:
        super().__init__()
        self.config = config
        self.override: FocusOverride = None  # set by click-to-focus / --focus
        self._face_backend = face_backend
        self._own_face_backend = face_backend is None
        self._face_failed = False
        self._filter = OneEuroFilter(config.min_cutoff_hz, config.beta)
        self._small: np.ndarray | None = None
        self.reset()

    def reset(self) -> None:
        super().reset()
        self._filter.reset()
        self._frame_no = 0
        self._face: Box | None = None      # tracked face, normalised
        self._face_ts: int | None = None   # when it was last seen
        self._next_detection = 1           # frame number of the next face detection
        self._still_face = False           # the last two detections agreed: detections spaced out
        self._share = 0.0                  # the person's share of the frame at the last detection
        self.source = "none"               # what the last value came from: face|person|point|fixed|default

    def configure(self, config: FocusConfig) -> None:
        """Take new knobs while running; the focus value keeps gliding from where it is."""
        old, self.config = self.config, config
        self._filter.min_cutoff = config.min_cutoff_hz
        self._filter.beta = config.beta
        if config.face_min_confidence != old.face_min_confidence and self._own_face_backend:
            if self._face_backend is not None:
                self._face_backend.close()
            self._face_backend = None  # reopened with the new threshold when next needed
            self._face_failed = False

    @property
    def face(self) -> Box | None:
        """The face focus is on (normalised box and score), or None."""
        return self._face

    def process(self, frame: np.ndarray, timestamp_ms: int, matte: np.ndarray, disparity: np.ndarray) -> float:
        ts = self._begin(timestamp_ms)
        check_frame(frame)
        h, w = frame.shape[:2]
        check_matte(matte, (h, w))
        check_disparity(disparity, (h, w))
        self._frame_no += 1
        cfg = self.config
        ov = self.override
        if isinstance(ov, tuple):
            return self._smoothed(self._at_point(disparity, ov[0], ov[1]), ts, "point")
        if ov is not None:
            self.source = "fixed"
            return float(ov)
        if cfg.mode is FocusMode.FIXED:
            self.source = "fixed"
            return float(cfg.disparity)
        if cfg.mode is FocusMode.POINT:
            x = min(w - 1, int(cfg.point_x * w))
            y = min(h - 1, int(cfg.point_y * h))
            return self._smoothed(self._at_point(disparity, x, y), ts, "point")
        if cfg.mode is FocusMode.FACE:
            v = self._at_face(frame, ts, matte, disparity)
            if v is not None:
                return self._smoothed(v, ts, "face")
        v = _median_in(disparity, 0, h, 0, w, matte)
        if v is not None:
            return self._smoothed(v, ts, "person")
        if self._filter.value is not None:
            self.source = "default"
            return float(self._filter.value)
        self.source = "default"
        return float(cfg.disparity)

    def _smoothed(self, v: float, ts: int, source: str) -> float:
        self.source = source
        return float(min(1.0, max(0.0, self._filter(v, ts))))

    @staticmethod
    def _at_point(disparity: np.ndarray, x: int, y: int) -> float:
        h, w = disparity.shape
        x, y = min(max(int(x), 0), w - 1), min(max(int(y), 0), h - 1)
        r = max(1, int(_POINT_RADIUS * h))
        v = _median_in(disparity, y - r, y + r + 1, x - r, x + r + 1)
        return float(disparity[y, x]) if v is None else v

    # -- faces -------------------------------------------------------------------------------
    def _detector(self) -> FaceBackend | None:
        if self._face_backend is None and not self._face_failed:
            try:
                self._face_backend = MediaPipeFaceDetector(min_confidence=self.config.face_min_confidence)
            except ModelError as e:
                log.warning("face detector unavailable, focusing on the person instead: %s", e)
                self._face_failed = True
        return self._face_backend

    def _detect(self, frame: np.ndarray) -> list[Box]:
        h, w = frame.shape[:2]
        sw = min(w, self.config.face_input_width)
        sh = max(1, round(h * sw / w))
        if self._small is None or self._small.shape != (sh, sw, 3):
            self._small = np.empty((sh, sw, 3), np.uint8)
        # linear is enough: the detector's own input is 128x128, smaller still
        cv2.resize(frame, (sw, sh), dst=self._small, interpolation=cv2.INTER_LINEAR)
        cv2.cvtColor(self._small, cv2.COLOR_BGR2RGB, dst=self._small)
        backend = self._detector()
        if backend is None:
            return []
        try:
            faces = backend.detect(self._small)
        except Exception as e:  # a broken detector must not take the picture down: focus on the person
            log.warning("face detector failed, focusing on the person from now on: %s", e)
            self._face_failed = True
            self._face = None
            return []
        return [b for b in faces if b[4] >= self.config.face_min_confidence]

    def _at_face(self, frame: np.ndarray, ts: int, matte: np.ndarray, disparity: np.ndarray) -> float | None:
        cfg = self.config
        due = self._face is None or self._frame_no >= self._next_detection
        if not due and self._still_face:
            # spaced out: look again at once when the face may have left its box; while it has
            # not, the matte's word counts as seeing it (the hold runs from a detection that fails)
            due = self._moved(matte)
            if not due:
                self._face_ts = ts
        if due and not self._face_failed:
            faces = self._detect(frame)
            before = self._face
            chosen = choose_face(faces, before)
            if chosen is not None:
                self._face, self._face_ts = chosen, ts
            self._share = _person_share(matte)
            # spaced out only for a face that stayed put on the person (a face the matte does not
            # cover would bring a detection on every frame)
            self._still_face = (chosen is not None and before is not None and
                                _overlap(chosen, before) >= _STILL_OVERLAP and not self._moved(matte))
            n = cfg.face_every_n_frames * (cfg.face_still_factor if self._still_face else 1)
            self._next_detection = self._frame_no + n
        if self._face is None or self._face_ts is None:
            return None
        if ts - self._face_ts > cfg.face_hold_ms:
            self._face = None
            return None
        return self._in_face(disparity)

    def _in_face(self, plane: np.ndarray) -> float | None:
        """Median of ``plane`` over the central part of the tracked face's box."""
        h, w = plane.shape
        x0, y0, x1, y1, _ = self._face
        cx, cy = (x0 + x1) / 2 * w, (y0 + y1) / 2 * h
        hw, hh = (x1 - x0) / 2 * w * _FACE_INNER, (y1 - y0) / 2 * h * _FACE_INNER
        return _median_in(plane, int(cy - hh), int(math.ceil(cy + hh)), int(cx - hw), int(math.ceil(cx + hw)))

    def _moved(self, matte: np.ndarray) -> bool:
        """Whether the held face may be stale: the matte no longer covers the middle of its box
        (the face moved off it), or the person's share of the frame changed (someone came or
        went). A few hundred matte pixels read."""
        on = self._in_face(matte)
        if on is None or on < 0.5:
            return True
        return abs(_person_share(matte) - self._share) > _SHARE_CHANGE * max(self._share, 0.01)

    def _release(self) -> None:
        if self._face_backend is not None:
            self._face_backend.close()
            self._face_backend = None


def _person_share(matte: np.ndarray) -> float:
    """The person's share of the frame (matte above 1/2), read on a sparse grid."""
    return float(np.mean(matte[::_SHARE_STEP, ::_SHARE_STEP] > 0.5))


def _area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def choose_face(faces: Sequence[Box], tracked: Box | None) -> Box | None:
    """The largest (= nearest) face; the tracked one keeps focus unless another is clearly larger."""
    if not faces:
        return None
    largest = max(faces, key=_area)
    if tracked is None:
        return largest
    same = max(faces, key=lambda f: _overlap(f, tracked))
    if _overlap(same, tracked) > 0.3 and _area(largest) < _STICKY_AREA * _area(same):
        return same
    return largest
