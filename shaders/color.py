"""sRGB <-> linear light through lookup tables, with an optional invertible highlight boost.

Blur happens in linear light (light adds up linearly; averaging sRGB codes darkens and muddies
bokeh), so every frame is decoded with a 256-entry table and encoded back with a second table.

The *working* domain of the renderer may be "boosted": ``g(v) = v`` below a threshold and a
smooth, strictly increasing gain up to ``boost`` at ``v = 1`` above it. Decoding folds ``g``
into the 256-entry table and encoding folds ``g^-1`` into the encode table, so the boost costs
nothing per pixel, mid-tones (below the threshold) are untouched (mean-preserving), a uniform
field comes back exactly, and a clipped light source averaged over a defocus disk keeps enough
energy to stay visible as a disc.

The encode table is indexed by the bits of the float32 value: exponent and the top
``MANTISSA_BITS`` bits of the mantissa, i.e. a piecewise-linear log scale with a relative step of
2^-10. Every step is below 0.1 sRGB level from black (2^-14, under a fifth of a level) to the
top, and the index is integer arithmetic on the value's bits: no square root, no division, so
the encode loops vectorise up to the table load. :func:`encode_bits` is the inlined helper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .jit import inline

MANTISSA_BITS = 10
EXP_LOW = -14          # values below 2^-14 encode to 0
EXP_HIGH = 6           # values from 2^6 on encode to 255 (the boost is at most 20)
ENCODE_SHIFT = 23 - MANTISSA_BITS
ENCODE_BASE = (127 + EXP_LOW) << MANTISSA_BITS
ENCODE_SIZE = (EXP_HIGH - EXP_LOW) << MANTISSA_BITS


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
    """Decode table (uint8 code -> working value) and encode table (working value bits -> uint8)."""

    decode: np.ndarray       # (256,) float32
    encode: np.ndarray       # (ENCODE_SIZE,) uint8, indexed by encode_index(value bits)
    boost: float
    threshold: float

    def encode_array(self, v: np.ndarray) -> np.ndarray:
        """NumPy version of :func:`encode_bits` (for tests and tools, not for hot paths)."""
        bits = np.ascontiguousarray(v, np.float32).view(np.int32)
        q = np.clip((bits >> ENCODE_SHIFT) - ENCODE_BASE, 0, ENCODE_SIZE - 1)
        return self.encode[q]


def make_luts(boost: float = 1.0, threshold: float = 1.0) -> ColorLuts:
    """Tables for a highlight ``boost`` (1 = plain sRGB) above the sRGB level ``threshold``."""
    if not (1.0 <= boost <= 20.0):
        raise ValueError(f"highlight boost must be within 1..20, got {boost!r}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"highlight threshold must be within 0..1, got {threshold!r}")
    codes = np.arange(256, dtype=np.float64) / 255.0
    decode = boost_curve(srgb_to_linear(codes), boost, threshold)
    # the value at the centre of every bin of the bits index
    bits = ((np.arange(ENCODE_SIZE, dtype=np.int64) + ENCODE_BASE) << ENCODE_SHIFT) + (1 << (ENCODE_SHIFT - 1))
    centre = bits.astype(np.uint32).view(np.float32).astype(np.float64)
    centre[0] = 0.0  # the first bin also holds everything below 2^-14
    # invert g numerically on a dense grid (g is strictly increasing), once per preset
    grid = np.linspace(0.0, 1.0, 1 << 17)
    g = boost_curve(grid, boost, threshold)
    lin = np.interp(np.minimum(centre, g[-1]), g, grid)
    encode = np.floor(linear_to_srgb(lin) * 255.0 + 0.5).astype(np.uint8)
    return ColorLuts(decode.astype(np.float32), encode, float(boost), float(threshold))


@inline
def encode_bits(bits, lut):
    """The int32 bits of one working-domain float32 value -> uint8 code (negative -> 0)."""
    q = (bits >> ENCODE_SHIFT) - ENCODE_BASE
    return lut[min(max(q, 0), ENCODE_SIZE - 1)]
