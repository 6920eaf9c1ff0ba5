"""Is anybody reading an output? The question idle mode asks of every sink.

A sink answers :meth:`realtime.io.sinks.Sink.readers_present` with ``True`` (someone reads),
``False`` (nobody does) or ``None`` (it cannot tell, or the output is always consumed: a file,
a window). Idle mode acts only on a clear ``False`` from every output.

For a v4l2loopback device the answer is whether another process holds the device node open:
the kernel module counts openers but does not export the count, so :class:`LoopbackReaders`
watches the node with inotify (an open or a close by anyone wakes it; nothing runs otherwise)
and then looks through ``/proc/*/fd`` for the node, skipping this process (the writer).
Processes of other users whose ``fd`` folder cannot be read are not seen; call apps run as the
desktop user, like portrait-cam.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import select
import sys
import threading
import time
from typing import Protocol

log = logging.getLogger(__name__)


class ReaderWatch(Protocol):
    def readers_present(self) -> bool | None: ...

    def close(self) -> None: ...


SETTLE_S = 1.0  # rescans go on this long after an open or close event
_IN_OPEN = 0x20
_IN_CLOSE = 0x08 | 0x10
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000


def _libc():
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True) if name else None


def node_opened_by_others(node: str, own_pid: int | None = None) -> bool:
    """Whether a process other than ``own_pid`` (default: this one) has ``node`` open."""
    own = str(os.getpid() if own_pid is None else own_pid)
    try:
        target = os.path.realpath(node)
        pids = [p for p in os.listdir("/proc") if p.isdigit() and p != own]
    except OSError:
        return False
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # gone, or another user's process
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") == target:
                    return True
            except OSError:
                continue
    return False


class LoopbackReaders:
    """Readers of a device node: inotify on the node, a ``/proc`` scan when an open or close
    happened (and once at start). Without inotify it rescans every ``fallback_s`` seconds."""

    def __init__(self, node: str, fallback_s: float = 1.0) -> None:
        self.node = node
        self.fallback_s = fallback_s
        self._lock = threading.Lock()
        self._fd = -1
        self._present = node_opened_by_others(node)
        self._scanned = time.monotonic()
        self._event_at = -1e9
        lib = _libc()
        if lib is not None and hasattr(lib, "inotify_init1"):
            fd = lib.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
            if fd >= 0 and lib.inotify_add_watch(fd, os.fsencode(node), _IN_OPEN | _IN_CLOSE) >= 0:
                self._fd = fd
            elif fd >= 0:
                os.close(fd)
        if self._fd < 0:
            log.info("no inotify watch on %s: rescanning readers every %g s", node, fallback_s)

    def _events(self) -> bool:
        """Drain pending inotify events; True when there were any."""
        seen = False
        while True:
            r, _, _ = select.select([self._fd], [], [], 0)
            if not r:
                return seen
            try:
                data = os.read(self._fd, 4096)
            except BlockingIOError:
                return seen
            if not data:
                return seen
            seen = True

    def readers_present(self) -> bool | None:
        with self._lock:
            now = time.monotonic()
            if self._fd >= 0:
                if self._events():
                    self._event_at = now
                # a close is reported before the closing process's fd is gone from /proc: look
                # again for a moment after each event
                if now - self._event_at < SETTLE_S:
                    self._present = node_opened_by_others(self.node)
                    self._scanned = now
            elif now - self._scanned >= self.fallback_s:
                self._present = node_opened_by_others(self.node)
                self._scanned = now
            return self._present

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def reader_watch(cam, backend_name: str | None, node: str) -> ReaderWatch | None:
    """Who can tell whether an app reads a pyvirtualcam camera: its backend itself when it
    knows (``readers_present()``), else for v4l2loopback the device node's openers."""
    backend = getattr(cam, "_backend", None)
    if callable(getattr(backend, "readers_present", None)):
        return backend
    if backend_name == "v4l2loopback" and sys.platform.startswith("linux"):
        try:
            return LoopbackReaders(node)
        except OSError as e:
            log.info("cannot watch %s for readers (%s): idle mode off", node, e)
    return None
