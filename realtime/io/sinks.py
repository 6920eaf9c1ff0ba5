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
    DIR/                  PNG frames (a trailing / or an existing directory)
    rgba:DIR/             PNG frames with the matte as alpha (OBS overlays)
    matte:FILE.mp4|DIR/   the matte itself as grey video or PNG frames
    null                  discard (benchmarks)
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from realtime.io.readers import reader_watch
from realtime.core.errors import SinkError, VirtualCameraUnavailableError
from realtime.core.stage import Closable
from realtime.io import pipewire as pw
from realtime.io.paths import make_folders, remove_if_empty
from realtime.io import safefiles

log = logging.getLogger(__name__)

MODPROBE_FIX = 'sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label="Portrait Cam"'
VCAM_BACKEND_ENV = "REALTIME_VCAM_BACKEND"  # names the pyvirtualcam backend to use (tests: a capturing one)
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv")


@dataclass(frozen=True)
class OutputFrame:
    frame: np.ndarray               # (H, W, 3) uint8 BGR: what viewers see
    matte: np.ndarray | None        # (H, W) float32 in [0, 1]; None when no matte is available
    disparity: np.ndarray | None    # (H, W) float32 in [0, 1]
    name: str                       # file stem for frame-named outputs
    index: int
    captured_at: float              # perf_counter at capture, for latency
    result: object = None           # the pipeline Result when processing succeeded (debug views)
    input: np.ndarray | None = None  # the raw camera frame: local debug views only, never sent out


class Sink(Closable):
    kind = "sink"
    wants_matte = False
    live_view = False   # shown to people live (virtual camera, preview): gets "camera unavailable" cards

    def __init__(self) -> None:
        self.quit_requested = False   # set by a preview window's q/Esc
        self.written = 0
        self.failed: str | None = None  # why the loop stopped this sink; a failed sink is never finished

    def open(self, width: int, height: int, fps: float) -> None:
        """Prepare for frames of this size; raises :class:`SinkError` with the fix on failure."""

    def write(self, out: OutputFrame) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """The stream ended normally: make file outputs final."""

    def readers_present(self) -> bool | None:
        """Anyone reading now? ``None``: cannot tell, or always consumed (:mod:`realtime.io.readers`)."""
        return None

    def hold(self, frame: np.ndarray, fps: float) -> None:
        """Nobody reads: show ``frame`` at ``fps`` until the next :meth:`write` (a keep-alive)."""

    # close() (from Closable) releases everything; an unfinished file output is discarded.

    def describe(self) -> str:
        return self.kind


class NullSink(Sink):
    kind = "null"

    def write(self, out: OutputFrame) -> None:
        self.written += 1


