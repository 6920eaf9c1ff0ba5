"""Pictures of the pipeline's intermediate planes, for the preview's debug views and the README.

- matte: the alpha as grey (white = person), so soft edges and holes show as they are;
- disparity: TURBO colour map, red = near, blue = far;
- CoC: a diverging map, black = in focus, orange = in front of the focus plane (near field),
  blue = behind it (far field), brighter = more blur;
- side by side: two frames next to each other (camera | output);
- :func:`debug_strip`: input | output | matte | disparity | CoC tiles with labels.

The per-frame views write into buffers a :class:`Buffers` owns (allocated once per size), so a
preview in a debug view allocates nothing per frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from realtime.core.errors import FrameShapeError
from realtime.core.frames import check_frame, check_plane

FONT = cv2.FONT_HERSHEY_SIMPLEX
NEAR_BGR = (0, 140, 255)   # orange: in front of the focus plane
FAR_BGR = (255, 150, 0)    # blue: behind it


class Buffers:
    """Scratch arrays by name, reallocated only when the shape or dtype changes."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype=np.uint8) -> np.ndarray:
        a = self._arrays.get(name)
        if a is None or a.shape != tuple(shape) or a.dtype != dtype:
            a = np.empty(shape, dtype)
            self._arrays[name] = a
        return a


def _coc_lut() -> np.ndarray:
    """256 x 1 BGR colour map: index 128 = CoC 0 (black), 0 = largest near CoC, 255 = largest far."""
    s = (np.arange(256, dtype=np.float32) - 128.0) / 127.0
    s = np.clip(s, -1.0, 1.0)
    # a gamma below 1 lifts small blur radii out of the black so the focus band is visible
    mag = np.abs(s) ** 0.6
    lut = np.zeros((256, 1, 3), np.float32)
    lut[s < 0, 0] = np.float32(NEAR_BGR)
    lut[s > 0, 0] = np.float32(FAR_BGR)
    lut *= mag[:, None, None]
    return np.rint(lut).astype(np.uint8)  # a constant table built once, not an image conversion


COC_LUT = _coc_lut()


def _plane(a: np.ndarray, name: str) -> np.ndarray:
    if isinstance(a, np.ndarray) and a.ndim != 2:
        raise FrameShapeError(f"{name} must be an (H, W) plane, got shape {a.shape}")
    return check_plane(a, getattr(a, "shape", (0, 0)), name)


def _out(out: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    want = (shape[0], shape[1], 3)
    if out is None:
        return np.empty(want, np.uint8)
    if out.shape != want or out.dtype != np.uint8:
        raise ValueError(f"out must be a {want} uint8 array, got {out.shape} {out.dtype}")
    return out


def matte_view(matte: np.ndarray, *, out: np.ndarray | None = None, buffers: Buffers | None = None) -> np.ndarray:
    """The matte as a grey BGR image (alpha 1 = white)."""
    _plane(matte, "matte")
    h, w = matte.shape
    grey = (buffers or Buffers()).get("matte_u8", (h, w))
    cv2.convertScaleAbs(matte, grey, alpha=255.0)  # rounds and saturates
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR, dst=_out(out, (h, w)))


def disparity_view(disparity: np.ndarray, *, out: np.ndarray | None = None,
                   buffers: Buffers | None = None) -> np.ndarray:
    """Disparity through the TURBO colour map: red = near (1), blue = far (0)."""
    _plane(disparity, "disparity")
    h, w = disparity.shape
    u8 = (buffers or Buffers()).get("disparity_u8", (h, w))
    cv2.convertScaleAbs(disparity, u8, alpha=255.0)
    return cv2.applyColorMap(u8, cv2.COLORMAP_TURBO, dst=_out(out, (h, w)))


