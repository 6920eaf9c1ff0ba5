"""The one place for Numba options.

``cache=True`` so compiled kernels are reused across runs; an explicit fastmath flag set (no
``nnan``/``ninf``: the fail-closed checks must still see NaN); ``parallel=True`` kernels use
``prange`` on their outer row loop only. :func:`register_warmup` lets each kernel module add a
function that calls its kernels once on tiny inputs; :func:`shaders.warmup` runs them. This module
knows nothing of the kernels (they import it, never the other way round) and changes nothing
process-wide: the OpenMP wait policy is the application's choice (``realtime.core.threads``).
"""

from __future__ import annotations

from typing import Callable

import numba
import numpy as np

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


def frozen(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a``. Numba compiles a kernel apart for read-only and writable
    arrays; the callers pass inputs that may be either (a source's frame, a stage's read-only
    output, a caller's own array) through this, so each kernel has one signature to compile."""
    v = a.view()
    v.flags.writeable = False
    return v


warmups: list[Callable[[], None]] = []


def register_warmup(fn: Callable[[], None]) -> Callable[[], None]:
    """Decorator for a kernel module's warm-up (its kernels called once on tiny inputs)."""
    warmups.append(fn)
    return fn
