"""Numba kernels: pure array functions, no pipeline knowledge.

Conventions: kernels take their output array(s) last and return ``None``; inputs are
C-contiguous float32 (or uint8 frames); ``jit`` options live in :mod:`shaders.jit` only.
:func:`warmup` compiles (or loads from the on-disk cache) every kernel so the first camera frame
does not stall.
"""

from .jit import warmup

__all__ = ["warmup"]
