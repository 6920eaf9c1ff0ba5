"""Thread policy, in one place: how the Numba kernels, MediaPipe and onnxruntime share the cores.

On two cores the three libraries compete for the same CPU; each choice here keeps one of them
from stealing time the others need (numbers in ``docs/depth.md`` and ``docs/render.md``).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import numba


def set_process_policy() -> None:
    """Process-wide settings that must be made before the first Numba parallel kernel runs.

    Numba's OpenMP workers spin after each parallel region by default; on 2 cores that spinning
    steals the CPU MediaPipe and onnxruntime need between our kernels. OpenMP reads the policy
    once, when its runtime starts (the first parallel kernel), so it is set here, by the entry
    points (``run.py``'s CLI and :class:`realtime.Pipeline`, the library's), not at import. A
    value the user set in the environment is kept.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@contextlib.contextmanager
def one_numba_thread() -> Iterator[None]:
    """Numba kernels run on one thread within the block.

    While another stage's model runs on the second core (depth overlapped with segmentation), a
    two-thread kernel would wait for that core to do its other half.
    """
    prev = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(prev)
