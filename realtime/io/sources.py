"""Frame sources: webcam, video file, image file, folder of images.

A *live* source (camera) grabs in its own thread and always hands over the newest frame;
frames the loop was too slow to take are dropped and counted. A *file* source hands over every
frame in order, with timestamps from the file's frame rate.

``open_source(spec)`` picks the kind: an integer or ``/dev/video*`` is a camera, a directory is
a folder of images, a file with an image extension is a single image, anything else a video.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from realtime.core.errors import SourceError
from realtime.io.imagefile import (Damaged, check_video_frame, frame_name, output_names, read_still,
                                   video_capture)
from realtime.core.stage import Closable
from realtime.io.fit import describe_fit, fit_frame
from realtime.io.stills import image_size, numbered_sequence

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


@dataclass(frozen=True)
class SourceFrame:
    frame: np.ndarray      # (H, W, 3) uint8 BGR
    timestamp_ms: int      # strictly increasing within a stream
    index: int             # 0-based position in the stream (files) or capture counter (camera)
    name: str              # output file stem: the input file's stem for folders, else 00000...
    captured_at: float     # time.perf_counter() when the frame was grabbed (latency start)
    generation: int = 0    # bumps when a live source reconnects: temporal state must reset


class Source(Closable):
    """Common interface. ``read()`` returns the next frame, or ``None`` at the end / on timeout."""

    live = False
    kind = "source"

    def __init__(self) -> None:
        self.width = 0
        self.height = 0
        self.fps = 30.0
        self.total: int | None = None   # frame count when known
        self.dropped = 0
        self.ended = False

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def read(self, timeout: float | None = None) -> SourceFrame | None:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.kind} {self.width}x{self.height} @ {self.fps:g} fps"

    def __iter__(self):
        while True:
            f = self.read()
            if f is None:
                if self.ended:
                    return
                continue
            yield f


def _resize_to(frame: np.ndarray, size: tuple[int, int] | None, fit: str = "crop") -> np.ndarray:
    """``frame`` at ``size``, never stretched (see :mod:`realtime.io.fit`)."""
    return fit_frame(frame, size, fit)


def _to_bgr(img: np.ndarray, what: str) -> np.ndarray:
    """Any decoded image (grey, BGR, BGRA, 16-bit) to (H, W, 3) uint8 BGR."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise SourceError(f"{what} has unsupported pixel type {img.dtype}; use 8- or 16-bit images")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(img)


def _read_image(path: Path, damaged: Damaged | None = None) -> np.ndarray:
    """See :func:`realtime.io.imagefile.read_still` (any file name, oriented, pixel cap)."""
    if not path.is_file():
        raise SourceError(f"input image {path} does not exist")
    return read_still(path, damaged)


