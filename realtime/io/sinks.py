"""Outputs: virtual camera, preview window, mp4 file, PNG folders, overlays, null.

Several sinks run at once. Each is opened with the output size and frame rate once the source
is open, then gets every processed frame as an :class:`OutputFrame`. File outputs are written
through exclusive temporaries renamed when complete and checked (:mod:`realtime.io.safefiles`),
so a partial file never looks finished and a planted symlink is never written through. A PNG
folder that already holds files is refused unless ``overwrite`` is given.

Output specs (``--output``)::

    virtualcam[:DEVICE]   v4l2loopback through pyvirtualcam (steady fps, last frame repeated)
    pipewire[:NAME]       a PipeWire camera node named NAME (realtime.io.pipewire), same behaviour
    preview               an OpenCV window; q or Esc quits
    out.mp4               a video file
    out.png|.jpg|...      one picture (an image input, or --frames 1)
    DIR/                  PNG frames (a trailing / or an existing directory)
    rgba:DIR/|FILE.png    PNG frames (or one picture) with the matte as alpha (OBS overlays)
    matte:FILE.mp4|DIR/|FILE.png  the matte itself as grey video, PNG frames or one picture
    null                  discard (benchmarks)
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from realtime.io.readers import reader_watch
from realtime.core.errors import SinkError, VirtualCameraUnavailableError
from realtime.io import pipewire as pw
from realtime.io.file_sinks import (ALPHA_EXTENSIONS, VIDEO_EXTENSIONS, PictureFileSink, PngFolderSink,  # noqa: F401
                                    VideoFileSink)
from realtime.io.paths import PICTURE_EXTENSIONS
from realtime.io.sink_base import NullSink, OutputFrame, Sink  # noqa: F401

log = logging.getLogger(__name__)

MODPROBE_FIX = 'sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label="Portrait Cam"'
VCAM_BACKEND_ENV = "REALTIME_VCAM_BACKEND"  # names the pyvirtualcam backend to use (tests: a capturing one)


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in ("win32", "darwin")


class PreviewSink(Sink):
    """An OpenCV window. ``q`` or Esc asks the loop to quit; other keys go to ``on_key``."""

    kind = "preview"
    live_view = True

    def __init__(self, title: str = "Portrait Cam", on_key=None) -> None:
        super().__init__()
        self.title = title
        self.on_key = on_key
        self.overlay = None   # optional callable(frame) -> frame drawn on top (help, debug views)
        self.on_mouse = None  # optional callable(event, x, y)
        self._open = False

    def open(self, width: int, height: int, fps: float) -> None:
        if not has_display():
            raise SinkError("no display for the preview window (DISPLAY is not set); write to a file "
                            "(--output out.mp4) or a virtual camera instead")
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
            cv2.resizeWindow(self.title, width, height)
            # always registered: the controller binds on_mouse after the window opens
            cv2.setMouseCallback(self.title, lambda ev, x, y, flags, param: self.on_mouse and self.on_mouse(ev, x, y))
        except cv2.error as e:
            raise SinkError(f"cannot open a preview window ({e.err}); is a display available?") from e
        self._open = True

    def write(self, out: OutputFrame) -> None:
        img = out.frame if self.overlay is None else self.overlay(out)
        cv2.imshow(self.title, img)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            self.quit_requested = True
        elif key != 0xFF and self.on_key is not None:
            self.on_key(chr(key))
        try:
            if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                self.quit_requested = True  # the window was closed with its close button
        except cv2.error:
            self.quit_requested = True
        self.written += 1

    def _release(self) -> None:
        if self._open:
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass


# -- virtual camera ----------------------------------------------------------------------------

VCAM_FORMATS = ("i420", "nv12", "yuyv", "uyvy", "rgb", "bgr")


def _convert_for_vcam(frame: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "bgr":
        return frame
    if fmt == "rgb":
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    if fmt == "i420":
        return cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
    if fmt == "nv12":
        h, w = frame.shape[:2]
        i420 = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).reshape(-1)
        y, u, v = i420[: h * w], i420[h * w: h * w * 5 // 4], i420[h * w * 5 // 4:]
        uv = np.empty(u.size * 2, np.uint8)
        uv[0::2], uv[1::2] = u, v
        return np.concatenate([y, uv])
    if fmt == "yuyv":
        return cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_YUYV)
    if fmt == "uyvy":
        return cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_UYVY)
    raise ValueError(fmt)


def _default_vcam_backend() -> str | None:
    return {"linux": "v4l2loopback", "win32": "obs", "darwin": "obs"}.get(sys.platform)


def check_vcam_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise SinkError(f"virtual camera size {width}x{height} is empty; pass --size WxH with positive sizes")
    if width % 2 or height % 2:
        raise SinkError(f"virtual camera needs an even width and height, got {width}x{height}; "
                        f"pass --size {width - width % 2}x{height - height % 2}")


class VirtualCameraSink(Sink):
    """pyvirtualcam at a steady frame rate: a sender thread repeats the last frame when the
    pipeline is late, so consumers (Teams, Chrome) never starve."""

    kind = "virtualcam"
    live_view = True
    one_size = True

    def __init__(self, device: str | None = None, fmt: str = "i420", backend: str | None = None,
                 fps: float | None = None) -> None:
        super().__init__()
        if fmt not in VCAM_FORMATS:
            raise SinkError(f"virtual camera pixel format '{fmt}' is not supported; use one of {', '.join(VCAM_FORMATS)}")
        self.device = device or None
        self.fmt = fmt
        self.backend = backend or os.environ.get(VCAM_BACKEND_ENV) or _default_vcam_backend()
        self._fps = fps
        self._cam = None
        self._lock = threading.Lock()
        self._latest: np.ndarray | None = None   # converted, ready to send
        self._new = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()  # cuts a long placeholder wait short
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.repeated = 0
        self.error: str | None = None
        self._period = 0.0
        self._held = False
        self._watch = None  # realtime.io.readers.ReaderWatch, made on open

    def open(self, width: int, height: int, fps: float) -> None:
        import pyvirtualcam

        check_vcam_size(width, height)
        self.fps = float(self._fps or fps)
        pf = {"i420": "I420", "nv12": "NV12", "yuyv": "YUYV", "uyvy": "UYVY", "rgb": "RGB", "bgr": "BGR"}[self.fmt]
        self._cam = self._open_camera(width, height, getattr(pyvirtualcam.PixelFormat, pf))
        # a black frame until the first processed one: never the raw camera
        self._latest = _convert_for_vcam(np.zeros((height, width, 3), np.uint8), self.fmt)
        self._period = 1.0 / self.fps
        self._watch = reader_watch(self._cam, self.backend, self.device_name)
        self._thread = threading.Thread(target=self._sender, name="portrait-cam-vcam", daemon=True)
        self._thread.start()

    def _open_camera(self, width: int, height: int, pixel_format):
        import pyvirtualcam

        try:
            return pyvirtualcam.Camera(width, height, self.fps, fmt=pixel_format, device=self.device,
                                       backend=self.backend, print_fps=False)
        except Exception as e:  # pyvirtualcam raises RuntimeError/ValueError with its own text
            msg = str(e)
            if "v4l2loopback" in (self.backend or "") or "loopback" in msg.lower() or "no such" in msg.lower():
                raise VirtualCameraUnavailableError(
                    f"no usable v4l2loopback virtual camera{(' at ' + self.device) if self.device else ''} ({msg}); "
                    f"load it with: {MODPROBE_FIX}") from e
            raise SinkError(f"cannot open the virtual camera through {self.backend} ({msg})") from e

    @property
    def device_name(self) -> str:
        return self._cam.device if self._cam is not None else (self.device or "?")

    def readers_present(self) -> bool | None:
        return self._watch.readers_present() if self._watch is not None else None

    def hold(self, frame: np.ndarray, fps: float) -> None:
        data = _convert_for_vcam(frame, self.fmt)
        with self._lock:
            self._latest = data
            self._period = 1.0 / max(0.5, min(fps, self.fps))
            self._held = True
        self._new.set()

    def write(self, out: OutputFrame) -> None:
        if self.error:
            raise SinkError(f"virtual camera {self.device_name} failed: {self.error}")
        data = _convert_for_vcam(out.frame, self.fmt)
        if data is out.frame:  # bgr: nothing copied it, and the sender reads it after the pipeline reuses it
            data = data.copy()
        with self._lock:
            self._latest = data
            if self._held:
                self._held = False
                self._period = 1.0 / self.fps
                self._wake.set()  # back to the full rate now, not after the placeholder's long wait
        self._new.set()
        self.written += 1

    def _sender(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            fresh = self._new.is_set()
            self._new.clear()
            with self._lock:
                data = self._latest
            try:
                self._cam.send(data)
            except Exception as e:  # device vanished: report once, the loop decides
                self.error = str(e) or type(e).__name__
                log.error("virtual camera %s failed: %s", self.device_name, self.error)
                return
            self.sent += 1
            if not fresh:
                self.repeated += 1
            period = self._period
            next_t += period
            delay = next_t - time.monotonic()
            if delay < -period:  # far behind (suspend, debugger): don't burst to catch up
                next_t = time.monotonic()
                delay = 0.0
            if delay > 0 and self._wake.wait(delay):
                self._wake.clear()
                next_t = time.monotonic()

    def _release(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._watch is not None and self._watch is not getattr(self._cam, "_backend", None):
            self._watch.close()
        self._watch = None
        if self._cam is not None:
            try:
                self._cam.close()
            finally:
                self._cam = None

    def describe(self) -> str:
        return f"virtual camera {self.device_name} ({self.fmt}, {getattr(self, 'fps', 0):g} fps)"


class PipeWireSink(VirtualCameraSink):
    """``--output pipewire[:NAME]``: a PipeWire camera (default "Portrait Cam", :mod:`realtime.io.pipewire`),
    the v4l2loopback camera's frames; the streaming process keeps the rate, repeating the last frame."""

    kind = "pipewire"

    def __init__(self, name: str | None = None, fmt: str = "i420", fps: float | None = None) -> None:
        super().__init__(name or pw.DEFAULT_NAME, fmt, pw.BACKEND, fps)

    def open(self, width: int, height: int, fps: float) -> None:
        import pyvirtualcam

        check_vcam_size(width, height)
        self.fps = float(self._fps or fps)
        # BGR through the pipe: the streaming process converts it to the format the app chose
        self._cam = self._open_camera(width, height, pyvirtualcam.PixelFormat.BGR)

    def write(self, out: OutputFrame) -> None:
        try:
            self._cam.send(out.frame)  # written to the pipe: a copy
        except RuntimeError as e:
            raise SinkError(f"PipeWire camera '{self.device}' failed: {e}") from e
        self.sent += 1
        self.written += 1

    def hold(self, frame: np.ndarray, fps: float) -> None:
        self._cam.send(frame)  # the streaming process repeats it at the camera's rate

    def _open_camera(self, width: int, height: int, pixel_format):
        import pyvirtualcam

        problem = pw.startup_problem()
        if problem:  # name what to install or start before anything starts
            raise VirtualCameraUnavailableError(f"the PipeWire camera cannot start: {problem}")
        pw.register()
        try:
            return pyvirtualcam.Camera(width, height, self.fps, fmt=pixel_format, device=self.device,
                                       backend=pw.BACKEND, print_fps=False, prefer=pw.FROM_VCAM[self.fmt])
        except Exception as e:  # pyvirtualcam wraps the backend's error in a RuntimeError
            msg = str(e).replace(f"'{pw.BACKEND}' backend: ", "")
            raise VirtualCameraUnavailableError(f"cannot publish the PipeWire camera '{self.device}': {msg}") from e

    @property
    def node_name(self) -> str:
        return self._cam._backend.node_name if self._cam is not None else pw.node_name_for(self.device)

    def readers(self) -> int | None:  # apps linked to the node now (None = cannot tell); runs pw-dump
        return self._cam._backend.readers() if self._cam is not None else None

    def node_state(self) -> str | None:  # pw-dump's: running while an app reads it, idle/suspended
        return self._cam._backend.state() if self._cam is not None else None

    def has_readers(self) -> bool | None:  # (None = cannot tell)
        return None if (n := self.readers()) is None else n > 0

    def readers_present(self) -> bool | None:  # the node's state as the streaming process says it: cheap
        return self._cam._backend.streaming if self._cam is not None else None

    def describe(self) -> str:
        first, formats = pw.FROM_VCAM[self.fmt], pw.NODE_FORMATS
        return (f"PipeWire camera '{self.device}' (node {self.node_name}, {first} first, also "
                f"{'/'.join(f for f in formats if f != first)}; {getattr(self, 'fps', 0):g} fps)")


