"""Fitting a picture to a requested size without ever changing the shape of people.

``crop`` (the default, what phone and call apps do with a camera): scale uniformly until the
picture fills the size, cut the overflow off both sides equally. ``pad``: scale uniformly until
the whole picture fits, black bars on the two short sides (letterbox / pillarbox).
"""

from __future__ import annotations

from math import gcd

import cv2
import numpy as np

FITS = ("crop", "pad")


def aspect(size: tuple[int, int]) -> str:
    """``(1920, 1080)`` -> ``"16:9"``."""
    w, h = size
    g = gcd(w, h) or 1
    return f"{w // g}:{h // g}"


def _scale(src: tuple[int, int], dst: tuple[int, int], fit: str) -> float:
    sx, sy = dst[0] / src[0], dst[1] / src[1]
    return max(sx, sy) if fit == "crop" else min(sx, sy)


def describe_fit(src: tuple[int, int], dst: tuple[int, int], fit: str = "crop") -> str | None:
    """What fitting ``src`` to ``dst`` does, e.g. ``512x512 -> 1920x1080 (scaled 3.75, cropped to 16:9)``;
    None when nothing changes."""
    if tuple(src) == tuple(dst):
        return None
    text = f"{src[0]}x{src[1]} -> {dst[0]}x{dst[1]} (scaled {_scale(src, dst, fit):.2f}"
    if src[0] * dst[1] != src[1] * dst[0]:
        text += f", {'cropped' if fit == 'crop' else 'padded'} to {aspect(dst)}"
    return text + ")"


def fit_frame(frame: np.ndarray, size: tuple[int, int] | None, fit: str = "crop") -> np.ndarray:
    """``frame`` at exactly ``size`` (w, h), uniformly scaled, centre-cropped or padded; a new array."""
    if size is None:
        return frame
    w, h = int(size[0]), int(size[1])
    fh, fw = frame.shape[:2]
    if (fw, fh) == (w, h):
        return frame
    if fit == "crop":
        if fw * h > fh * w:  # wider than the target: cut the sides
            cw = max(1, round(fh * w / h))
            x0 = (fw - cw) // 2
            frame = frame[:, x0:x0 + cw]
        elif fw * h < fh * w:  # taller: cut top and bottom
            ch = max(1, round(fw * h / w))
            y0 = (fh - ch) // 2
            frame = frame[y0:y0 + ch]
        interp = cv2.INTER_AREA if frame.shape[1] > w else cv2.INTER_LINEAR
        return np.ascontiguousarray(cv2.resize(frame, (w, h), interpolation=interp))
    if fit != "pad":
        raise ValueError(f"fit '{fit}' is not one of {', '.join(FITS)}")
    s = min(w / fw, h / fh)
    iw, ih = min(w, max(1, round(fw * s))), min(h, max(1, round(fh * s)))
    interp = cv2.INTER_AREA if iw < fw else cv2.INTER_LINEAR
    inner = cv2.resize(frame, (iw, ih), interpolation=interp)
    out = np.zeros((h, w) + frame.shape[2:], frame.dtype)
    x0, y0 = (w - iw) // 2, (h - ih) // 2
    out[y0:y0 + ih, x0:x0 + iw] = inner
    return out
