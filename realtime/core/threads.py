"""Thread policy, in one place: how the Numba kernels, MediaPipe and onnxruntime share the cores.

On two cores the three libraries compete for the same CPU; each choice here keeps one of them
from stealing time the others need (the measurements are in ``docs/depth.md`` and
``docs/render.md``):

- Numba's OpenMP workers sleep as soon as a parallel region ends (:func:`set_process_policy`);
- while the depth model runs on the second core, kernels use one thread (:func:`one_numba_thread`);
- kernel rows are handed out in small chunks (:func:`row_chunks`);
- onnxruntime gets one thread in the model's own thread and two in the caller's
  (:func:`model_threads`), and spins briefly only where the caller waits for it
  (:func:`model_spins`, :func:`onnx_session_options`).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import numba

from realtime.core.config import DepthConfig

ROW_CHUNK = 8   # layer rows a kernel thread takes at a time
SPIN_US = 10    # onnxruntime workers spin at most this long for the next step of a run


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


def row_chunks():
    """Context manager: parallel kernels hand out rows ``ROW_CHUNK`` at a time.

    Rows differ in cost (the subject is cheap): small chunks balance the threads, and keep one
    stalled thread from holding up the frame on a busy machine.
    """
    return numba.parallel_chunksize(ROW_CHUNK)


def model_threads(cfg: DepthConfig) -> int:
    """onnxruntime threads: as configured, or 2 in the caller's thread and 1 in its own."""
    if cfg.threads:
        return cfg.threads
    return 1 if cfg.asynchronous else 2


def model_spins(cfg: DepthConfig) -> bool:
    """Spin-waiting only helps while the caller waits for a multi-threaded run; the model's own
    thread shares the cores with segmentation, which it must not slow down."""
    return cfg.spin and not cfg.asynchronous and model_threads(cfg) > 1


def onnx_session_options(threads: int, spin: bool):
    """onnxruntime session options for ``threads`` intra-op threads, spinning or not.

    A worker that sleeps between the steps of a run is woken for each; one that spins a few
    microseconds is not. Spinning long or between runs takes the core from whatever else runs,
    hence ``SPIN_US`` at most, stopped when the run returns.
    """
    import onnxruntime as ort  # only the onnxruntime backend needs it

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    so.add_session_config_entry("session.intra_op.spin_duration_us", str(SPIN_US))
    so.add_session_config_entry("session.force_spinning_stop", "1")
    return so
