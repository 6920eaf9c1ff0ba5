"""A PipeWire camera: a ``Video/Source`` node that the camera portal, browsers and OBS list.

Built from well-kept parts: GStreamer's ``pipewiresink`` (shipped with PipeWire) driven through
PyGObject as ``appsrc ! videoconvert ! pipewiresink mode=provide``, with the node properties the
camera portal filters on (``media.class = Video/Source``, ``media.role = Camera``). GStreamer
runs in a streaming process of its own (realtime/io/pipewire_stream.py says why); frames reach
it through a pipe.

Two layers:

- :class:`PipeWireCamera` is a pyvirtualcam backend (``register()`` adds it under the name
  ``pipewire``), so any pyvirtualcam program can publish a PipeWire camera with
  ``pyvirtualcam.Camera(w, h, fps, fmt=..., backend="pipewire", device="My Cam")``.
- :class:`realtime.io.sinks.PipeWireSink` is the ``--output pipewire[:NAME]`` sink: like the v4l2loopback sink it
  gets the loop's processed, fail-closed and "camera unavailable" frames and the camera keeps a
  steady rate, repeating the last frame when processing is late (done in the streaming process,
  away from this one's load).

The node lives as long as the streaming process: it is removed on ``close()``, and when this
process dies without closing, the streaming process reads EOF and ends (or the daemon drops it).

``pipewiresink`` offers one pixel format per node (its caps are fixed before the stream
connects), so the format is chosen with ``--vcam-format``: ``i420`` (default; what browsers
and OBS take), ``yuyv`` (YUY2), ``nv12``, ``uyvy``, ``bgr`` (sent as BGRx) or ``rgb`` (RGBx).
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


BACKEND = "pipewire"
DEFAULT_NAME = "Portrait Cam"
NODE_PREFIX = "portrait-cam"

# System packages per distribution: the daemon, a session manager, the GStreamer plugin and the
# GObject bindings (the system python3-gi, or PyGObject from PyPI which builds against the
# introspection headers named last).
INSTALL = {
    "Debian/Ubuntu": "sudo apt install pipewire wireplumber gstreamer1.0-pipewire gstreamer1.0-plugins-base "
                     "gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 libgirepository1.0-dev libcairo2-dev pkg-config",
    "Fedora": "sudo dnf install pipewire wireplumber pipewire-gstreamer gstreamer1-plugins-base "
              "gobject-introspection-devel cairo-gobject-devel pkgconf",
    "Arch": "sudo pacman -S pipewire wireplumber gst-plugin-pipewire gst-plugins-base gobject-introspection cairo pkgconf",
}
PIP_FIX = "pip install -e '.[pipewire]'"
SESSION_MANAGERS = ("wireplumber", "pipewire-media-session")


def install_hint(what: str = "") -> str:
    """The install commands for every distribution, in one line."""
    lines = "; ".join(f"{d}: {c}" for d, c in INSTALL.items())
    return f"{what + ': ' if what else ''}{lines}; then {PIP_FIX}"


# pyvirtualcam pixel format (libyuv FourCC) -> (format the stream process is fed, format the node offers)
_FORMATS = {
    "I420": ("I420", "I420"),
    "NV12": ("NV12", "NV12"),
    "YUY2": ("YUY2", "YUY2"),
    "UYVY": ("UYVY", "UYVY"),
    "24BG": ("BGR", "BGRx"),
    "raw ": ("RGB", "RGBx"),
    "ABGR": ("RGBA", "RGBx"),
    "J400": ("GRAY8", "I420"),
}
_YUV = ("I420", "NV12", "YUY2", "UYVY")
_HALF_BYTES_PER_PIXEL = {"I420": 3, "NV12": 3, "YUY2": 4, "UYVY": 4, "BGR": 6, "RGB": 6, "RGBA": 8, "GRAY8": 2}
STREAM_SCRIPT = Path(__file__).with_name("pipewire_stream.py")
_PROBE = """
import json
try:
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
    Gst.init(None)
except (ImportError, ValueError) as e:
    print(json.dumps({"bindings": str(e) or type(e).__name__}))
    raise SystemExit(0)
found = {e: Gst.ElementFactory.find(e) for e in ("appsrc", "videoconvert", "pipewiresink")}
print(json.dumps({"versions": f"PyGObject {gi.__version__}, GStreamer {Gst.version_string().split()[-1]}",
                  "missing": [e for e, f in found.items() if f is None],
                  "plugin": found["pipewiresink"].get_plugin().get_version() if found["pipewiresink"] else ""}))
