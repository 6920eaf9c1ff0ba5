"""Checks of a stage's output plane before the next stage (and any temporal state) reads it."""

from __future__ import annotations

import numpy as np

from .jit import frozen, kernel, register_warmup

# a float32 whose exponent bits are all set is an infinity or a NaN (nothing else is)
_EXPONENT = np.uint32(0x7F800000)


@kernel
def exponent_max(plane, out):
    """``out[0]`` = the largest exponent field (bits, masked) of the C-contiguous float32
    ``plane``: ``0x7F800000`` exactly when some element is NaN or infinite. Integer bits, so no
    float flag or compiler choice can fold a NaN away; a max over 32-bit lanes vectorises
    (about three times faster than a float32 sum over the plane)."""
    v = plane.reshape(plane.size).view(np.uint32)
    m = np.uint32(0)
    for i in range(v.size):
        m = max(m, v[i] & _EXPONENT)
    out[0] = m


def all_finite(plane: np.ndarray, scratch: np.ndarray) -> bool:
    """Whether every element of the float32 ``plane`` is finite (``scratch``: (1,) uint32)."""
    if not plane.flags.c_contiguous:
        plane = np.ascontiguousarray(plane)
    exponent_max(frozen(plane), scratch)
    return scratch[0] != _EXPONENT


@register_warmup
def _warm() -> None:
    exponent_max(frozen(np.zeros((2, 3), np.float32)), np.zeros(1, np.uint32))
