"""A private, headless PipeWire session for tests: its own D-Bus session bus (dbus-run-session),
a temporary XDG_RUNTIME_DIR, ``pipewire`` and then ``wireplumber``, all in one process group
that :meth:`PipeWireSession.stop` ends. Nothing of the user's own session is touched.

Under CI (``CI=true``) a session that cannot start fails the test; elsewhere it skips with the
reason.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# pipewire first, wireplumber once the daemon's socket is there; dbus-run-session ends the bus
# when this shell ends. The bus address is written down for clients of the session bus (the
# camera portal, which D-Bus starts on first use); with a portal, a virtual X display for its
# GTK backend comes first (its number written down too).
_LAUNCH = ('echo "$DBUS_SESSION_BUS_ADDRESS" > "$XDG_RUNTIME_DIR/bus-address"; '
           'pipewire & pw=$!; i=0; while [ ! -S "$XDG_RUNTIME_DIR/pipewire-0" ] && [ $i -lt 200 ]; '
           'do sleep 0.05; i=$((i+1)); done; wireplumber & wp=$!; '
           'trap \'kill $wp $pw $xv 2>/dev/null; wait\' TERM INT; wait')
_XVFB = ('Xvfb -displayfd 5 -nolisten tcp 5>"$XDG_RUNTIME_DIR/display.tmp" & xv=$!; i=0; '
         'while [ ! -s "$XDG_RUNTIME_DIR/display.tmp" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; '
         'export DISPLAY=":$(cat "$XDG_RUNTIME_DIR/display.tmp")"; '
         'dbus-update-activation-environment DISPLAY XDG_CURRENT_DESKTOP; '
         'mv "$XDG_RUNTIME_DIR/display.tmp" "$XDG_RUNTIME_DIR/display"; ')
PORTAL_TOOLS = ("Xvfb", "gdbus", "dbus-update-activation-environment", "/usr/libexec/xdg-desktop-portal", "/usr/libexec/xdg-desktop-portal-gtk")


def unavailable(reason: str):
    """Skip with the reason, or fail under CI where the session must run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PipeWire session unavailable under CI: {reason}")
    pytest.skip(f"PipeWire session unavailable: {reason}")


class PipeWireSession:
    def __init__(self, portal: bool = False) -> None:
        self.portal = portal
        self.dir = Path(tempfile.mkdtemp(prefix="portrait-cam-pw-"))
        runtime = self.dir / "runtime"
        runtime.mkdir(mode=0o700)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPEWIRE_", "DBUS_SESSION"))}
        # the session's own XDG folders: the portal's permission store writes to the data folder
        self.env.update(XDG_RUNTIME_DIR=str(runtime), XDG_CONFIG_HOME=str(self.dir / "config"),
                        XDG_STATE_HOME=str(self.dir / "state"), XDG_DATA_HOME=str(self.dir / "data"),
                        PYTHONPATH=str(ROOT))
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "session.log"

    def start(self, timeout: float = 30.0) -> "PipeWireSession":
        missing = [t for t in ("dbus-run-session", "pipewire", "wireplumber", "pw-dump") if not shutil.which(t)]
        if missing:
            unavailable(f"{', '.join(missing)} not installed (apt-get install pipewire wireplumber dbus)")
        if self.portal:
            missing = [t for t in PORTAL_TOOLS if not shutil.which(t)]
            if missing:
                unavailable(f"{', '.join(missing)} not installed (apt-get install xdg-desktop-portal "
                            "xdg-desktop-portal-gtk xvfb libglib2.0-bin)")
            # xdg-desktop-portal 1.16 picks backends whose UseIn names the desktop (gtk: gnome)
            self.env.update(XDG_CURRENT_DESKTOP="gnome", GTK_A11Y="none", NO_AT_BRIDGE="1",
                            XDG_CACHE_HOME=str(self.dir / "cache"))  # the GTK backend's caches
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(["dbus-run-session", "--", "sh", "-c", (_XVFB if self.portal else "") + _LAUNCH],
                                         env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if any(o.get("type", "").endswith("Client")
                   and (o.get("info") or {}).get("props", {}).get("application.name") == "WirePlumber"
                   for o in self.dump()) and (not self.portal or self._portal_env()):
                return self
            time.sleep(0.2)
        tail = self.log.read_text(errors="replace")[-600:]
        self.stop()
        unavailable(f"pipewire + wireplumber did not come up in {timeout:.0f} s: {tail}")
        return self

    def _portal_env(self) -> bool:
        """The bus address and the X display, once both are written down."""
        run = Path(self.env["XDG_RUNTIME_DIR"])
        try:
            bus, display = (run / "bus-address").read_text().strip(), (run / "display").read_text().strip()
        except OSError:
            return False
        if not bus or not display:
            return False
        self.env.update(DBUS_SESSION_BUS_ADDRESS=bus, DISPLAY=f":{display}")
        return True

    def dump(self) -> list:
        try:
            out = subprocess.run(["pw-dump"], env=self.env, capture_output=True, timeout=10).stdout
            return json.loads(out or b"[]")
        except (subprocess.SubprocessError, ValueError):
            return []

    def nodes(self, **props) -> list[dict]:
        """Nodes whose properties include all of ``props`` (dots written as underscores)."""
        want = {k.replace("_", "."): v for k, v in props.items()}
        return [o for o in self.dump() if o.get("type", "").endswith("Node")
                and all((o.get("info") or {}).get("props", {}).get(k) == v for k, v in want.items())]

    def wait_node(self, timeout: float = 180.0, proc: subprocess.Popen | None = None, **props) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.nodes(**props)
            if found:
                return found[0]
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"the run ended (exit {proc.returncode}) before its node appeared")
            time.sleep(0.2)
        raise AssertionError(f"no node with {props} after {timeout:.0f} s")

    def wait_gone(self, timeout: float = 10.0, **props) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.nodes(**props):
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.proc is not None:
            try:  # anything left in the group (a daemon that outlived its shell)
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def capture(session: PipeWireSession, target: str, out: Path, frames: int = 0, seconds: float = 10.0,
            caps: str = "", skip_black: bool = False) -> subprocess.Popen:
    """Start tests/pw_capture.py reading ``target`` from the session (see that script)."""
    cmd = [sys.executable, str(ROOT / "tests" / "pw_capture.py"), target, str(out), "--frames", str(frames),
           "--seconds", str(seconds)] + (["--caps", caps] if caps else []) + (["--skip-black"] if skip_black else [])
    return subprocess.Popen(cmd, env=session.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 300.0) -> tuple[int, str, str]:
    """Wait for a child; kill its whole group if it overstays (no leftovers either way)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        err += f"\n[killed after {timeout:.0f} s]"
    return proc.returncode, out, err


def stop_capture(proc: subprocess.Popen) -> tuple[int, str, str]:
    """Ask a running capture to save what it has (before its node goes away) and wait for it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return finish(proc, 60)
