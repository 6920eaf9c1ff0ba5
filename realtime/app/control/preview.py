"""The control page's live preview: one small JPEG per frame at most, whatever the number of
viewers, encoded off the frame loop.

:class:`PreviewFeed` is a sink. On the loop's thread, ``write`` only does something while a
page is watching and the last picture is older than ``1 / max_fps``: it scales the current view
(output, matte, disparity, CoC, camera | output, as the session says) down to a small image and
hands it to the encoder thread through a one-picture slot (a newer picture replaces one not yet
encoded, so the slot never grows and the loop never waits). The encoder thread makes the JPEG
and publishes it with a sequence number; the web server's viewers each send the newest one when
they are ready for it, so a slow viewer skips pictures instead of queueing them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import cv2
import numpy as np

from realtime.app import debugviews as dv
from realtime.io.sinks import OutputFrame, Sink

log = logging.getLogger(__name__)

PREVIEW_WIDTH = 480      # pixels of one tile of the page's preview (it scales in the browser)
PREVIEW_MAX_FPS = 15.0   # pictures per second at most: smooth enough to aim a click, cheap to make
JPEG_QUALITY = 70


class PreviewFeed(Sink):
    """A sink making the page's preview pictures (see the module docstring)."""

    kind = "control page preview"

    def __init__(self, session, *, width: int = PREVIEW_WIDTH, max_fps: float = PREVIEW_MAX_FPS,
                 quality: int = JPEG_QUALITY, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.session = session
        self.width = int(width)
        self.min_interval = 1.0 / max_fps if max_fps > 0 else 0.0
        self.quality = int(quality)
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: tuple[np.ndarray, str] | None = None   # the one-picture slot
        self._jpeg: bytes = b""
        self._seq = 0
        self._view = "output"
        self._viewers = 0
        self._last = clock()
        self._credit = 1.0
        self._closed = False
        self._listeners: list[Callable[[], object]] = []
        self.encoded = 0       # JPEGs made
        self.encode_ms = 0.0   # time spent making them
        self._buffers = dv.Buffers()
        self._thread = threading.Thread(target=self._encode_loop, name="portrait-cam-control-encoder", daemon=True)
        self._thread.start()

    # -- viewers (any thread) ---------------------------------------------------------------------
    def add_viewer(self) -> None:
        with self._cond:
            self._viewers += 1

    def remove_viewer(self) -> None:
        with self._cond:
            self._viewers = max(0, self._viewers - 1)

    @property
    def viewers(self) -> int:
        return self._viewers

    def on_picture(self, listener: Callable[[], object]) -> None:
        """Call ``listener()`` (on the encoder thread) after each new picture."""
        self._listeners.append(listener)

    def latest(self) -> tuple[int, bytes, str]:
        """(sequence number, JPEG bytes, view) of the newest picture; (0, b"", ...) before any."""
        with self._cond:
            return self._seq, self._jpeg, self._view

    # -- the loop's thread -----------------------------------------------------------------------
    def write(self, out: OutputFrame) -> None:
        self.written += 1
        if self._viewers == 0 or self._closed:
            return
        # a token bucket: every frame while the pipeline runs slower than max_fps (frame jitter
        # does not skip pictures), max_fps on average when it runs faster
        now = self._clock()
        if self.min_interval > 0:
            self._credit = min(2.0, self._credit + (now - self._last) / self.min_interval)
            self._last = now
            if self._credit < 1.0:
                return
            self._credit -= 1.0
        view = self.session.view if out.result is not None else "output"
        small = self._compose(out, view)
        with self._cond:
            self._pending = (small, view)  # replaces a picture the encoder has not taken yet
            self._cond.notify()

    def _size(self, h: int, w: int) -> tuple[int, int]:
        tw = min(self.width, w)
        return tw, max(2, int(round(h * tw / w)))

    def _small(self, a: np.ndarray, size: tuple[int, int], name: str | None = None) -> np.ndarray:
        """``a`` scaled down to ``size``: halved by area averaging while at least twice too big
        (OpenCV's integer-factor path; a fractional area resize costs far more), then bilinear."""
        while a.shape[1] >= 2 * size[0] and a.shape[0] >= 2 * size[1]:
            a = cv2.resize(a, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        out = self._buffers.get(name, (size[1], size[0], *a.shape[2:]), a.dtype) if name else None
        return cv2.resize(a, size, dst=out, interpolation=cv2.INTER_LINEAR)

    def _compose(self, out: OutputFrame, view: str) -> np.ndarray:
        """The view, scaled down, in a new array the encoder thread owns."""
        h, w = out.frame.shape[:2]
        size = self._size(h, w)
        r = out.result
        if view == "matte":
            return dv.matte_view(self._small(r.matte, size, "matte"), buffers=self._buffers)
        if view == "disparity":
            return dv.disparity_view(self._small(r.disparity, size, "disparity"), buffers=self._buffers)
        if view == "coc":
            limit = self.session.pipeline.renderer.scaled(h)[1]
            return dv.coc_view(self._small(r.coc, size, "coc"), limit or None, buffers=self._buffers)
        frame = self._small(out.frame, size)
        if view == "side-by-side" and out.input is not None and out.input.shape == out.frame.shape:
            return dv.side_by_side(self._small(out.input, size, "camera"), frame)
        return frame

    # -- the encoder thread ----------------------------------------------------------------------
    def _encode_loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                img, view = self._pending
                self._pending = None
            t0 = time.perf_counter()
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            took = (time.perf_counter() - t0) * 1000.0
            if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR image
                log.warning("preview picture could not be encoded")
                continue
            with self._cond:
                self._jpeg = buf.tobytes()
                self._seq += 1
                self._view = view
                self.encoded += 1
                self.encode_ms += took
            for fn in list(self._listeners):
                try:
                    fn()
                except Exception:  # a viewer's problem must not stop the pictures
                    log.exception("preview listener failed")

    def _release(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5.0)

    def describe(self) -> str:
        return self.kind