class ImageFolderSource(Source):
    """Every image in a folder (sorted by name), or a single image file.

    A folder is either *frames of one video* (numbered names, see :func:`numbered_sequence`):
    temporal filters run across them; or *stills* (any other names, or ``stills=True``): each
    image is processed on its own, temporal state reset before it (``generation`` bumps). A
    change of size always resets. Without ``size`` each image keeps its own size; with it,
    each is fitted to it (``fit``: crop or pad, never stretched).
    """

    kind = "images"

    def __init__(self, paths: list[Path], *, size: tuple[int, int] | None = None, fps: float = 30.0,
                 single: bool = False, fit: str = "crop", stills: bool | None = None) -> None:
        super().__init__()
        self._paths = paths
        self._size = size
        self._fit = fit
        self._single = single
        self.stills = not single and (stills if stills is not None else not numbered_sequence(paths))
        self.fps = fps
        self.total = len(paths)
        self._i = 0
        self.damaged = Damaged()
        self._names = output_names(paths) if not single else []
        raw = _read_image(paths[0], self.damaged)
        self.fit_note = describe_fit((raw.shape[1], raw.shape[0]), size, fit) if size else None
        first = _resize_to(raw, size, fit)
        self._first = first
        self.height, self.width = first.shape[:2]
        self._generation = 0
        self._last_size = (self.width, self.height)
        self._t0 = time.perf_counter()

    @classmethod
    def from_folder(cls, folder: Path, **kw) -> "ImageFolderSource":
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not paths:
            raise SourceError(f"input folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        return cls(paths, **kw)

    def first_other_size(self) -> tuple[Path, tuple[int, int]] | None:
        """The first image whose size differs from the first one's (None when all agree or ``size`` is set)."""
        if self._size is not None or self._single:
            return None
        for p in self._paths[1:]:
            wh = image_size(p)
            if wh is not None and wh != (self.width, self.height):
                return p, wh
        return None

    def read(self, timeout: float | None = None) -> SourceFrame | None:
        if self._i >= len(self._paths):
            self.ended = True
            return None
        i = self._i
        self._i += 1
        frame = self._first if i == 0 else _resize_to(_read_image(self._paths[i], self.damaged), self._size, self._fit)
        size = (frame.shape[1], frame.shape[0])
        if i > 0 and (self.stills or size != self._last_size):
            self._generation += 1  # another picture: the loop resets temporal state
        self._last_size = size
        name = frame_name(i, self.total) if self._single else self._names[i]
        return SourceFrame(frame, round(i * 1000.0 / self.fps), i, name, time.perf_counter(), self._generation)

    def skip(self, n: int) -> None:
        """Move past the next ``n`` images without reading them (a batch chunk starting later)."""
        self._i = min(len(self._paths), self._i + max(0, n))

    def describe(self) -> str:
        if self._single:
            what = f"{self._paths[0]} ({self.width}x{self.height})"
        elif self.stills:
            what = (f"{len(self._paths)} images in {self._paths[0].parent} as stills: each processed on its own"
                    + (f", at {self.width}x{self.height}" if self._size else ", each at its own size"))
        else:
            what = (f"{len(self._paths)} images in {self._paths[0].parent} ({self.width}x{self.height}) as frames "
                    "of one video (numbered names; --stills processes each on its own)")
        return what + (f"; {self.fit_note}" if self.fit_note else "")


class VideoFileSource(Source):
    """Every frame of a video file, in order."""

    kind = "video"

    def __init__(self, path: Path, *, size: tuple[int, int] | None = None, fit: str = "crop") -> None:
        super().__init__()
        self.path = path
        self._fit = fit
        if not path.is_file():
            raise SourceError(f"input {path} does not exist; give a camera index, a video, an image or a folder")
        self._cap, self._fd = video_capture(path)
        ok, frame = (self._cap.read() if self._cap.isOpened() else (False, None))
        if not ok or frame is None:
            self._release()
            raise SourceError(f"input {path} cannot be decoded as video or image (corrupt, empty or an "
                              "unsupported format); convert it to mp4 (H.264) or give a folder of images")
        self._size = size
        try:
            check_video_frame(path, frame.shape[1], frame.shape[0], size)
        except SourceError:
            self._release()
            raise
        self.fit_note = describe_fit((frame.shape[1], frame.shape[0]), size, fit) if size else None
        self._first = _resize_to(_to_bgr(frame, str(path)), size, fit)
        self.height, self.width = self._first.shape[:2]
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 1.0 <= fps <= 240.0 else 30.0
        n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.total = n if n > 0 else None
        self._i = 0

    def read(self, timeout: float | None = None) -> SourceFrame | None:
        if self.ended:
            return None
        if self._i == 0:
            frame = self._first
        else:
            ok, frame = self._cap.read()
            if not ok or frame is None:
                self.ended = True
                if self.total is not None and self._i < self.total:
                    log.warning("%s ended after %d of %d frames (truncated file?)", self.path, self._i, self.total)
                return None
            frame = _resize_to(_to_bgr(frame, str(self.path)), self._size or (self.width, self.height), self._fit)
        i = self._i
        self._i += 1
        return SourceFrame(frame, round(i * 1000.0 / self.fps), i, frame_name(i, self.total), time.perf_counter())

    def skip(self, n: int) -> None:
        """Move past the next ``n`` frames, decoding but not converting them (a batch chunk
        starting later: a decoder has to see every frame from the last key frame anyway)."""
        for _ in range(max(0, n)):
            if self._i == 0:
                self._i = 1
                continue
            if not self._cap.grab():
                self.ended = True
                return
            self._i += 1

    def describe(self) -> str:
        n = f", {self.total} frames" if self.total else ""
        note = f"; {self.fit_note}" if self.fit_note else ""
        return f"video {self.path} ({self.width}x{self.height} @ {self.fps:g} fps{n}){note}"

    def _release(self) -> None:
        self._cap.release()
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def list_cameras() -> list[str]:
    """Video capture device nodes present on this machine (``/dev/video*``), sorted."""
    return sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))