def coc_view(coc: np.ndarray, limit: float | None = None, *, out: np.ndarray | None = None,
             buffers: Buffers | None = None) -> np.ndarray:
    """Signed CoC in a diverging map (see the module docstring); ``limit`` is the CoC in pixels
    shown at full brightness (default: the largest in this frame). A fixed limit, such as the
    renderer's maximum radius, keeps the colours from pumping between frames."""
    _plane(coc, "coc")
    h, w = coc.shape
    buffers = buffers or Buffers()
    if limit is None:
        limit = float(np.max(np.abs(coc))) if coc.size else 0.0
    limit = max(float(limit), 1e-3)
    clipped = buffers.get("coc_f32", (h, w), np.float32)
    np.clip(coc, -limit, limit, out=clipped)
    idx = buffers.get("coc_u8", (h, w))
    # after the clip the values are in [-127, 127] + 128 >= 1, so the "abs" is a no-op
    cv2.convertScaleAbs(clipped, idx, alpha=127.0 / limit, beta=128.0)
    return cv2.applyColorMap(idx, COC_LUT, dst=_out(out, (h, w)))


def side_by_side(left: np.ndarray, right: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """``left`` and ``right`` (same size) next to each other: (H, 2W, 3)."""
    check_frame(left, "left")
    check_frame(right, "right")
    if left.shape != right.shape:
        raise ValueError(f"side_by_side needs two frames of the same size, got {left.shape} and {right.shape}")
    h, w = left.shape[:2]
    want = (h, 2 * w, 3)
    if out is None:
        out = np.empty(want, np.uint8)
    elif out.shape != want or out.dtype != np.uint8:
        raise ValueError(f"out must be a {want} uint8 array, got {out.shape} {out.dtype}")
    out[:, :w] = left
    out[:, w:] = right
    return out


def text_scale(height: int) -> float:
    """putText font scale that reads well at this image height (0.5 at 480p, 0.75 at 720p)."""
    return max(0.35, min(1.5, height / 960.0))


def draw_label(img: np.ndarray, text: str, org: tuple[int, int] = (0, 0), scale: float | None = None) -> tuple[int, int]:
    """White text on a darkened box whose top-left corner is ``org``; returns the box size."""
    h, w = img.shape[:2]
    scale = text_scale(h) if scale is None else scale
    thick = max(1, int(round(scale * 1.5)))
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
    pad = max(2, int(round(4 * scale)))
    x0, y0 = max(0, org[0]), max(0, org[1])
    x1, y1 = min(w, x0 + tw + 2 * pad), min(h, y0 + th + base + 2 * pad)
    if x1 > x0 and y1 > y0:
        roi = img[y0:y1, x0:x1]
        np.right_shift(roi, 1, out=roi)  # halve the brightness behind the text
        cv2.putText(img, text, (x0 + pad, y0 + pad + th), FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return x1 - x0, y1 - y0


def _tile(img: np.ndarray, size: tuple[int, int], label: str) -> np.ndarray:
    interp = cv2.INTER_AREA if size[1] < img.shape[0] else cv2.INTER_LINEAR
    t = cv2.resize(img, size, interpolation=interp)
    draw_label(t, label, (0, 0))
    return t


def debug_strip(input_frame: np.ndarray, result, *, tile_height: int = 240, coc_limit: float | None = None,
                gap: int = 2) -> np.ndarray:
    """input | output | matte | disparity | CoC in one row of labelled tiles.

    ``result`` is a :class:`~realtime.pipeline.Result` (anything with ``frame``, ``matte``,
    ``disparity`` and ``coc``). Tiles keep the frame's aspect ratio at ``tile_height`` pixels.
    """
    check_frame(input_frame, "input_frame")
    h, w = input_frame.shape[:2]
    check_frame(result.frame, "result.frame")
    for name in ("matte", "disparity", "coc"):
        check_plane(getattr(result, name), (h, w), f"result.{name}")
    if tile_height < 16:
        raise ValueError(f"tile_height must be at least 16 pixels, got {tile_height}")
    tw = max(1, round(w * tile_height / h))
    size = (tw, tile_height)
    tiles = [
        _tile(input_frame, size, "input"),
        _tile(result.frame, size, "output"),
        _tile(matte_view(result.matte), size, "matte"),
        _tile(disparity_view(result.disparity), size, "disparity (red = near)"),
        _tile(coc_view(result.coc, coc_limit), size, "CoC (orange near, blue far)"),
    ]
    strip = np.zeros((tile_height, len(tiles) * tw + (len(tiles) - 1) * gap, 3), np.uint8)
    for i, t in enumerate(tiles):
        x = i * (tw + gap)
        strip[:, x:x + tw] = t
    return strip