def _matte_u8(matte: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    if matte is None:
        return np.zeros(shape, np.uint8)
    # round, not truncate: 0.5/255 steps map to the nearest level
    return cv2.convertScaleAbs(matte, alpha=255.0, beta=0.5) if matte.dtype == np.float32 else matte


class PngFolderSink(Sink):
    """One PNG per frame, named after the input frame (``00000.png`` ... for videos/cameras).

    ``plane`` chooses what is written: the rendered frame (``frame``), the frame with the matte
    as alpha (``rgba``), the matte as grey (``matte``) or the disparity as grey (``depth``).
    """

    kind = "png"

    def __init__(self, folder: str | Path, plane: str = "frame", overwrite: bool = False) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.plane = plane
        self.overwrite = overwrite
        self.wants_matte = plane in ("rgba", "matte", "depth")
        self._created: list[Path] = []

    def open(self, width: int, height: int, fps: float) -> None:
        held = safefiles.folder_entries(self.folder)
        if held and not self.overwrite:
            raise SinkError(f"output folder {self.folder} already holds {len(held)} file(s) (e.g. {held[0]}); "
                            "name a new or empty folder, or pass --overwrite to replace files of the same name")
        try:
            self._created = make_folders(self.folder)
        except OSError as e:
            raise SinkError(f"cannot create output folder {self.folder} ({e.strerror or e})") from e
        if not os.access(self.folder, os.W_OK):
            raise SinkError(f"output folder {self.folder} is not writable; choose another folder")

    def write(self, out: OutputFrame) -> None:
        shape = out.frame.shape[:2]
        if self.plane == "frame":
            img = out.frame
        elif self.plane == "rgba":
            img = cv2.cvtColor(out.frame, cv2.COLOR_BGR2BGRA)
            img[..., 3] = _matte_u8(out.matte, shape)
        elif self.plane == "matte":
            img = _matte_u8(out.matte, shape)
        elif self.plane == "depth":
            img = _matte_u8(out.disparity, shape)
        else:  # pragma: no cover - constructor callers pass known planes
            raise ValueError(self.plane)
        safefiles.write_image(self.folder / f"{out.name}.png", img)
        self.written += 1

    def _release(self) -> None:
        remove_if_empty(self._created)  # a job that wrote nothing leaves no folder behind

    def describe(self) -> str:
        what = {"frame": "PNG frames", "rgba": "RGBA PNG frames (alpha = matte)", "matte": "matte PNGs",
                "depth": "disparity PNGs"}[self.plane]
        return f"{what} in {self.folder}/"


class VideoFileSink(Sink):
    """An mp4 (MPEG-4 Part 2, which every OpenCV build can write) of the rendered frames or the matte.

    The encoder writes into a private folder beside the target; :meth:`finish` checks that the
    file opens and holds every frame written before renaming it to its final name, so a full
    disk or a failed encoder close is a failed output, never a truncated file that looks done.
    """

    kind = "video"
    one_size = True  # every frame the size it was opened with
    _NAME = "video"

    def __init__(self, path: str | Path, plane: str = "frame", fps: float | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.plane = plane
        self.wants_matte = plane == "matte"
        self._fps = fps
        self._writer: cv2.VideoWriter | None = None
        self._folder: safefiles.PrivateFolder | None = None
        self._created: list[Path] = []

    @property
    def _tmp_name(self) -> str:
        return self._NAME + self.path.suffix.lower()

    def open(self, width: int, height: int, fps: float) -> None:
        if width % 2 or height % 2:  # the codec works on 2x2 blocks: it would drop a row or column
            raise SinkError(f"video file {self.path} needs an even width and height, got {width}x{height}; "
                            f"pass --size {width - width % 2}x{height - height % 2} (or write PNG frames to a folder)")
        if self.path.parent and not self.path.parent.exists():
            try:
                self._created = make_folders(self.path.parent)
            except OSError as e:
                raise SinkError(f"cannot create folder for {self.path} ({e.strerror or e})") from e
        if self.path.is_dir():
            raise SinkError(f"video output {self.path} is a folder; name a file, or end a PNG folder with /")
        self._folder = safefiles.PrivateFolder(self.path.parent)
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
        self._writer = cv2.VideoWriter(self._folder.cv2_path(self._tmp_name), fourcc, float(self._fps or fps),
                                       (width, height), self.plane != "matte")
        if not self._writer.isOpened():
            self._writer = None
            self._folder.remove()
            self._folder = None
            raise SinkError(f"cannot write video {self.path}; check the folder is writable and the extension "
                            f"is one of {', '.join(VIDEO_EXTENSIONS)}")
        self._size = (width, height)

    def write(self, out: OutputFrame) -> None:
        if self._writer is None:
            raise SinkError(f"video {self.path} is not open")
        img = out.frame if self.plane == "frame" else _matte_u8(out.matte, out.frame.shape[:2])
        self._writer.write(img)
        self.written += 1

    def finish(self) -> None:
        """Close the encoder, check the file, rename it; :class:`SinkError` when it is incomplete."""
        if self._writer is None or self._folder is None:
            return
        self._writer.release()
        self._writer = None
        if not self.written:
            return
        self._check_readable()
        self._folder.publish(self._tmp_name, self.path)

    def _check_readable(self) -> None:
        tmp = self._folder.cv2_path(self._tmp_name)
        cap = cv2.VideoCapture(tmp)
        try:
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
            ok = cap.isOpened() and cap.read()[0]
        finally:
            cap.release()
        if not ok or count != self.written:
            got = f"{count} of {self.written} frames readable" if ok else "the file cannot be read back"
            raise SinkError(f"video {self.path} is incomplete ({got}: disk full or file size limit?); "
                            "nothing was saved under that name")

    def _release(self) -> None:
        if self._writer is not None:  # not finished: the stream broke, discard the partial file
            self._writer.release()
            self._writer = None
        if self._folder is not None:
            self._folder.remove()
            self._folder = None
        remove_if_empty(self._created)

    def describe(self) -> str:
        return f"{'matte video' if self.plane == 'matte' else 'video'} {self.path}"


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
        if not target or Path(target).suffix.lower() in VIDEO_EXTENSIONS:
            raise SinkError(f"--output {spec}: rgba output is a folder of PNG frames, e.g. rgba:overlay/")
        return PngFolderSink(target, "rgba", overwrite)
    if low.startswith("matte:"):
        target = s[6:]
        if not target:
            raise SinkError(f"--output {spec}: name a video (matte:matte.mp4) or a folder (matte:mattes/)")
        if Path(target).suffix.lower() in VIDEO_EXTENSIONS and not is_folder_spec(target):
            return VideoFileSink(target, "matte", fps)
        return PngFolderSink(target, "matte", overwrite)
    if is_folder_spec(s):
        return PngFolderSink(s, overwrite=overwrite)
    if Path(s).suffix.lower() in VIDEO_EXTENSIONS:
        return VideoFileSink(s, "frame", fps)
    if Path(s).suffix.lower() in (".png", ".jpg", ".jpeg"):
        raise SinkError(f"--output {spec}: to write PNG frames give a folder with a trailing slash "
                        f"({Path(s).with_suffix('')}/)")
    raise SinkError(f"--output {spec} is not understood; use virtualcam[:DEVICE], pipewire[:NAME], preview, FILE.mp4, DIR/, "
                    "rgba:DIR/, matte:FILE.mp4|DIR/ or null")


def loopback_devices(sysfs: str = "/sys/devices/virtual/video4linux") -> list[str]:
    """``/dev/videoN`` nodes that belong to v4l2loopback (they live under the virtual sysfs tree)."""
    try:
        names = sorted(os.listdir(sysfs))
    except OSError:
        return []
    return [f"/dev/{n}" for n in names if n.startswith("video")]