class FrameReader:
    """What a live source reads from: a camera, or a video replayed in real time.

    ``open()`` raises :class:`SourceError` with the fix; ``read()`` blocks for the next frame
    and returns ``None`` on a failed read; ``close()`` releases the device (idempotent).
    """

    width = 0
    height = 0
    fps = 30.0
    label = "reader"

    def open(self) -> None:
        raise NotImplementedError

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return f"{self.label}: {self.width}x{self.height} @ {self.fps:g} fps"


class CameraReader(FrameReader):
    """A webcam through OpenCV (V4L2 on Linux), asking for MJPG and the requested size/fps."""

    def __init__(self, device: int | str, size: tuple[int, int] | None = (1280, 720), fps: float = 30.0,
                 fourcc: str = "MJPG", open_timeout: float = 5.0) -> None:
        self.device = device
        self.node = f"/dev/video{device}" if isinstance(device, int) else str(device)
        self.label = f"camera {device}"
        self.requested = (size, fps, fourcc)
        self.open_timeout = open_timeout
        self.format = "?"
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        size, fps, fourcc = self.requested
        if os.name == "posix" and not os.path.exists(self.node):
            present = ", ".join(list_cameras()) or "none"
            raise SourceError(f"camera {self.device} not found: {self.node} does not exist (cameras present: "
                              f"{present}); plug one in or choose another with --input N or --input /dev/videoN")
        api = cv2.CAP_V4L2 if os.name == "posix" else cv2.CAP_ANY
        cap = cv2.VideoCapture(self.device if isinstance(self.device, int) else str(self.device), api)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {self.node} cannot be opened (busy in another program, or no permission: "
                              "add yourself to the 'video' group)")
        if fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fourcc[:4].ljust(4)))
        if size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        cap.set(cv2.CAP_PROP_FPS, fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # a short driver queue keeps latency down
        deadline = time.monotonic() + self.open_timeout
        frame = None
        while time.monotonic() < deadline:
            ok, frame = cap.read()
            if ok and frame is not None:
                break
            frame = None
        if frame is None:
            cap.release()
            raise SourceError(f"camera {self.node} opened but delivered no frame within {self.open_timeout:g} s")
        self.height, self.width = frame.shape[:2]
        got = cap.get(cv2.CAP_PROP_FPS)
        self.fps = got if got and got > 0 else fps
        code = int(cap.get(cv2.CAP_PROP_FOURCC))
        self.format = "".join(chr((code >> (8 * k)) & 0xFF) for k in range(4)).strip("\x00") or "?"
        if size and (self.width, self.height) != tuple(size):
            log.warning("camera %s gives %dx%d, not the %dx%d asked for", self.node, self.width, self.height, *size)
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        ok, frame = self._cap.read()
        return _to_bgr(frame, self.node) if ok and frame is not None else None

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def describe(self) -> str:
        size, fps, fourcc = self.requested
        asked = f"asked {size[0]}x{size[1]} @ {fps:g} {fourcc}" if size else f"asked {fps:g} fps"
        return f"camera {self.device}: {self.width}x{self.height} @ {self.fps:g} fps {self.format} ({asked})"


class ReplayReader(FrameReader):
    """A video file played at its own frame rate, looping, as if it were a camera (demos, tests,
    latency benchmarks)."""

    def __init__(self, path: str | Path, size: tuple[int, int] | None = None, fps: float | None = None,
                 loop: bool = True, fit: str = "crop") -> None:
        self.path = Path(path)
        self.label = f"replay of {self.path.name}"
        self._size = size
        self._fit = fit
        self._fps = fps
        self.loop = loop
        self._video: VideoFileSource | None = None
        self._next = 0.0

    def open(self) -> None:
        self._video = VideoFileSource(self.path, size=self._size, fit=self._fit)
        self.width, self.height = self._video.size
        self.fps = self._fps or self._video.fps
        self._next = time.monotonic()

    def read(self) -> np.ndarray | None:
        if self._video is None:
            return None
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next + 1.0 / self.fps, time.monotonic() - 1.0 / self.fps)
        sf = self._video.read()
        if sf is None and self.loop:
            self._video.close()
            self._video = VideoFileSource(self.path, size=self._size, fit=self._fit)
            sf = self._video.read()
        return None if sf is None else sf.frame

    def close(self) -> None:
        v, self._video = self._video, None
        if v is not None:
            v.close()

    def describe(self) -> str:
        looping = ", looping: the clip starts again at its end (Ctrl-C or --frames N stops it)" if self.loop else ""
        note = self._video.fit_note if self._video is not None else None
        return f"{super().describe()}{looping}" + (f"; {note}" if note else "")


