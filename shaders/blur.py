"""First-version blur helpers: alpha compositing of a sharp frame over a blurred one."""

from __future__ import annotations

import numpy as np
from numba import prange

from .jit import kernel, register_warmup


@kernel(parallel=True)
def composite_u8(fg, bg, alpha, out):
    """out = fg * alpha + bg * (1 - alpha), per pixel; uint8 (H, W, 3) images, alpha (H, W) float32."""
    h, w = alpha.shape
    for y in prange(h):
        for x in range(w):
            a = alpha[y, x]
            for c in range(3):
                v = fg[y, x, c] * a + bg[y, x, c] * (1.0 - a) + 0.5
                out[y, x, c] = np.uint8(min(max(v, 0.0), 255.0))


@register_warmup
def _warm() -> None:
    img = np.zeros((3, 5, 3), np.uint8)
    composite_u8(img, img, np.zeros((3, 5), np.float32), np.empty_like(img))
