"""sRGB <-> linear light through lookup tables, with an optional invertible highlight boost.

Blur happens in linear light (light adds up linearly; averaging sRGB codes darkens and muddies
bokeh), so every frame is decoded with a 256-entry table and encoded back with a second table.

The *working* domain of the renderer may be "boosted": ``g(v) = v`` below a threshold and a
smooth, strictly increasing gain up to ``boost`` at ``v = 1`` above it. Decoding folds ``g``
into the 256-entry table and encoding folds ``g^-1`` into the encode table, so the boost costs
nothing per pixel, mid-tones (below the threshold) are untouched (mean-preserving), a uniform
field comes back exactly, and a clipped light source averaged over a defocus disk keeps enough
energy to stay visible as a disc.

The encode table is indexed by ``sqrt(v / vmax)``: its steps are tiny near black, where sRGB is
steepest, so 4096 entries give sub-level accuracy everywhere (a linear index would need ~50 000
entries for the same near-black accuracy). :func:`encode` is the inlined per-channel helper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .jit import inline

ENCODE_SIZE = 4096


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 decode of values in [0, 1] (float64 reference, not for hot paths)."""
    x = np.asarray(x, np.float64)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 encode of linear values, clipped to [0, 1] (float64 reference)."""
    v = np.clip(np.asarray(v, np.float64), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1.0 / 2.4) - 0.055)


def boost_curve(v: np.ndarray, boost: float, threshold: float) -> np.ndarray:
    """The highlight gain ``g``: identity up to ``linear(threshold)``, ``boost`` at 1.

    ``g(v) = v * (1 + (boost - 1) * u^2)`` with ``u`` the position between the threshold and 1:
    continuous with a continuous slope at the threshold, strictly increasing, so invertible.
    """
    v = np.asarray(v, np.float64)
    t = float(srgb_to_linear(threshold))
    if boost <= 1.0 or t >= 1.0:
        return v.copy()
    u = np.clip((v - t) / (1.0 - t), 0.0, None)
    return v * (1.0 + (boost - 1.0) * u * u)


@dataclass(frozen=True)
class ColorLuts:
    """Decode table (uint8 code -> working value) and encode table (working value -> uint8)."""

    decode: np.ndarray       # (256,) float32
    encode: np.ndarray       # (ENCODE_SIZE,) uint8, indexed by sqrt(v / vmax) * (ENCODE_SIZE - 1)
    encode_scale: float      # 1 / vmax
    boost: float
    threshold: float

    @property
    def vmax(self) -> float:
        return 1.0 / self.encode_scale


def make_luts(boost: float = 1.0, threshold: float = 1.0) -> ColorLuts:
    """Tables for a highlight ``boost`` (1 = plain sRGB) above the sRGB level ``threshold``."""
    if not (boost >= 1.0 and math.isfinite(boost)):
        raise ValueError(f"highlight boost must be a finite number >= 1, got {boost!r}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"highlight threshold must be within 0..1, got {threshold!r}")
    codes = np.arange(256, dtype=np.float64) / 255.0
    decode = boost_curve(srgb_to_linear(codes), boost, threshold)
    vmax = float(boost_curve(np.array(1.0), boost, threshold))
    # invert g numerically on a dense grid (g is strictly increasing), once per preset
    grid = np.linspace(0.0, 1.0, 1 << 17)
    g = boost_curve(grid, boost, threshold)
    q = (np.arange(ENCODE_SIZE, dtype=np.float64) / (ENCODE_SIZE - 1)) ** 2 * vmax
    lin = np.interp(q, g, grid)
    encode = np.floor(linear_to_srgb(lin) * 255.0 + 0.5).astype(np.uint8)
    return ColorLuts(decode.astype(np.float32), encode, 1.0 / vmax, float(boost), float(threshold))


@inline
def encode(v, lut, scale):
    """One working-domain value -> uint8 code (``scale`` = 1 / vmax of the table)."""
    q = v * scale
    if not q > 0.0:  # also NaN: never index with garbage
        return lut[0]
    if q >= 1.0:
        return lut[lut.shape[0] - 1]
    return lut[int(np.sqrt(q) * np.float32(lut.shape[0] - 1) + np.float32(0.5))]