LIVE_NAME_SPAN = 10 ** 8  # a live source has no known length: eight digits sort for 38 days at 30 fps


class LiveSource(Source):
    """A live reader in its own thread; ``read()`` hands over the newest frame (older ones are
    dropped and counted).

    Loss and recovery: when no frame has arrived for ``loss_timeout`` seconds (unplugged,
    driver error) the source is *lost*: ``lost`` is true and ``error`` says why, the reader is
    closed and reopened with backoff (``reconnect_delays``, then every last delay) until the
    device is back. Each recovery increments ``generation`` so the loop can reset temporal state.
    """

    live = True
    kind = "camera"

    def __init__(self, reader: FrameReader, *, loss_timeout: float = 1.0,
                 reconnect_delays: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0),
                 size: tuple[int, int] | None = None, fit: str = "crop") -> None:
        super().__init__()
        self.reader = reader
        reader.open()  # the first open fails loudly: a wrong device is a user error, not a loss
        self.width, self.height, self.fps = reader.width, reader.height, reader.fps
        # ``size``: frames are fitted to it (a camera that gives another size than asked); a
        # reader that comes back at another size after a loss is fitted to the first one too.
        self.fit = fit
        self.fit_note = None
        if size is not None and tuple(size) != (self.width, self.height):
            self.fit_note = (f"camera gives {self.width}x{self.height}, not the {size[0]}x{size[1]} asked: "
                             f"{describe_fit((self.width, self.height), size, fit)}")
            self.width, self.height = size
        self.loss_timeout = loss_timeout
        self.reconnect_delays = reconnect_delays
        self.lost = False
        self.error: str | None = None
        self.generation = 0
        self.reconnects = 0
        self._cond = threading.Condition()
        self._latest: tuple[np.ndarray, float, int] | None = None
        self._taken = True
        self._count = 0
        self._last_ts = -1
        self._stop = threading.Event()
        self._paused = False
        self._thread = threading.Thread(target=self._run, name="portrait-cam-capture", daemon=True)
        self._thread.start()

    def pause(self, paused: bool = True) -> None:
        """Release the device (idle) until ``pause(False)``: then reopened, as a new ``generation``."""
        with self._cond:
            self._paused = paused
            self._latest, self._taken = (None, True) if paused else (self._latest, self._taken)
            self._cond.notify_all()

    def _idle(self) -> None:
        """While paused: the device closed, wait for resume; then reopen it (not when stopping)."""
        self.reader.close()
        with self._cond:
            self._cond.wait_for(lambda: not self._paused or self._stop.is_set())
            self.generation += 1
        try:
            self._stop.is_set() or self.reader.open()
        except Exception as e:  # reconnect with backoff like any loss
            self.lost, self.error = True, f"{self.reader.label} unavailable after idle ({e}); retrying"

    def _run(self) -> None:
        last_ok = time.monotonic()
        attempt = 0
        while not self._stop.is_set():
            if self._paused:
                self._idle()  # returns when resumed (device reopened) or stopping
                last_ok = time.monotonic()
                continue
            if self.lost:
                delay = self.reconnect_delays[min(attempt, len(self.reconnect_delays) - 1)]
                if self._stop.wait(delay):
                    break
                attempt += 1
                try:
                    self.reader.close()
                    self.reader.open()
                except Exception as e:  # keep trying: the device may come back
                    self.error = f"{self.reader.label} unavailable ({e}); retrying"
                    continue
                if (self.reader.width, self.reader.height) != (self.width, self.height):
                    log.warning("%s came back at %dx%d instead of %dx%d; frames are resized",
                                self.reader.label, self.reader.width, self.reader.height, self.width, self.height)
                with self._cond:
                    self.lost = False
                    self.error = None
                    self.generation += 1
                    self.reconnects += 1
                log.warning("%s is back", self.reader.label)
                last_ok = time.monotonic()
                attempt = 0
                continue
            try:
                frame = self.reader.read()
            except Exception as e:  # a driver error is a loss like any other
                frame = None
                self.error = f"{self.reader.label} read failed ({e})"
            now_mono = time.monotonic()
            if frame is None:
                if now_mono - last_ok > self.loss_timeout:
                    with self._cond:
                        self.lost = True
                        self.error = self.error or f"{self.reader.label} delivers no frames"
                        self._cond.notify_all()
                    log.warning("%s lost: %s; reconnecting", self.reader.label, self.error)
                else:
                    self._stop.wait(0.005)
                continue
            last_ok = now_mono
            if (frame.shape[1], frame.shape[0]) != (self.width, self.height):
                frame = _resize_to(frame, (self.width, self.height), self.fit)
            now = time.perf_counter()
            with self._cond:
                if self._paused:
                    continue
                if not self._taken:
                    self.dropped += 1
                self._latest = (frame, now, self.generation)
                self._taken = False
                self._cond.notify_all()

    def read(self, timeout: float | None = 1.0) -> SourceFrame | None:
        with self._cond:
            if self._taken:
                self._cond.wait_for(lambda: not self._taken or self._stop.is_set(), timeout)
            if self._latest is None or self._taken:
                return None
            frame, t, gen = self._latest
            self._taken = True
        ts = max(int(t * 1000.0), self._last_ts + 1)
        self._last_ts = ts
        i = self._count
        self._count += 1
        return SourceFrame(frame, ts, i, frame_name(i, LIVE_NAME_SPAN), t, gen)

    def describe(self) -> str:
        return self.reader.describe() + (f"; {self.fit_note}" if self.fit_note else "")

    def _release(self) -> None:
        with self._cond:
            self._stop.set()
            self._cond.notify_all()
        self._thread.join(timeout=5.0)
        self.reader.close()


