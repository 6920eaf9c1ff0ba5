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

from .errors import SourceError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


@dataclass(frozen=True)
class SourceFrame:
    frame: np.ndarray      # (H, W, 3) uint8 BGR
    timestamp_ms: int      # strictly increasing within a stream
    index: int             # 0-based position in the stream (files) or capture counter (camera)
    name: str              # output file stem: the input file's stem for folders, else 00000...
    captured_at: float     # time.perf_counter() when the frame was grabbed (latency start)


class Source:
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
        self._closed = False

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def read(self, timeout: float | None = None) -> SourceFrame | None:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.kind} {self.width}x{self.height} @ {self.fps:g} fps"

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release()

    def _release(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self):
        while True:
            f = self.read()
            if f is None:
                if self.ended:
                    return
                continue
            yield f


def _resize_to(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or (frame.shape[1], frame.shape[0]) == tuple(size):
        return frame
    interp = cv2.INTER_AREA if size[0] < frame.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(frame, tuple(size), interpolation=interp)


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


def _read_image(path: Path) -> np.ndarray:
    if not path.is_file():
        raise SourceError(f"input image {path} does not exist")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise SourceError(f"input image {path} cannot be decoded (corrupt or not an image); "
                          f"use a readable {'/'.join(e[1:] for e in IMAGE_EXTENSIONS[:4])} file")
    return _to_bgr(img, f"input image {path}")


class ImageFolderSource(Source):
    """Every image in a folder (sorted by name), or a single image file."""

    kind = "images"

    def __init__(self, paths: list[Path], *, size: tuple[int, int] | None = None, fps: float = 30.0,
                 single: bool = False) -> None:
        super().__init__()
        self._paths = paths
        self._size = size
        self._single = single
        self.fps = fps
        self.total = len(paths)
        self._i = 0
        first = _resize_to(_read_image(paths[0]), size)
        self._first = first
        self.height, self.width = first.shape[:2]
        self._t0 = time.perf_counter()

    @classmethod
    def from_folder(cls, folder: Path, **kw) -> "ImageFolderSource":
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not paths:
            raise SourceError(f"input folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        return cls(paths, **kw)

    def read(self, timeout: float | None = None) -> SourceFrame | None:
        if self._i >= len(self._paths):
            self.ended = True
            return None
        i = self._i
        self._i += 1
        if i == 0:
            frame = self._first
        else:
            frame = _read_image(self._paths[i])
            if (frame.shape[1], frame.shape[0]) != (self.width, self.height):
                if self._size is None and i == 1:
                    log.warning("images in %s differ in size; resizing all to %dx%d like the first",
                                self._paths[0].parent, self.width, self.height)
                frame = _resize_to(frame, (self.width, self.height))
        name = f"{i:05d}" if self._single else self._paths[i].stem
        return SourceFrame(frame, round(i * 1000.0 / self.fps), i, name, time.perf_counter())

    def describe(self) -> str:
        what = str(self._paths[0]) if self._single else f"{len(self._paths)} images in {self._paths[0].parent}"
        return f"{what} ({self.width}x{self.height})"


class VideoFileSource(Source):
    """Every frame of a video file, in order."""

    kind = "video"

    def __init__(self, path: Path, *, size: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.path = path
        if not path.is_file():
            raise SourceError(f"input {path} does not exist; give a camera index, a video, an image or a folder")
        self._cap = cv2.VideoCapture(str(path))
        ok, frame = (self._cap.read() if self._cap.isOpened() else (False, None))
        if not ok or frame is None:
            self._cap.release()
            raise SourceError(f"input {path} cannot be decoded as video or image (corrupt, empty or an "
                              "unsupported format); convert it to mp4 (H.264) or give a folder of images")
        self._size = size
        self._first = _resize_to(_to_bgr(frame, str(path)), size)
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
            frame = _resize_to(_to_bgr(frame, str(self.path)), self._size)
            if (frame.shape[1], frame.shape[0]) != (self.width, self.height):
                frame = _resize_to(frame, (self.width, self.height))
        i = self._i
        self._i += 1
        return SourceFrame(frame, round(i * 1000.0 / self.fps), i, f"{i:05d}", time.perf_counter())

    def describe(self) -> str:
        n = f", {self.total} frames" if self.total else ""
        return f"video {self.path} ({self.width}x{self.height} @ {self.fps:g} fps{n})"

    def _release(self) -> None:
        self._cap.release()


def list_cameras() -> list[str]:
    """Video capture device nodes present on this machine (``/dev/video*``), sorted."""
    return sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))


class CameraSource(Source):
    """A webcam through OpenCV (V4L2 on Linux), read in its own thread; newest frame wins."""

    live = True
    kind = "camera"

    def __init__(self, device: int | str, *, size: tuple[int, int] | None = (1280, 720), fps: float = 30.0,
                 fourcc: str = "MJPG", open_timeout: float = 5.0) -> None:
        super().__init__()
        self.device = device
        node = f"/dev/video{device}" if isinstance(device, int) else str(device)
        if os.name == "posix" and not os.path.exists(node):
            present = ", ".join(list_cameras()) or "none"
            raise SourceError(f"camera {device} not found: {node} does not exist (cameras present: {present}); "
                              "plug one in or choose another with --input N or --input /dev/videoN")
        api = cv2.CAP_V4L2 if os.name == "posix" else cv2.CAP_ANY
        self._cap = cv2.VideoCapture(device if isinstance(device, int) else str(device), api)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f"camera {node} cannot be opened (busy in another program, or no permission: "
                              "add yourself to the 'video' group)")
        if fourcc:
            self._cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fourcc[:4].ljust(4)))
        if size:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        self._cap.set(cv2.CAP_PROP_FPS, fps)
        self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver queue short: latency
        deadline = time.monotonic() + open_timeout
        ok, frame = False, None
        while time.monotonic() < deadline:
            ok, frame = self._cap.read()
            if ok and frame is not None:
                break
        if not ok or frame is None:
            self._cap.release()
            raise SourceError(f"camera {node} opened but delivered no frame within {open_timeout:g} s")
        self.height, self.width = frame.shape[:2]
        got_fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = got_fps if got_fps and got_fps > 0 else fps
        code = int(self._cap.get(cv2.CAP_PROP_FOURCC))
        self.format = "".join(chr((code >> (8 * k)) & 0xFF) for k in range(4)).strip("\x00") or "?"
        self.requested = (size, fps, fourcc)
        if size and (self.width, self.height) != tuple(size):
            log.warning("camera %s gives %dx%d, not the %dx%d asked for", node, self.width, self.height, *size)
        self._cond = threading.Condition()
        self._latest: tuple[np.ndarray, float] | None = None
        self._taken = True
        self._count = 0
        self._last_ts = -1
        self._stop = threading.Event()
        self.error: str | None = None
        self._thread = threading.Thread(target=self._grab, name="portrait-cam-camera", daemon=True)
        self._thread.start()

    def _grab(self) -> None:
        fails = 0
        while not self._stop.is_set():
            ok, frame = self._cap.read()
            now = time.perf_counter()
            if not ok or frame is None:
                fails += 1
                if fails == 1:
                    log.warning("camera %s: read failed", self.device)
                time.sleep(0.01)
                continue
            fails = 0
            with self._cond:
                if not self._taken:
                    self.dropped += 1
                self._latest = (frame, now)
                self._taken = False
                self._cond.notify_all()

    def read(self, timeout: float | None = 1.0) -> SourceFrame | None:
        with self._cond:
            if self._taken and not self._cond.wait_for(lambda: not self._taken or self._stop.is_set(), timeout):
                return None
            if self._latest is None or self._taken:
                return None
            frame, t = self._latest
            self._taken = True
        ts = max(int(t * 1000.0), self._last_ts + 1)
        self._last_ts = ts
        i = self._count
        self._count += 1
        return SourceFrame(np.ascontiguousarray(frame), ts, i, f"{i:05d}", t)

    def describe(self) -> str:
        size, fps, fourcc = self.requested
        asked = f"asked {size[0]}x{size[1]} @ {fps:g} {fourcc}" if size else f"asked {fps:g} fps"
        return f"camera {self.device}: {self.width}x{self.height} @ {self.fps:g} fps {self.format} ({asked})"

    def _release(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=2.0)
        self._cap.release()


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
                fourcc: str = "MJPG", camera_size: tuple[int, int] = (1280, 720)) -> Source:
    """Open a source from a CLI spec (camera index or device path, video, image or folder).

    ``size`` resizes file inputs and is asked of cameras (default ``camera_size``).
    """
    text = str(spec)
    if isinstance(spec, int) or text.isdigit() or text.startswith("/dev/video"):
        dev: int | str = int(text) if text.isdigit() else text
        return CameraSource(dev, size=size or camera_size, fps=fps or 30.0, fourcc=fourcc)
    path = Path(text).expanduser()
    if path.is_dir():
        return ImageFolderSource.from_folder(path, size=size, fps=fps or 30.0)
    if not path.exists():
        raise SourceError(f"input {path} does not exist; give a camera index (0), /dev/videoN, a video file, "
                          "an image or a folder of images")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageFolderSource([path], size=size, fps=fps or 30.0, single=True)
    return VideoFileSource(path, size=size)
