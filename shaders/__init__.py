"""Numba kernels: pure array functions, no pipeline knowledge.

Conventions: kernels take their output array(s) last and return ``None``; inputs are
C-contiguous float32 (or uint8 frames); ``jit`` options live in :mod:`shaders.jit` only.
:func:`warmup` compiles (or loads from the on-disk cache) every kernel so the first camera frame
does not stall.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_done = False


def warmup() -> None:
    """Compile every kernel once (idempotent, thread-safe).

    The kernel modules are imported here, when warm-up is asked for, not when the package is:
    importing one kernel module (which imports :mod:`shaders.jit`, and so this package) must not
    import all the others, and no module imported by this package imports it back.
    """
    global _done
    with _lock:
        if _done:
            return
        from . import bokeh, checks, depth, matte, temporal, tiles  # noqa: F401  (each registers its warm-up)
        from .jit import warmups

        for fn in warmups:
            fn()
        _done = True


__all__ = ["warmup"]
