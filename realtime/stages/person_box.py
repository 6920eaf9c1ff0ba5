"""Where the people are: the crop the segmentation model runs on (see ``docs/matte.md``).

A 1280x720 frame reaches the landscape model at 256x144, so a person gets a few thousand of
its pixels. The segmenter instead runs the model on a window around everyone in frame, so they
fill the model's input. This module is the pure geometry of that window:

- :func:`person_box`: the bounding box of everyone in a confidence map (every component
  above 1/2 that is not a speck: the union of all the people, never the largest blob);
- :func:`crop_for`: that box grown by a margin, then to the shape of the model that will
  see it (16:9 when it is wider than 4:3, square otherwise), at least a quarter of the frame's
  shorter side, shifted into the frame;
- :class:`CropTracker`: the window over time. It grows at once when the people reach past it
  (nobody is cut), but it holds still while they stay well inside it, and shrinks only when
  they fill less than half of it, then in steps (no jitter, and no jump of the matte from the
  model seeing a slightly different window every frame).
"""

from __future__ import annotations

import cv2
import numpy as np

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels (x1, y1 exclusive)

LANDSCAPE_ASPECT = 16.0 / 9.0
LANDSCAPE_ABOVE = 1.2  # a window wider than this goes to the landscape model (frames: 4:3, see docs/matte.md)
SPECK = 0.04  # components smaller than this share of the largest are noise, not people
MIN_SIDE = 0.25  # the window is at least this share of the frame's shorter side
FULL_FRAME = 0.8  # a window covering this much of the frame's area becomes the whole frame
SHRINK_BELOW = 0.5  # the window shrinks once the wanted one covers less than this share of it
SHRINK_STEP = 0.25  # ... by this share of the way per frame
TIGHT_MARGIN = 0.05  # a first frame's second view: the people's box grown by this share each side
CORE = 0.9  # the person's core: confidence at least this
FADE_NEAR, FADE_FAR = 0.03, 0.08  # unsure confidence fades out between these distances from the core
# (shares of the model input's longer side)


def person_box(conf: np.ndarray, threshold: float = 0.5) -> Box | None:
    """Bounding box (in ``conf`` pixels) of every confident component but specks, or None."""
    mask = (conf >= threshold).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = stats[1:][areas >= min(max(2, SPECK * areas.max()), areas.max())]
    x0 = keep[:, cv2.CC_STAT_LEFT].min()
    y0 = keep[:, cv2.CC_STAT_TOP].min()
    x1 = (keep[:, cv2.CC_STAT_LEFT] + keep[:, cv2.CC_STAT_WIDTH]).max()
    y1 = (keep[:, cv2.CC_STAT_TOP] + keep[:, cv2.CC_STAT_HEIGHT]).max()
    return float(x0), float(y0), float(x1), float(y1)


def scale_box(box: Box, sx: float, sy: float, dx: float = 0.0, dy: float = 0.0) -> Box:
    """``box`` in another grid: ``x * sx + dx``, ``y * sy + dy``."""
    x0, y0, x1, y1 = box
    return x0 * sx + dx, y0 * sy + dy, x1 * sx + dx, y1 * sy + dy


def is_landscape(width: float, height: float) -> bool:
    """The landscape model suits a window wider than :data:`LANDSCAPE_ABOVE`."""
    return width > height * LANDSCAPE_ABOVE


def _fit(lo: float, size: float, limit: int) -> tuple[int, int]:
    """An integer span of ``size`` (at most ``limit``) centred on ``lo + size / 2``, inside [0, limit]."""
    n = int(round(min(size, limit)))
    start = int(round(lo + size / 2 - n / 2))
    start = min(max(start, 0), limit - n)
    return start, start + n


def crop_for(box: Box, frame_size: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """The model's window ``(x0, y0, x1, y1)`` (integers, inside the frame) for people in ``box``."""
    w, h = frame_size
    x0, y0, x1, y1 = box
    bw, bh = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    x0, x1 = x0 - margin * bw, x1 + margin * bw
    y0, y1 = y0 - margin * bh, y1 + margin * bh
    bw, bh = x1 - x0, y1 - y0
    aspect = LANDSCAPE_ASPECT if is_landscape(bw, bh) else 1.0
    side = MIN_SIDE * min(w, h)
    cw, ch = max(bw, bh * aspect, side * aspect), max(bh, bw / aspect, side)
    cx0, cx1 = _fit(x0 + bw / 2 - cw / 2, cw, w)
    cy0, cy1 = _fit(y0 + bh / 2 - ch / 2, ch, h)
    if (cx1 - cx0) * (cy1 - cy0) >= FULL_FRAME * w * h:
        return 0, 0, w, h
    return cx0, cy0, cx1, cy1


def tight_window(box: Box, frame_size: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """``box`` grown by ``margin`` of its size each side and clipped to the frame, in its own
    shape (no model shape, no whole-frame rule): the first frame's second, closer view."""
    w, h = frame_size
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    return (int(max(0, round(x0 - margin * bw))), int(max(0, round(y0 - margin * bh))),
            int(min(w, round(x1 + margin * bw))), int(min(h, round(y1 + margin * bh))))


def far_from_core(outside: np.ndarray, start: float, end: float) -> np.ndarray:
    """How far each pixel lies from the person's core, as a ramp: 0 up to ``start`` pixels from
    the nearest core pixel (the zeros of the uint8 ``outside``), rising linearly to 1 at ``end``
    and beyond. A new float32 array; ``outside`` must have a zero somewhere."""
    d = cv2.distanceTransform(outside, cv2.DIST_L2, 3)
    d -= start
    d *= 1.0 / (end - start)
    np.clip(d, 0.0, 1.0, out=d)
    return d


def fade_far_background(conf: np.ndarray, out: np.ndarray) -> None:
    """``conf`` into ``out`` with its unsure parts far from the person's core faded out: a plain
    backdrop the model holds at 0.6-0.9 a hand's width from the body is background, not hair
    (hair and edges lie within :data:`FADE_NEAR` of the core, where nothing changes). The
    confidence is scaled by 1 at ``FADE_NEAR`` of the input's longer side from the nearest core
    pixel down to 0 at ``FADE_FAR``; the core itself (and a frame without one) is unchanged."""
    outside = (conf < CORE).view(np.uint8)  # distanceTransform measures to the zeros: the core
    if outside.all():
        np.copyto(out, conf)
        return
    side = float(max(conf.shape))
    keep = far_from_core(outside, FADE_NEAR * side, FADE_FAR * side)
    np.subtract(1.0, keep, out=keep)
    np.multiply(conf, keep, out=out)


def contains(outer: tuple[int, int, int, int], inner: tuple[int, int, int, int]) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


def area(box: tuple[int, int, int, int]) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


class CropTracker:
    """The window over time: grows at once, holds still, shrinks slowly (module docstring)."""

    def __init__(self) -> None:
        self.crop: tuple[int, int, int, int] | None = None

    def reset(self) -> None:
        self.crop = None

    def update(self, wanted: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        cur = self.crop
        if cur is None or not contains(cur, wanted):
            # the people reach past the window: take the wanted one (which holds them) at once
            self.crop = wanted
        elif area(wanted) < SHRINK_BELOW * area(cur):
            step = tuple(int(round(c + SHRINK_STEP * (n - c))) for c, n in zip(cur, wanted))
            self.crop = step if contains(step, wanted) else wanted
        return self.crop
