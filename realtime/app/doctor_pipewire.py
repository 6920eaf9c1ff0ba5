"""``python run.py doctor``: the PipeWire camera path (``--output pipewire``).

Four checks, each with the install command for Debian/Ubuntu, Fedora and Arch when it fails:
the PipeWire daemon is reachable for this user, a session manager (WirePlumber) is connected
(without one no app is linked to the camera), the GObject bindings import, and GStreamer has the
PipeWire plugin. A missing piece is a warning while v4l2loopback can carry the main job.
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
BINDINGS_FIX = (_per_distro("python3-gi gir1.2-gstreamer-1.0 libgirepository1.0-dev libcairo2-dev pkg-config",
                            "python3-gobject gstreamer1 gobject-introspection-devel cairo-gobject-devel pkgconf",
                            "python-gobject gstreamer gobject-introspection cairo pkgconf")
                + f"; then: {pw.PIP_FIX}")
PLUGIN_FIX = _per_distro("gstreamer1.0-pipewire gstreamer1.0-plugins-base", "pipewire-gstreamer gstreamer1-plugins-base",
                         "gst-plugin-pipewire gst-plugins-base")


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
    found = pw.probe_gstreamer()
    if "bindings" in found:
        checks.append(Check("GStreamer Python bindings", False, f"cannot import them ({found['bindings']})",
                            BINDINGS_FIX))
        checks.append(Check("GStreamer PipeWire plugin", False, "not checked: no bindings", PLUGIN_FIX))
        return checks
    checks.append(Check("GStreamer Python bindings", True, found["versions"]))
    if "pipewiresink" in found["missing"]:
        checks.append(Check("GStreamer PipeWire plugin", False, "no pipewiresink element", PLUGIN_FIX))
    elif found["missing"]:
        checks.append(Check("GStreamer PipeWire plugin", False, f"no {', '.join(found['missing'])} element",
                            PLUGIN_FIX))
    else:
        checks.append(Check("GStreamer PipeWire plugin", True, f"pipewiresink {found['plugin']}"))
    return checks


def usable(checks) -> bool:
    return all(c.ok is True for c in checks)


def as_warnings(checks, why: str):
    """The same checks with failures shown as warnings (the other camera path carries the job)."""
    from dataclasses import replace

    return [c if c.ok is not False else replace(c, ok=None, detail=f"{c.detail} ({why})") for c in checks]
