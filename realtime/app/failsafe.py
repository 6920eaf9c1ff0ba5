"""Fail closed: the output never shows the unprocessed room, and never freezes.

The loop runs the pipeline through a :class:`Watchdog`: a worker thread with a deadline. When a
stage raises, returns garbage (caught by the pipeline's output checks) or stalls past the
deadline, the loop sends the last good rendered frame for a short gap and a fully blurred frame
after that (:func:`privacy_frame`), says why in the status line and the log, and recovers by
itself as soon as a frame goes through again. A stalled call is not abandoned: while it is
still running, new frames are not queued behind it but answered fail-closed at once.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import cv2
import numpy as np

from realtime.core.config import REFERENCE_HEIGHT


def privacy_frame(frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """A frame so blurred that nothing in the room is recognisable (cheap: two small resizes)."""
    h, w = frame.shape[:2]
    sw, sh = max(2, w // 48), max(2, h // 48)
    small = cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA)
    small = cv2.blur(small, (3, 3))
    return cv2.resize(small, (w, h), dst=out, interpolation=cv2.INTER_LINEAR)


def unavailable_card(last: np.ndarray | None, size: tuple[int, int], text: str = "Camera unavailable") -> np.ndarray:
    """A 'camera unavailable' card over the blurred last frame (or grey), for live outputs."""
    w, h = size
    card = privacy_frame(last) if last is not None and last.shape[:2] == (h, w) else np.full((h, w, 3), 60, np.uint8)
    card = (card * 0.5).astype(np.uint8)
    scale = max(0.5, h / REFERENCE_HEIGHT)
    for line, dy in ((text, -0.3), ("reconnecting...", 1.2)):
        (tw, th), _ = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, int(2 * scale)))
        org = ((w - tw) // 2, int(h / 2 + dy * th * 1.5))
        cv2.putText(card, line, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), max(1, int(2 * scale)),
                    cv2.LINE_AA)
    return card


class Watchdog:
    """Calls ``fn(*args)`` in a worker thread and waits at most ``deadline_s`` for it.

    ``call`` returns ``(value, None)`` on success and ``(None, reason)`` on an exception, a
    timeout, or while a previous timed-out call is still running.
    """

    def __init__(self, fn: Callable[..., Any], deadline_s: float, describe_busy: Callable[[], str] | None = None,
                 name: str = "portrait-cam-pipeline") -> None:
        self.fn = fn
        self.deadline_s = deadline_s
        self.describe_busy = describe_busy or (lambda: "pipeline")
        self._cond = threading.Condition()
        self._job: tuple | None = None
        self._result: tuple[bool, Any] | None = None
        self._busy_since: float | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._busy_since is not None

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._job is not None or self._stop)
                if self._stop:
                    return
                args, self._job = self._job, None
            try:
                res = (True, self.fn(*args))
            except BaseException as e:  # reported to the caller, never lost in the thread
                res = (False, e)
            with self._cond:
                self._result = res
                self._busy_since = None
                self._cond.notify_all()

    def call(self, *args: Any, stop: Callable[[], bool] | None = None) -> tuple[Any, str | None]:
        """``stop`` (polled while waiting) ends the wait early with the reason ``interrupted``."""
        with self._cond:
            if self._busy_since is not None:
                return None, (f"{self.describe_busy()} still busy after "
                              f"{(time.monotonic() - self._busy_since) * 1000:.0f} ms")
            self._result = None
            self._job = args
            self._busy_since = time.monotonic()
            self._cond.notify_all()
            if stop is None:
                done = self._cond.wait_for(lambda: self._result is not None, self.deadline_s)
            else:
                end = time.monotonic() + self.deadline_s
                done = False
                while not done and not stop() and time.monotonic() < end:
                    done = self._cond.wait_for(lambda: self._result is not None,
                                               min(0.05, max(0.0, end - time.monotonic())))
                if not done and stop():
                    return None, "interrupted"
            if not done:
                return None, f"{self.describe_busy()} stalled past {self.deadline_s * 1000:.0f} ms"
            ok, value = self._result
            self._result = None
        if ok:
            return value, None
        if isinstance(value, (KeyboardInterrupt, SystemExit)):
            raise value
        return None, f"{type(value).__name__}: {value}"

    def close(self, timeout: float = 5.0) -> bool:
        """Stop the worker; True once it has ended (nothing of ``fn`` runs any more)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()
