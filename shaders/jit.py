"""The one place for Numba options.

``cache=True`` so compiled kernels are reused across runs; an explicit fastmath flag set (no
``nnan``/``ninf``: the fail-closed checks must still see NaN); ``parallel=True`` kernels use
``prange`` on their outer row loop only. :func:`register_warmup` lets each kernel module add a
function that calls its kernels once on tiny inputs; :func:`warmup` runs them all.
"""

from __future__ import annotations

import os
import threading
from typing import Callable

# Numba's OpenMP workers spin after each parallel region by default; on 2 cores that spinning
# steals the CPU MediaPipe and onnxruntime need between our kernels (measured: segmentation
# 19.7 vs 7.5 ms). Must be set before the OpenMP runtime starts, i.e. before any kernel runs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

_JIT = dict(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy", boundscheck=False)


def kernel(fn: Callable | None = None, *, parallel: bool = False):
    """Decorator: compile ``fn`` with the project's options (``parallel`` for row loops)."""
    def wrap(f: Callable):
        return numba.njit(parallel=parallel, **_JIT)(f)
    return wrap(fn) if fn is not None else wrap


def inline(fn: Callable):
    """A small helper called from kernels (same options, always inlined by LLVM)."""
    return numba.njit(inline="always", **_JIT)(fn)


_warmups: list[Callable[[], None]] = []
_warm_lock = threading.Lock()
_warm_done = False


def register_warmup(fn: Callable[[], None]) -> Callable[[], None]:
    _warmups.append(fn)
    return fn


def warmup() -> None:
    """Compile every registered kernel once (idempotent, thread-safe)."""
    global _warm_done
    with _warm_lock:
        if _warm_done:
            return
        # importing the kernel modules registers their warm-ups
        from . import registry  # noqa: F401

        for fn in _warmups:
            fn()
        _warm_done = True
