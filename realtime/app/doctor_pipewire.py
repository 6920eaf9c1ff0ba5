"""``python run.py doctor``: the PipeWire camera path (``--output pipewire``).

Four checks, each with the install command for Debian/Ubuntu, Fedora and Arch when it fails:
the PipeWire daemon is reachable for this user, a session manager (WirePlumber) is connected
(without one no app is linked to the camera), the Python bindings load (the camera's ctypes
binding to PipeWire's client library, libpipewire-0.3), and PipeWire's SPA plugins let that
library make a client context. A missing piece is a warning while v4l2loopback can carry the
main job.
"""

from __future__ import annotations

from typing import Mapping

from realtime.io import pipewire as pw

NAME = "PipeWire camera"


def _per_distro(debian: str, fedora: str, arch: str) -> str:
    return f"Debian/Ubuntu: sudo apt install {debian}; Fedora: sudo dnf install {fedora}; Arch: sudo pacman -S {arch}"


DAEMON_FIX = (_per_distro("pipewire", "pipewire", "pipewire")
              + "; then: systemctl --user enable --now pipewire.socket")
SESSION_FIX = (_per_distro("wireplumber", "wireplumber", "wireplumber")
               + "; then: systemctl --user enable --now wireplumber")
BINDINGS_FIX = _per_distro("libpipewire-0.3-0", "pipewire-libs", "libpipewire")
PLUGIN_FIX = _per_distro("libspa-0.2-modules", "pipewire-libs", "libpipewire")


def check_pipewire(env: Mapping[str, str], Check):
    """The PipeWire checks, in the order printed, as ``Check(name, ok, detail, fix)`` objects
    (the doctor's class, passed in)."""
    checks = []
    ok, detail = pw.daemon_reachable(env)
    checks.append(Check("PipeWire daemon", ok, detail, DAEMON_FIX))
    if ok:
        sm, what = pw.session_manager(env)
        checks.append(Check("PipeWire session manager", sm if sm is not None else None,
                            f"{what} connected" if sm else what, SESSION_FIX))
    else:
        checks.append(Check("PipeWire session manager", False, "not checked: no PipeWire daemon", SESSION_FIX))
    found = pw.probe_library()
    if "library" in found:
        checks.append(Check("PipeWire Python bindings", False,
                            f"libpipewire-0.3 does not load through ctypes ({found['library']})", BINDINGS_FIX))
        checks.append(Check("PipeWire SPA plugins", False, "not checked: no libpipewire", PLUGIN_FIX))
        return checks
    checks.append(Check("PipeWire Python bindings", True,
                        f"libpipewire {found['version']} ({found['path']}) through ctypes"))
    checks.append(Check("PipeWire SPA plugins", bool(found.get("context")),
                        "a client context loads" if found.get("context") else
                        "libpipewire cannot make a client context (SPA support plugins or client.conf missing)",
                        PLUGIN_FIX))
    return checks


def usable(checks) -> bool:
    return all(c.ok is True for c in checks)


def as_warnings(checks, why: str):
    """The same checks with failures shown as warnings (the other camera path carries the job)."""
    from dataclasses import replace

    return [c if c.ok is not False else replace(c, ok=None, detail=f"{c.detail} ({why})") for c in checks]
