"""A PipeWire camera: a ``Video/Source`` node that the camera portal, browsers and OBS list.

Built on PipeWire's own client library, ``libpipewire-0.3`` (loaded with ctypes, so no Python
package is needed), in a streaming process of its own (realtime/io/pipewire_stream.py says why);
frames reach it through a pipe. The node carries the properties the camera portal filters on
(``media.class = Video/Source``, ``media.role = Camera``) and offers every raw format in
realtime/io/pipewire_pod.py (I420, YUY2, NV12, UYVY, BGRx, RGBx) at the run's size and rate:
the app reading the camera picks one and the streaming process converts to it. ``--vcam-format``
chooses which format is offered first, i.e. what an app that takes any of them gets.
(GStreamer's ``pipewiresink`` was used before: it offers the one format its caps were fixed to
before any app connects, so an app asking for another format got nothing.)

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
Apps reading the camera at the same time share the format the first one settled on (one node,
one format at a time); when all have left, the next app negotiates afresh.
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
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np


BACKEND = "pipewire"
DEFAULT_NAME = "Portrait Cam"
NODE_PREFIX = "portrait-cam"

# System packages per distribution: the daemon, a session manager, the client library with its SPA
# plugins, and the GStreamer plugin that OBS and the tests read PipeWire cameras with.
INSTALL = {
    "Debian/Ubuntu": "sudo apt install pipewire wireplumber libpipewire-0.3-0 libspa-0.2-modules gstreamer1.0-pipewire",
    "Fedora": "sudo dnf install pipewire wireplumber pipewire-libs pipewire-gstreamer",
    "Arch": "sudo pacman -S pipewire wireplumber libpipewire gst-plugin-pipewire",
}
SESSION_MANAGERS = ("wireplumber", "pipewire-media-session")


def install_hint(what: str = "") -> str:
    """The install commands for every distribution, in one line."""
    lines = "; ".join(f"{d}: {c}" for d, c in INSTALL.items())
    return f"{what + ': ' if what else ''}{lines}"


# pyvirtualcam pixel format (libyuv FourCC) -> (format the stream process is fed, node format offered first)
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
_HALF_BYTES_PER_PIXEL = {"I420": 3, "NV12": 3, "YUY2": 4, "UYVY": 4, "BGR": 6, "RGB": 6, "RGBA": 8, "GRAY8": 2}
NODE_FORMATS = ("I420", "YUY2", "NV12", "UYVY", "BGRx", "RGBx")  # realtime/io/pipewire_pod.py's order
FROM_VCAM = {"i420": "I420", "yuyv": "YUY2", "nv12": "NV12", "uyvy": "UYVY", "bgr": "BGRx", "rgb": "RGBx"}
STREAM_SCRIPT = Path(__file__).with_name("pipewire_stream.py")


def probe_library(timeout: float = 20.0) -> dict:
    """What loads in a child process (the streaming script's ``--probe``): ``library`` (why
    libpipewire does not load) or its ``version``, ``path`` and ``context`` (a client context
    could be made: the SPA support plugins are there)."""
    try:
        r = subprocess.run([sys.executable, str(STREAM_SCRIPT), "--probe"], capture_output=True, text=True,
                           timeout=timeout)
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
        return {"library": f"the probe did not run ({e})"}


def check_bindings() -> tuple[bool, str]:
    """Does libpipewire load and make a client context? (ok, what was found or what is missing)"""
    found = probe_library()
    if "library" in found:
        return False, f"PipeWire's client library libpipewire-0.3 does not load ({found['library']})"
    if not found.get("context"):
        return False, (f"libpipewire {found['version']} cannot make a client context "
                       "(PipeWire's SPA support plugins or client.conf are missing)")
    return True, f"libpipewire {found['version']}"


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

    ``device`` is the camera's name as apps show it (``node.description``); extra keywords:
    ``node_name`` overrides the derived stable ``node.name``, ``prefer`` the node format offered
    first (by default the one matching the pixel format sent). Frames go through a pipe to the
    streaming process (realtime/io/pipewire_stream.py), which owns the node.
    """

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None,
                 node_name: str | None = None, prefer: str | None = None, start_timeout: float = 20.0,
                 **kw) -> None:
        from pyvirtualcam.util import decode_fourcc

        code = decode_fourcc(fourcc)
        if code not in _FORMATS:
            raise ValueError(f"pixel format {code!r} is not supported by the PipeWire camera")
        src_fmt, node_fmt = _FORMATS[code]
        node_fmt = prefer or node_fmt
        if node_fmt not in NODE_FORMATS:
            raise ValueError(f"node format {node_fmt!r} is not one of {', '.join(NODE_FORMATS)}")
        self._description = device or DEFAULT_NAME
        self.node_name = node_name or node_name_for(self._description)
        self.format = node_fmt  # offered first
        self.negotiated: str | None = None  # what the app reading the camera chose (last said)
        self.streaming: bool | None = None  # is an app reading the camera? (None: not said yet)
        self.width, self.height = width, height
        self._size = width * height * _HALF_BYTES_PER_PIXEL[src_fmt] // 2
        rate = Fraction(float(fps)).limit_denominator(1001)
        cfg = {"width": width, "height": height, "fps": float(fps), "rate": [rate.numerator, rate.denominator],
               "src_format": src_fmt, "prefer": node_fmt, "frame_bytes": self._size,
               "start_timeout": start_timeout * 0.75, "properties": node_properties(self._description, self.node_name)}
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
        # later lines say which format an app settled on
        self._said = threading.Thread(target=self._listen, name="portrait-cam-pipewire-said", daemon=True)
        self._said.start()

    def _listen(self) -> None:
        for raw in iter(self._proc.stdout.readline, b""):
            parts = raw.decode(errors="replace").split()
            if len(parts) >= 2 and parts[0] == "format":
                self.negotiated = parts[1]
            elif len(parts) >= 2 and parts[0] == "state":
                self.streaming = parts[1] == "streaming"

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
        if getattr(self, "_said", None) is not None:
            self._said.join(2.0)  # the pipe ended with the process
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


def startup_problem(env=os.environ) -> str | None:
    """Why ``--output pipewire`` cannot start here, with the fix (None: it can try)."""
    ok, why = check_bindings()
    if not ok:
        return f"{why}; {install_hint('install')}"
    ok, why = daemon_reachable(env)
    if not ok:
        return (f"{why}; start PipeWire for this user (systemctl --user enable --now pipewire.socket wireplumber; "
                f"not under sudo) or {install_hint('install it')}")
    return None


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
