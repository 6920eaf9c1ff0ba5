"""Ctrl-C and SIGTERM during a job: the first one stops it, the next ones only count.

Python's default handler raises ``KeyboardInterrupt`` at every signal. A second Ctrl-C a few
milliseconds after the first then lands inside the shutdown itself (joining the pipeline's
worker, closing MediaPipe while that worker is still inside a stage), which crashed the process.
With :class:`InterruptGuard` installed, the first SIGINT or SIGTERM raises ``KeyboardInterrupt``
in the main thread and every later one only increments :attr:`InterruptGuard.count`, so the
shutdown runs to its end and the exit code is 130 every time.

While the streaming loop runs (:meth:`InterruptGuard.deferred`) even the first signal only sets
the flag, which the loop polls between frames and while it waits for the pipeline: an exception
raised at an arbitrary point of the main thread can land inside a library's own evaluation of
Python code, and CPython then ends the process by SIGINT at exit even though the job caught it
(exit -2 instead of 130 in about one run in six).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator


class InterruptGuard:
    def __init__(self) -> None:
        self.count = 0
        self._defer = False

    @property
    def interrupted(self) -> bool:
        return self.count > 0

    def __call__(self) -> bool:
        """True once a signal arrived (the loop's stop test)."""
        return self.count > 0

    def _handler(self, signum, frame) -> None:
        self.count += 1
        if self.count == 1 and not self._defer:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Within the block signals only set the flag; the code polls it."""
        self._defer = True
        try:
            yield
        finally:
            self._defer = False

    def install(self) -> Callable[[], None]:
        """Take over SIGINT and SIGTERM; returns a function restoring the previous handlers
        (after an interrupt they stay: the process is ending, and a late signal must not kill it)."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        old = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            if self.count:  # signals of the same storm may still be on their way: keep counting them
                return
            for s, h in old.items():
                signal.signal(s, h)
        return restore


@contextlib.contextmanager
def interrupt_guard() -> Iterator[InterruptGuard]:
    """:class:`InterruptGuard` installed for the block (and kept after it once interrupted)."""
    guard = InterruptGuard()
    restore = guard.install()
    try:
        yield guard
    except Exception as e:
        # the KeyboardInterrupt landed inside a library that turned it into its own error (an
        # extension module's import then raises ImportError): it is still the interrupt
        if guard.interrupted:
            raise KeyboardInterrupt from e
        raise
    finally:
        restore()


def ignore_until_exit() -> None:
    """SIGINT and SIGTERM ignored from now on (a process that is ending after an interrupt):
    Python's own handlers are reset to the default during interpreter shutdown, so a late signal
    of the same storm would otherwise kill the process by SIGINT instead of exit code 130."""
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
