"""Thread policy, in one place: how the Numba kernels, MediaPipe and onnxruntime share the cores.

On two cores the three libraries compete for the same CPU; each choice here keeps one of them
from stealing time the others need (the measurements are in ``docs/depth.md`` and
``docs/render.md``):

- Numba's OpenMP workers sleep as soon as a parallel region ends (:func:`set_process_policy`);
- while the depth model runs on the second core, kernels use one thread (:func:`one_numba_thread`);
- kernel rows are handed out in small chunks (:func:`row_chunks`);
- onnxruntime gets one thread in the model's own thread and two in the caller's
  (:func:`model_threads`), and spins briefly only where the caller waits for it
  (:func:`model_spins`, :func:`onnx_session_options`);
- a live source paced at its frame rate runs the kernels and OpenCV on one thread while a frame
  on one thread fits well inside the frame interval (:class:`PacedThreads`): handing rows to a
  second thread and waking it costs CPU that buys nothing when the frame is early anyway.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from typing import Callable, Iterator

import cv2
import numba
import numpy as np

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
def numba_threads(n: int) -> Iterator[None]:
    """Numba kernels called from this thread run on ``n`` threads within the block (Numba's
    count is per calling thread); the count before is restored after it."""
    prev = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(prev)


def one_numba_thread():
    """Context manager: Numba kernels run on one thread within the block.

    While another stage's model runs on the second core (depth overlapped with segmentation), a
    two-thread kernel would wait for that core to do its other half.
    """
    return numba_threads(1)


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


class PacedThreads:
    """How many threads a paced (live) stream's kernels use, frame by frame.

    Starts on every thread. Once a window of frames says a frame on one thread may take at most
    ``share`` of the interval (their median time times the one-thread / every-thread ratio: 1
    until a try on one thread measured it), the kernels and OpenCV drop to one thread: the same
    work for less CPU (no rows handed out, no worker woken and put to sleep again per kernel),
    and the second core left to the call app. Back to every thread as soon as one-thread frames
    run late (the median of a window over ``LATE_SHARE`` of the interval, or ``LATE_RUN`` of the
    last ``RECENT`` frames over the interval), with the ratio learnt from what was seen; trying
    again after a back-off that doubles each time.
    The output does not depend on the thread count.

    ``threads`` is what the next frame uses; :meth:`observe` takes each frame's processing time.
    Numba's thread count is per thread (:meth:`kernels` sets it in the calling thread around a
    frame); OpenCV's is process-wide and changed only when the mode changes, and put back by
    :meth:`close`.
    """

    WINDOW = 20          # frames per decision
    LATE_SHARE = 0.85    # a one-thread window's median above this share of the interval: back to all
    LATE_RUN = 3         # ... or this many of the last RECENT frames over the interval
    RECENT = 5
    RATIO = 1.0          # one-thread / every-thread time until measured: try it and see
    RETRY_S = 10.0       # first back-off before trying one thread again (doubles, up to MAX_RETRY_S)
    MAX_RETRY_S = 160.0

    def __init__(self, interval_ms: float, share: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_ms = interval_ms
        self.share = share
        self.all_threads = numba.config.NUMBA_NUM_THREADS
        self.threads = self.all_threads
        self.ratio = self.RATIO
        self._clock = clock
        self._window: deque[float] = deque(maxlen=self.WINDOW)
        self._recent: deque[float] = deque(maxlen=self.RECENT)
        self._all_ms: float | None = None
        self._retry_at = 0.0
        self._backoff = self.RETRY_S
        self._cv_threads = cv2.getNumThreads()
        self.switches = 0
        self._closed = False

    def kernels(self):
        """Context manager: the Numba thread count of this frame, in the calling thread."""
        return numba_threads(self.threads)

    def observe(self, frame_ms: float) -> None:
        """One frame's processing time (wall, ms) at the current thread count."""
        if self._closed:  # a frame that outlived the stream (a stalled stage finishing late)
            return
        self._window.append(frame_ms)
        self._recent.append(frame_ms)
        now = self._clock()
        if self.threads == 1:
            late = sum(t > self.interval_ms for t in self._recent) >= self.LATE_RUN
            med = float(np.median(self._window))
            if late or (len(self._window) == self.WINDOW and med > self.LATE_SHARE * self.interval_ms):
                if self._all_ms:
                    self.ratio = min(max(med / self._all_ms, 1.0), 4.0)
                self._retry_at = now + self._backoff
                self._backoff = min(2.0 * self._backoff, self.MAX_RETRY_S)
                self._switch(self.all_threads)
            return
        if len(self._window) < self.WINDOW or self.all_threads <= 1:
            return
        self._all_ms = float(np.median(self._window))
        if self.share > 0.0 and now >= self._retry_at and self._all_ms * self.ratio <= self.share * self.interval_ms:
            self._switch(1)

    def _switch(self, threads: int) -> None:
        self.threads = threads
        self.switches += 1
        self._window.clear()
        self._recent.clear()
        cv2.setNumThreads(1 if threads == 1 else self._cv_threads)

    def close(self) -> None:
        """OpenCV's thread count as it was."""
        self._closed = True
        if self.threads == 1:
            cv2.setNumThreads(self._cv_threads)
        self.threads = self.all_threads