def is_folder_spec(spec: str) -> bool:
    return spec.endswith(("/", os.sep)) or Path(spec).is_dir()


def make_sink(spec: str, *, vcam_format: str = "i420", vcam_backend: str | None = None,
              fps: float | None = None, overwrite: bool = False) -> Sink:
    """A sink from an ``--output`` spec (see the module docstring)."""
    s = spec.strip()
    if not s:
        raise SinkError("empty --output; use virtualcam[:DEVICE], pipewire[:NAME], preview, FILE.mp4, DIR/, rgba:DIR/, "
                        "matte:FILE.mp4|DIR/ or null")
    low = s.lower()
    if low == "null":
        return NullSink()
    if low == "preview":
        return PreviewSink()
    if low == "virtualcam" or low.startswith("virtualcam:"):
        device = s.split(":", 1)[1] if ":" in s else None
        return VirtualCameraSink(device, vcam_format, vcam_backend, fps)
    if low == "pipewire" or low.startswith("pipewire:"):
        name = s.split(":", 1)[1].strip() if ":" in s else None
        if name == "":
            raise SinkError(f"--output {spec}: name the camera after the colon (pipewire:\"Work Cam\") "
                            "or leave the colon out for \"Portrait Cam\"")
        return PipeWireSink(name, vcam_format, fps)
    if low.startswith("rgba:"):
        target = s[5:]
        ext = Path(target).suffix.lower()
        if not target or ext in VIDEO_EXTENSIONS:
            raise SinkError(f"--output {spec}: rgba output is a folder of PNG frames, e.g. rgba:overlay/, "
                            "or one picture, e.g. rgba:cutout.png")
        if ext in PICTURE_EXTENSIONS and not is_folder_spec(target):
            if ext not in ALPHA_EXTENSIONS:
                raise SinkError(f"--output {spec}: {ext} has no alpha channel; use {Path(target).with_suffix('.png')}")
            return PictureFileSink(target, "rgba")
        return PngFolderSink(target, "rgba", overwrite)
    if low.startswith("matte:"):
        target = s[6:]
        if not target:
            raise SinkError(f"--output {spec}: name a video (matte:matte.mp4), a folder (matte:mattes/) "
                            "or a picture (matte:matte.png)")
        ext = Path(target).suffix.lower()
        if ext in VIDEO_EXTENSIONS and not is_folder_spec(target):
            return VideoFileSink(target, "matte", fps)
        if ext in PICTURE_EXTENSIONS and not is_folder_spec(target):
            return PictureFileSink(target, "matte")
        return PngFolderSink(target, "matte", overwrite)
    if is_folder_spec(s):
        return PngFolderSink(s, overwrite=overwrite)
    if Path(s).suffix.lower() in VIDEO_EXTENSIONS:
        return VideoFileSink(s, "frame", fps)
    if Path(s).suffix.lower() in PICTURE_EXTENSIONS:
        return PictureFileSink(s, "frame")
    raise SinkError(f"--output {spec} is not understood; use virtualcam[:DEVICE], pipewire[:NAME], preview, FILE.mp4, "
                    "FILE.png, DIR/, rgba:DIR/, matte:FILE.mp4|DIR/ or null")


def loopback_devices(sysfs: str = "/sys/devices/virtual/video4linux") -> list[str]:
    """``/dev/videoN`` nodes that belong to v4l2loopback (they live under the virtual sysfs tree)."""
    try:
        names = sorted(os.listdir(sysfs))
    except OSError:
        return []
    return [f"/dev/{n}" for n in names if n.startswith("video")]
