"""Nobody watching, nothing spent: idle mode for live sources.

When every output says nobody reads it (:meth:`realtime.io.sinks.Sink.readers_present` is
``False`` for all, e.g. no app has the virtual camera open) for ``grace_s`` seconds, the loop
stops: the camera is released (its LED goes off), the model stages are closed, and the
outputs are kept alive with a placeholder card at a low rate, so call apps still list the
camera. When a reader appears, camera and models start again (the camera opens in its own
thread while the models are built) and the first processed frame replaces the card.

An output that cannot tell (``None``: a window, a file, a virtual camera backend without reader
information) keeps the pipeline running. ``--always-on`` turns idle mode off.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import cv2
import numpy as np

log = logging.getLogger(__name__)

IDLE_FPS = 2.0          # the placeholder's rate: enough for apps that want frames to list a device
DEFAULT_GRACE_S = 2.0   # apps probe devices (open, query, close): do not stop on a brief look
POLL_S = 0.1            # how often readers are asked while idle (a wake within ~0.1 s + start-up)
CARD_TEXT = "Portrait Cam"


def idle_card(size: tuple[int, int], text: str = CARD_TEXT) -> np.ndarray:
    """A dark card with the camera's name: what an app sees for the moment before frames come."""
    w, h = size
    card = np.full((h, w, 3), 40, np.uint8)
    scale = max(0.5, h / 720)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, int(2 * scale)))
    cv2.putText(card, text, ((w - tw) // 2, (h + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (200, 200, 200),
                max(1, int(2 * scale)), cv2.LINE_AA)
    return card


def idle_status(name: str = CARD_TEXT) -> str:
    return f"idle: no app is reading {name}"


class IdleGate:
    """Decides when the loop sleeps and does the sleeping (see the module docstring).

    ``source`` needs ``pause(paused)`` (:class:`realtime.io.sources.LiveSource`),
    ``pipeline`` ``suspend()``/``resume()``; ``sinks`` answer ``readers_present()``.
    """

    def __init__(self, sinks: Sequence, source, pipeline, *, grace_s: float = DEFAULT_GRACE_S,
                 poll_s: float = POLL_S, idle_fps: float = IDLE_FPS, name: str = CARD_TEXT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sinks = list(sinks)
        self.source = source
        self.pipeline = pipeline
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.idle_fps = idle_fps
        self.name = name
        self._clock = clock
        self._unwatched_since: float | None = None
        self._checked = -1e9
        self._watched = True
        self.idle = False
        self.sleeps = 0             # times the loop went idle
        self.idle_s = 0.0           # total time spent idle
        self.wake_s: list[float] = []  # reader seen -> models built and camera reopened asked

    def watched(self) -> bool:
        """True unless every output says nobody reads it."""
        answers = [s.readers_present() for s in self.sinks]
        return not answers or any(a is None or a for a in answers)

    def due(self) -> bool:
        """Called every loop turn: True when the loop should go idle now."""
        now = self._clock()
        if now - self._checked < self.poll_s:
            return not self._watched and self._unwatched_since is not None \
                and now - self._unwatched_since >= self.grace_s
        self._checked = now
        self._watched = self.watched()
        if self._watched:
            self._unwatched_since = None
            return False
        if self._unwatched_since is None:
            self._unwatched_since = now
        return now - self._unwatched_since >= self.grace_s

    def sleep(self, status=None, should_stop: Callable[[], bool] = lambda: False,
              hooks: Sequence[Callable[[], None]] = ()) -> bool:
        """Go idle until a reader appears; returns False when ``should_stop`` ended it instead."""
        t0 = self._clock()
        self.idle = True
        self.sleeps += 1
        self.source.pause()
        self.pipeline.suspend()
        card = idle_card(self.source.size, self.name)
        for s in self.sinks:
            s.hold(card, self.idle_fps)
        text = idle_status(self.name)
        log.info("%s: camera released, models stopped", text)
        if status is not None:
            status.update(text, force=True)
        woke = False
        try:
            while not should_stop():
                if self.watched():
                    woke = True
                    break
                for hook in hooks:
                    hook()
                if status is not None:
                    status.update(f"{text} (camera off, {self._clock() - t0:.0f} s)")
                time.sleep(self.poll_s)
        finally:
            t_wake = self._clock()
            self.idle_s += t_wake - t0
            self.idle = False
        if woke:  # (stopping instead: the caller closes camera and pipeline as they are)
            self.source.pause(False)    # the camera opens in the capture thread...
            self.pipeline.resume()      # ...while the models are built here
            self._unwatched_since = None
            self._watched = True
            self._checked = self._clock()
            self.wake_s.append(self._clock() - t_wake)
            log.info("a reader opened %s: running again", self.name)
        return woke
