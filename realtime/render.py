"""Lens renderer: signed circle of confusion from disparity, then bokeh.

First version: a normalised box blur of the background (person weighted out, so it does not
halo) at the largest CoC, composited under the sharp person with the soft matte.
"""

from __future__ import annotations

import cv2
import numpy as np

from .config import RenderConfig
from .frames import check_frame, check_plane
from .stage import Stage

REFERENCE_HEIGHT = 720  # lengths in presets are given for a 720-pixel-high frame


def coc_from_disparity(disparity: np.ndarray, focus: float, aperture_px: float, max_coc_px: float,
                       *, out: np.ndarray | None = None) -> np.ndarray:
    """Signed CoC in pixels: ``aperture_px * (focus - disparity)`` clamped to +/- ``max_coc_px``.

    Negative = nearer than the focus plane, positive = behind it.
    """
    if out is None:
        out = np.empty(disparity.shape, np.float32)
    np.subtract(np.float32(focus), disparity, out=out)
    out *= np.float32(aperture_px)
    np.clip(out, -max_coc_px, max_coc_px, out=out)
    return out


def render_bokeh(frame_bgr: np.ndarray, coc_px: np.ndarray, matte: np.ndarray | None = None, *,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Render ``frame_bgr`` through a lens with the given signed CoC map; returns uint8 BGR."""
    from shaders.blur import composite_u8

    check_frame(frame_bgr, "frame_bgr")
    h, w = frame_bgr.shape[:2]
    check_plane(coc_px, (h, w), "coc_px")
    if out is None:
        out = np.empty_like(frame_bgr)
    r = int(round(float(np.max(np.abs(coc_px))))) if coc_px.size else 0
    if r < 1:
        np.copyto(out, frame_bgr)
        return out
    weight = np.clip(np.abs(coc_px) / r, 0.0, 1.0).astype(np.float32)
    if matte is not None:
        check_plane(matte, (h, w), "matte")
        weight *= 1.0 - matte
    weight += 1e-4
    k = (2 * r + 1, 2 * r + 1)
    num = cv2.blur(frame_bgr.astype(np.float32) * weight[..., None], k)
    den = cv2.blur(weight, k)
    bg = np.clip(num / den[..., None], 0, 255).astype(np.uint8)
    alpha = np.clip(1.0 - np.abs(coc_px) / max(r, 1), 0.0, 1.0).astype(np.float32)
    if matte is not None:
        alpha = np.maximum(alpha, matte)
    composite_u8(frame_bgr, bg, alpha, out)
    return out


class Renderer(Stage):
    name = "render"

    def __init__(self, config: RenderConfig) -> None:
        super().__init__()
        self.config = config
        self._coc: np.ndarray | None = None
        self._out: np.ndarray | None = None

    def scaled(self, height: int) -> tuple[float, float]:
        """(aperture_px, max_coc_px) for a frame of this height."""
        s = height / REFERENCE_HEIGHT
        return self.config.aperture_px * s, self.config.max_coc_px * s

    def process(self, frame: np.ndarray, timestamp_ms: int, matte: np.ndarray, disparity: np.ndarray,
                focus: float) -> tuple[np.ndarray, np.ndarray]:
        self._begin(timestamp_ms)
        h, w = frame.shape[:2]
        if self._out is None or self._out.shape != frame.shape:
            self._out = np.empty_like(frame)
            self._coc = np.empty((h, w), np.float32)
        aperture, max_coc = self.scaled(h)
        coc_from_disparity(disparity, focus, aperture, max_coc, out=self._coc)
        if not self.config.effect:
            np.copyto(self._out, frame)
        else:
            render_bokeh(frame, self._coc, matte, out=self._out)
        return self._out, self._coc