def open_camera(device: int | str, *, size: tuple[int, int] | None = (1280, 720), fps: float = 30.0,
                fourcc: str = "MJPG", fit: str | None = None) -> LiveSource:
    """A webcam as a live source (see :class:`CameraReader`, :class:`LiveSource`). With ``fit``
    (crop or pad) a camera that delivers another size than ``size`` is fitted to it; without,
    its own size is used (and said)."""
    return LiveSource(CameraReader(device, size, fps, fourcc), size=size if fit else None, fit=fit or "crop")


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> (1280, 720); raises ``ValueError`` with the expected form."""
    try:
        w, h = text.lower().split("x")
        size = int(w), int(h)
    except ValueError:
        raise ValueError(f"size '{text}' is not of the form WIDTHxHEIGHT, e.g. 1280x720") from None
    if size[0] < 2 or size[1] < 2 or size[0] > 7680 or size[1] > 4320:
        raise ValueError(f"size '{text}' is out of range; width 2..7680, height 2..4320")
    return size


def open_source(spec: str | int, *, size: tuple[int, int] | None = None, fps: float | None = None,
                fourcc: str = "MJPG", camera_size: tuple[int, int] = (1280, 720), live: bool = False,
                fit: str = "crop", stills: bool | None = None) -> Source:
    """Open a source from a CLI spec (camera index or device path, video, image or folder).

    ``size`` is what file inputs are fitted to (``fit``: crop or pad, never stretched) and what
    cameras are asked for (default ``camera_size``; a camera that gives another size is fitted
    to an explicit ``size``). ``live`` plays a video file in real time, looping, as if it were a
    camera. ``stills`` forces a folder's images to be processed each on its own.
    """
    text = str(spec)
    if live and not (isinstance(spec, int) or text.isdigit() or text.startswith("/dev/")):
        return LiveSource(ReplayReader(text, size=size, fps=fps, fit=fit))
    if isinstance(spec, int) or text.isdigit() or text.startswith("/dev/video"):
        dev: int | str = int(text) if text.isdigit() else text
        return open_camera(dev, size=size or camera_size, fps=fps or 30.0, fourcc=fourcc,
                           fit=fit if size else None)
    path = Path(text).expanduser()
    if path.is_dir():
        return ImageFolderSource.from_folder(path, size=size, fps=fps or 30.0, fit=fit, stills=stills)
    if not path.exists():
        raise SourceError(f"input {path} does not exist; give a camera index (0), /dev/videoN, a video file, "
                          "an image or a folder of images")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageFolderSource([path], size=size, fps=fps or 30.0, single=True, fit=fit)
    return VideoFileSource(path, size=size, fit=fit)
