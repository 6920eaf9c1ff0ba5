"""The depth model in its own thread: the newest submitted input is run, the newest result wins."""

from __future__ import annotations

import threading

from realtime.core.errors import StageError

from .backends import DepthModel
from .fitting import Fit, Slot, content

THREAD_NAME = "portrait-cam-depth"


class AsyncInference:
    """The model in its own thread: the newest submitted input is run, the newest result wins.

    Four slots cycle between the caller (filling one), the queue (one pending), the worker (one
    running) and the finished result (one); a newer submission or result replaces an older one,
    whose slot goes back to the free list.
    """

    SLOTS = 4

    def __init__(self, backend: DepthModel) -> None:
        self._backend = backend
        self._cond = threading.Condition()
        self._free: list[Slot] = []
        self._fit: Fit | None = None
        self._pending: Slot | None = None
        self._result: Slot | None = None
        self._error: BaseException | None = None
        self._stop = False
        self._busy = False
        self._generation = 0  # bumped by discard(): results of older submissions are dropped
        self._seq = 0         # submissions so far
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def slot(self, fit: Fit) -> Slot:
        """A free slot for a frame of this fit (the caller fills it and hands it to :meth:`submit`)."""
        with self._cond:
            if fit != self._fit:
                self._fit = fit
                self._free = [Slot(fit) for _ in range(self.SLOTS)]
                self._pending = None
                if self._result is not None and self._result.fit != fit:
                    self._result = None
            while not self._free:  # only if the caller holds slots it did not give back
                self._cond.wait(0.1)
                self._raise_error()
            return self._free.pop()

    def release(self, slot: Slot) -> None:
        with self._cond:
            if slot.fit == self._fit:
                self._free.append(slot)
                self._cond.notify_all()

    def submit(self, slot: Slot) -> int:
        """Queue a filled slot, replacing any input not yet started; returns its sequence number."""
        with self._cond:
            self._raise_error()
            if self._pending is not None:
                self._free.append(self._pending)
            self._seq += 1
            slot.generation = self._generation
            slot.seq = self._seq
            self._pending = slot
            self._cond.notify_all()
            return self._seq

    def discard(self) -> None:
        """Forget queued and finished work (a new stream): nothing submitted before comes out."""
        with self._cond:
            self._generation += 1
            for s in (self._pending, self._result):
                if s is not None and s.fit == self._fit:
                    self._free.append(s)
            self._pending = self._result = None
            self._cond.notify_all()

    def take(self, min_seq: int | None = None) -> Slot | None:
        """The newest finished result (once; give it back with :meth:`release`), or None.

        With ``min_seq``, blocks until a result of that submission or a later one is there
        (submissions replaced before they started count as done by any later result).
        """
        with self._cond:
            while min_seq is not None and (self._result is None or self._result.seq < min_seq) \
                    and self._error is None and not self._stop:
                self._cond.wait(0.5)
            self._raise_error()
            r, self._result = self._result, None
            return r

    def _raise_error(self) -> None:
        if self._error is not None:
            e, self._error = self._error, None
            raise StageError(f"depth model failed in its thread: {e}") from e

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                slot, self._pending = self._pending, None
                self._busy = True
            try:
                content(self._backend.infer(slot.x), slot.fit, slot.raw)
            except BaseException as e:  # handed to the caller's thread, which raises it once
                with self._cond:
                    self._error = e
                    self._busy = False
                    if slot.fit == self._fit:
                        self._free.append(slot)
                    self._cond.notify_all()
                continue  # keep serving: the stage recovers when the model works again
            with self._cond:
                self._busy = False
                if slot.fit == self._fit and slot.generation == self._generation:
                    if self._result is not None:
                        self._free.append(self._result)
                    self._result = slot
                elif slot.fit == self._fit:
                    self._free.append(slot)
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._pending = None
            self._cond.notify_all()
        self._thread.join()