"""


def probe_gstreamer(timeout: float = 20.0) -> dict:
    """What loads in a child process (GStreamer is never loaded into this one: see
    realtime/io/pipewire_stream.py): ``bindings`` (why they fail) or ``versions``, ``missing``
    elements and the ``plugin`` version."""
    try:
        r = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=timeout)
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
        return {"bindings": f"the probe did not run ({e})"}


def check_bindings() -> tuple[bool, str]:
    """Do PyGObject, GStreamer and its PipeWire plugin load? (ok, what was found or what is missing)"""
    found = probe_gstreamer()
    if "bindings" in found:
        return False, f"GStreamer's Python bindings do not load ({found['bindings']})"
    if found["missing"]:
        return False, f"GStreamer has no {', '.join(found['missing'])} element (the PipeWire plugin or gst-plugins-base)"
    return True, f"{found['versions']}, pipewiresink {found['plugin']}"


def node_name_for(description: str) -> str:
    """A stable ``node.name`` for a camera name: apps that remember the camera find it again."""
    slug = re.sub(r"[^a-z0-9]+", "-", description.lower()).strip("-")
    return NODE_PREFIX if slug in ("", NODE_PREFIX) else f"{NODE_PREFIX}.{slug}"


def node_properties(description: str, node_name: str) -> dict[str, str]:
    """What the camera portal, browsers and OBS look for on a camera node."""
    return {
        "media.class": "Video/Source",
        "media.role": "Camera",
        "media.name": description,
        "node.name": node_name,
        "node.description": description,
        "node.nick": description,
        "device.icon-name": "camera-web",
        "application.name": DEFAULT_NAME,
    }


class PipeWireCamera:
    """A pyvirtualcam backend publishing frames as a PipeWire camera node.

    ``device`` is the camera's name as apps show it (``node.description``); extra keyword
    ``node_name`` overrides the derived stable ``node.name``. Frames go through a pipe to the
    streaming process (realtime/io/pipewire_stream.py), which owns the node.
    """

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None,
                 node_name: str | None = None, start_timeout: float = 20.0, **kw) -> None:
        from pyvirtualcam.util import decode_fourcc

        code = decode_fourcc(fourcc)
        if code not in _FORMATS:
            raise ValueError(f"pixel format {code!r} is not supported by the PipeWire camera")
        src_fmt, node_fmt = _FORMATS[code]
        self._description = device or DEFAULT_NAME
        self.node_name = node_name or node_name_for(self._description)
        self.format = node_fmt
        self.width, self.height = width, height
        self._size = width * height * _HALF_BYTES_PER_PIXEL[src_fmt] // 2
        cfg = {"width": width, "height": height, "fps": float(fps), "src_format": src_fmt, "node_format": node_fmt,
               "frame_bytes": self._size, "colorimetry": "bt601" if node_fmt in _YUV else "",
               "properties": node_properties(self._description, self.node_name)}
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen([sys.executable, str(STREAM_SCRIPT), json.dumps(cfg)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._log, start_new_session=True)
        self._closed = False
        line = self._first_line(start_timeout)
        if line != "ready":
            self.close()
            why = line[len("error: "):] if line.startswith("error: ") else (self._stderr_tail() or "no answer")
            raise RuntimeError(f"cannot publish the camera on PipeWire ({why}); is a PipeWire session running "
                               f"for this user? ('python run.py doctor' checks)")

    def _first_line(self, timeout: float) -> str:
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        return self._proc.stdout.readline().decode(errors="replace").strip() if ready else ""

    def _stderr_tail(self) -> str:
        self._log.seek(0)
        lines = [ln for ln in self._log.read()[-4000:].decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1] if lines else ""

    def send(self, frame: np.ndarray) -> None:
        if self._proc.poll() is not None:
            raise RuntimeError(f"the PipeWire stream ended (exit {self._proc.returncode}): "
                               f"{self._stderr_tail() or 'no message'}")
        data = np.ascontiguousarray(frame).reshape(-1)
        if data.size != self._size:
            raise ValueError(f"frame of {data.size} bytes, expected {self._size}")
        try:
            self._proc.stdin.write(data.data)
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError) as e:
            raise RuntimeError(f"the PipeWire stream ended: {self._stderr_tail() or e}") from e

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._proc.stdin.close()  # EOF: the streaming process removes the node and ends
        except OSError:
            pass  # it is gone already
        try:
            self._proc.wait(5.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()
        self._log.close()

    def device(self) -> str:
        return self._description

    def native_fourcc(self):
        return None

    # -- who reads the camera ------------------------------------------------------------------

    def node(self, graph: list | None = None) -> dict | None:
        """This camera's node in ``pw-dump`` (matched by name and streaming process), or None."""
        graph = dump_graph() if graph is None else graph
        pid = str(self._proc.pid)
        clients = {o["id"]: (o.get("info") or {}).get("props", {}) for o in graph if o.get("type", "").endswith("Client")}
        for o in graph:
            props = (o.get("info") or {}).get("props", {})
            if (o.get("type", "").endswith("Node") and props.get("node.name") == self.node_name
                    and str(clients.get(props.get("client.id"), {}).get("application.process.id")) == pid):
                return o
        return None

    def state(self) -> str | None:
        """The node's state as PipeWire reports it: ``running`` while an app reads the camera,
        ``idle`` or ``suspended`` when none does (None: cannot tell)."""
        try:
            node = self.node()
        except OSError:
            return None
        return (node.get("info") or {}).get("state") if node is not None else None

    def readers(self) -> int | None:
        """How many consumers are linked to the node right now (None: cannot tell)."""
        try:
            graph = dump_graph()
        except OSError:
            return None
        node = self.node(graph)
        if node is None:
            return None
        return sum(1 for o in graph if o.get("type", "").endswith("Link")
                   and (o.get("info") or {}).get("output-node-id") == node["id"])


def dump_graph(timeout: float = 3.0) -> list:
    """The PipeWire graph as ``pw-dump`` prints it (raises OSError when it cannot be read)."""
    exe = shutil.which("pw-dump")
    if exe is None:
        raise OSError("pw-dump is not installed (it comes with PipeWire's tools)")
    try:
        out = subprocess.run([exe], capture_output=True, timeout=timeout, check=True).stdout
        return json.loads(out or b"[]")
    except (subprocess.SubprocessError, ValueError) as e:
        raise OSError(f"pw-dump failed: {e}") from e


def register() -> type[PipeWireCamera]:
    """Make ``backend="pipewire"`` available to ``pyvirtualcam.Camera``."""
    import pyvirtualcam

    pyvirtualcam.register_backend(BACKEND, PipeWireCamera)
    return PipeWireCamera


# -- is a PipeWire session there? --------------------------------------------------------------

def socket_path(env=os.environ) -> Path | None:
    """Where this user's PipeWire daemon listens (``PIPEWIRE_REMOTE`` / ``XDG_RUNTIME_DIR``)."""
    remote = env.get("PIPEWIRE_REMOTE") or "pipewire-0"
    if os.path.isabs(remote):
        return Path(remote)
    base = env.get("PIPEWIRE_RUNTIME_DIR") or env.get("XDG_RUNTIME_DIR")
    return Path(base) / remote if base else None


def daemon_reachable(env=os.environ, timeout: float = 1.0) -> tuple[bool, str]:
    path = socket_path(env)
    if path is None:
        return False, "XDG_RUNTIME_DIR is not set, so there is no PipeWire socket to look for"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
    except OSError as e:
        return False, f"no PipeWire daemon at {path} ({e.strerror or e})"
    finally:
        s.close()
    return True, f"PipeWire daemon at {path}"


def session_manager(env=os.environ) -> tuple[bool | None, str]:
    """Is WirePlumber (or another session manager) connected? None when it cannot be told."""
    try:
        graph = subprocess.run([shutil.which("pw-dump") or "pw-dump"], capture_output=True, timeout=3.0,
                               env=dict(env), check=True).stdout
        objs = json.loads(graph or b"[]")
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        return None, f"cannot list PipeWire clients with pw-dump ({e})"
    for o in objs:
        props = (o.get("info") or {}).get("props", {})
        if o.get("type", "").endswith("Client"):
            name = f"{props.get('application.name', '')} {props.get('application.process.binary', '')}".lower()
            if any(m in name for m in SESSION_MANAGERS) or "session-manager" in name:
                return True, props.get("application.name") or props.get("application.process.binary")
    return False, "no session manager (WirePlumber) is connected to PipeWire"


def available(env=os.environ) -> tuple[bool, str]:
    """Can ``--output pipewire`` work here? (bindings, plugin, daemon, session manager)"""
    ok, why = daemon_reachable(env)
    if not ok:
        return False, why
    ok, why = check_bindings()
    if not ok:
        return False, why
    sm, what = session_manager(env)
    if sm is False:
        return False, what
    return True, f"PipeWire session ({what if sm else 'daemon reachable'})"
