"""``python run.py doctor``: is this machine set up for camera 0 -> virtual camera?

Each check prints one line, ``[ ok ]``, ``[FAIL]`` or ``[warn]``, with the fix (a command) on
the next line. The exit code is 0 only when the main job (``python run.py``: camera 0 to the
virtual camera) can run: a ``[FAIL]`` stops it, a ``[warn]`` is worth knowing (Chrome will
not list the camera, no preview window, slow first start) but does not.

Everything is looked up under ``root`` (``/`` normally) so tests build a fake ``/sys``,
``/dev`` and ``/etc/group`` in a temporary folder:

- ``/dev/video*``: video nodes; ``/sys/devices/virtual/video4linux/video*``: the ones that are
  v4l2loopback devices; ``/sys/class/video4linux/videoN/name``: their names;
- ``/sys/module/v4l2loopback``: the module is loaded; ``.../parameters/exclusive_caps``;
- ``/lib/modules/$(uname -r)/modules.dep``: the module is installed;
- ``/etc/group``: group names and members (for the ``video`` group advice).

Cameras are queried with V4L2 ioctls (capabilities, pixel formats, frame sizes; see
:mod:`realtime.io.v4l2`) rather than by opening them with OpenCV: the query lists every format
and size, cannot hang (no streaming is started) and works while another program uses the camera.
Off Linux, OpenCV opens camera 0 in a child process with a timeout.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import stat
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

from realtime.core import models
from realtime.core.errors import ConfigError
from realtime.io.sinks import MODPROBE_FIX, VCAM_BACKEND_ENV, loopback_devices
from realtime.io.v4l2 import CameraInfo, probe_camera, probe_opencv

USERMOD_FIX = "sudo usermod -aG video $USER   (then log out and back in)"
INSTALL_FIX = ("sudo apt install v4l2loopback-dkms   (Fedora: sudo dnf install akmod-v4l2loopback; "
               "Arch: sudo pacman -S v4l2loopback-dkms), then: " + MODPROBE_FIX)
RELOAD_FIX = "sudo modprobe -r v4l2loopback && " + MODPROBE_FIX
FETCH_FIX = "python run.py models fetch"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None      # True = pass, False = the main job cannot run, None = warning
    detail: str          # what was found (may hold several lines)
    fix: str = ""        # a concrete command or action; shown unless ok is True


@dataclass(frozen=True)
class Identity:
    """Who would run the main job: for permission and group checks."""

    name: str
    uid: int
    gid: int
    groups: frozenset[int]   # groups of this login session (not /etc/group: that may be newer)

    @classmethod
    def current(cls) -> "Identity":
        uid, gid = os.getuid(), os.getgid()
        try:
            import pwd

            name = pwd.getpwuid(uid).pw_name
        except (ImportError, KeyError):
            name = os.environ.get("USER", str(uid))
        return cls(name, uid, gid, frozenset(os.getgroups()) | {gid})


# -- helpers -----------------------------------------------------------------------------------

def _under(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _node_number(path: str) -> int:
    m = re.search(r"(\d+)$", path)
    return int(m.group(1)) if m else 1 << 30


def video_nodes(root: str) -> list[str]:
    """``/dev/video*`` (real paths, not rooted), in numeric order."""
    found = glob.glob(_under(root, "/dev/video*"))
    return sorted((("/dev/" + os.path.basename(p)) for p in found), key=_node_number)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _node_name(root: str, node: str) -> str:
    return _read(_under(root, f"/sys/class/video4linux/{os.path.basename(node)}/name")) or ""


def read_groups(root: str) -> dict[int, tuple[str, frozenset[str]]]:
    """gid -> (group name, member user names) from ``/etc/group`` under ``root``."""
    out: dict[int, tuple[str, frozenset[str]]] = {}
    text = _read(_under(root, "/etc/group")) or ""
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[2].isdigit():
            out[int(parts[2])] = (parts[0], frozenset(m for m in parts[3].split(",") if m))
    return out


def _can(ident: Identity, st: os.stat_result, want: int) -> bool:
    """Would ``ident`` get ``want`` (stat.S_IROTH/S_IWOTH style bits, 'other' position)?"""
    if ident.uid == 0:
        return True
    if st.st_uid == ident.uid:
        return bool(st.st_mode & (want << 6))
    if st.st_gid in ident.groups:
        return bool(st.st_mode & (want << 3))
    return bool(st.st_mode & want)


def _describe_camera(info: CameraInfo, label: str, max_sizes: int = 6) -> str:
    name = info.card or label
    head = f'{info.node}' + (f' "{name}"' if name else "")
    lines = [head]
    for fourcc, sizes in info.formats:
        more = f", ... ({len(sizes)} sizes)" if len(sizes) > max_sizes else ""
        lines.append(f"{fourcc}: {', '.join(sizes[:max_sizes])}{more}")
    if not info.formats and info.capture is None:
        lines[0] += " (formats unknown)"
    return "\n".join(lines)


# -- the checks --------------------------------------------------------------------------------

def check_camera(root: str, camera: str, probe: Callable[[str], CameraInfo],
                 loop_nodes: Sequence[str]) -> tuple[Check, CameraInfo | None]:
    nodes = video_nodes(root)
    loop = set(loop_nodes)
    # probes run on rooted paths; report the device path the user knows
    infos = [replace(probe(_under(root, n)), node=n) for n in nodes if n not in loop]
    cams = [i for i in infos if i.capture is not False]
    target = camera if camera.startswith("/") else f"/dev/video{camera}"
    label = f"camera {camera}"

    def named(i: CameraInfo) -> str:
        card = i.card or _node_name(root, i.node)
        return i.node + (f' "{card}"' if card else "")

    others = ", ".join(named(i) for i in cams if i.node != target)
    if not cams:
        seen = ", ".join(nodes) or "none"
        return Check(label, False, f"no camera found (video devices: {seen})",
                     "plug in a webcam and check it appears with: ls /dev/video*  "
                     "(in a VM or container, pass the camera through)"), None
    if target in loop:
        keep_away = MODPROBE_FIX.replace("devices=1", "devices=1 video_nr=10")
        return Check(label, False, f"{target} is the v4l2loopback virtual camera, not a webcam; cameras: {others}",
                     f"python run.py --input {cams[0].node}   (or move the loopback device out of the way: "
                     f"sudo modprobe -r v4l2loopback && {keep_away})"), None
    info = next((i for i in infos if i.node == target), None)
    if info is None or info.capture is False:
        what = "does not exist" if info is None else "is not a capture device (a UVC metadata node?)"
        return Check(label, False, f"{target} {what}; cameras: {', '.join(named(i) for i in cams)}",
                     f"python run.py --input {cams[0].node}"), None
    if info.denied:
        return Check(label, False, f"{target}: permission denied", USERMOD_FIX), info
    if info.error:
        return Check(label, False, f"{target}: {info.error}",
                     "close other programs using the camera, replug it, or choose another with --input"), info
    detail = _describe_camera(info, _node_name(root, target))
    if others:
        detail += f"\nother cameras: {others}"
    return Check(label, True, detail), info


def check_module(root: str) -> Check:
    mod = _under(root, "/sys/module/v4l2loopback")
    if os.path.isdir(mod):
        version = _read(os.path.join(mod, "version"))
        return Check("v4l2loopback", True, "kernel module loaded" + (f" (version {version})" if version else ""))
    dep = _read(_under(root, f"/lib/modules/{os.uname().release}/modules.dep")) or ""
    if "v4l2loopback.ko" in dep:
        return Check("v4l2loopback", False, "kernel module installed but not loaded",
                     MODPROBE_FIX + "   (Secure Boot: if it says 'Key was rejected', enrol the DKMS key)")
    return Check("v4l2loopback", False, "kernel module not installed", INSTALL_FIX)


def check_loopback_device(root: str, loop_nodes: Sequence[str], ident: Identity, module_loaded: bool) -> Check:
    name = "loopback device"
    if not loop_nodes:
        if module_loaded:
            return Check(name, False, "v4l2loopback is loaded but created no device", RELOAD_FIX)
        return Check(name, False, "no v4l2loopback device (the module is not loaded)", MODPROBE_FIX)
    writable, problems = [], []
    for n in loop_nodes:
        label = _node_name(root, n)
        shown = n + (f' "{label}"' if label else "")
        try:
            st = os.stat(_under(root, n))
        except OSError:
            problems.append(f"{shown}: no device node")
            continue
        if _can(ident, st, stat.S_IWOTH):
            writable.append(shown)
        else:
            problems.append(f"{shown}: not writable by {ident.name}")
    if writable:
        note = f" (also: {'; '.join(problems)})" if problems else ""
        return Check(name, True, f"{', '.join(writable)} writable{note}")
    if all("no device node" in p for p in problems):
        return Check(name, False, "; ".join(problems),
                     "udev did not create the node; in a container pass it in (docker run --device /dev/videoN)")
    return Check(name, False, "; ".join(problems), USERMOD_FIX)


def check_exclusive_caps(root: str, loop_nodes: Sequence[str], module_loaded: bool) -> Check:
    name = "exclusive_caps"
    if not module_loaded:
        return Check(name, None, "v4l2loopback is not loaded; the modprobe line above sets exclusive_caps=1, "
                     "which Chrome needs")
    raw = _read(_under(root, "/sys/module/v4l2loopback/parameters/exclusive_caps"))
    if raw is None:
        return Check(name, None, "cannot read the module parameter; Chrome needs exclusive_caps=1", RELOAD_FIX)
    flags = [v.strip().upper() in ("Y", "1") for v in raw.split(",") if v.strip()]
    flags = flags[:max(1, len(loop_nodes))]
    if flags and all(flags):
        return Check(name, True, "set (Chrome, Meet and Teams in the browser can list the camera)")
    if any(flags):
        on = [n for n, f in zip(loop_nodes, flags) if f]
        return Check(name, True, f"set for {', '.join(on) or 'some devices'}; use that device in Chrome")
    return Check(name, None, "not set: Chrome (and Meet/Teams in the browser) will not list the virtual camera",
                 RELOAD_FIX)


def check_access(root: str, nodes: Sequence[tuple[str, int]], ident: Identity) -> Check:
    """The user's group access to the devices the main job opens (camera: read, loopback: write)."""
    name = "video group"
    if ident.uid == 0:
        return Check(name, True, "running as root (any device can be opened)")
    groups = read_groups(root)
    blocked: list[tuple[str, int]] = []
    gnames = set()
    for node, want in nodes:
        try:
            st = os.stat(_under(root, node))
        except OSError:
            continue
        gnames.add(groups.get(st.st_gid, (str(st.st_gid),))[0])
        if not _can(ident, st, want):
            blocked.append((node, st.st_gid))
    if not nodes or not gnames:
        return Check(name, None, "no camera or loopback device to check")
    if not blocked:
        return Check(name, True, f"{ident.name} can open {', '.join(n for n, _ in nodes)}")
    gid = blocked[0][1]
    gname, members = groups.get(gid, (str(gid), frozenset()))
    where = ", ".join(n for n, _ in blocked)
    if ident.name in members:
        return Check(name, False, f"{ident.name} was added to group '{gname}' after this login session started, "
                     f"so {where} cannot be opened yet", f"log out and back in (or run: newgrp {gname})")
    fix = USERMOD_FIX if gname == "video" else f"sudo usermod -aG {gname} $USER   (then log out and back in)"
    return Check(name, False, f"{ident.name} is not in group '{gname}', which owns {where}", fix)


def check_backend(backend: str) -> Check:
    """A pyvirtualcam backend given by name (tests, OBS on other systems): open it briefly."""
    name = "virtual camera"
    try:
        import pyvirtualcam
        from pyvirtualcam.camera import BACKENDS
    except ImportError as e:
        return Check(name, False, f"pyvirtualcam is not installed ({e})", "pip install pyvirtualcam")
    if backend not in BACKENDS:
        known = ", ".join(BACKENDS) or "none"
        return Check(name, False, f"pyvirtualcam backend '{backend}' is not registered (known: {known})",
                     f"unset {VCAM_BACKEND_ENV} or choose one of: {known}")
    try:
        with pyvirtualcam.Camera(64, 48, 30, backend=backend, print_fps=False) as cam:
            device = cam.device
    except Exception as e:  # pyvirtualcam raises RuntimeError/ValueError with its own text
        return Check(name, False, f"backend '{backend}' cannot open a camera ({e})",
                     "install and start OBS once (its virtual camera)" if backend == "obs" else "")
    return Check(name, True, f"backend '{backend}' opens {device}")


def _model_paths(model: models.ModelInfo, env: Mapping[str, str]) -> list[Path]:
    out = []
    if env.get(models.ENV_MODEL_DIR):
        out.append(Path(env[models.ENV_MODEL_DIR]).expanduser() / model.file)
    cache = env.get(models.ENV_CACHE_DIR)
    out.append((Path(cache).expanduser() if cache else models.cache_dir()) / model.file)
    return out


def _reachable(url: str, timeout: float) -> str:
    """'' when ``url`` answers a HEAD request, else why not."""
    try:
        req = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return "" if resp.status < 400 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}"
    except (urllib.error.URLError, OSError, ValueError) as e:
        return str(getattr(e, "reason", None) or e)


def check_models(env: Mapping[str, str], network: bool = True, timeout: float = 3.0) -> Check:
    name = "models"
    present, corrupt, missing = [], [], []
    for m in models.REGISTRY.values():
        path = next((p for p in _model_paths(m, env) if p.is_file()), None)
        if path is None:
            missing.append(m)
            continue
        try:
            models.verify(path, m)
            present.append(path)
        except models.ModelError:
            corrupt.append(path)
    total = len(models.REGISTRY)
    folders = sorted({str(p.parent) for p in present})
    if corrupt:
        return Check(name, False, f"corrupt (sha256 mismatch): {', '.join(map(str, corrupt))}",
                     f"rm {' '.join(map(str, corrupt))} && {FETCH_FIX}")
    if not missing:
        return Check(name, True, f"{total}/{total} present and verified in {', '.join(folders)}")
    names = ", ".join(m.file for m in missing)
    base = env.get(models.ENV_MODEL_URL_BASE)
    if not network:
        return Check(name, None, f"not downloaded yet: {names} (download not checked)", FETCH_FIX)
    failed: dict[str, str] = {}
    for m in missing:
        url = base.rstrip("/") + "/" + m.file if base else m.url
        host = urllib.parse.urlsplit(url).netloc
        if host in failed:
            continue
        why = _reachable(url, timeout)
        if why:
            failed[host] = f"{url.split('?')[0]}: {why}"
    if failed:
        return Check(name, False, f"missing and cannot be downloaded: {names} ({'; '.join(failed.values())})",
                     f"connect to the internet and run: {FETCH_FIX}   (or set {models.ENV_MODEL_DIR} "
                     "to a folder that holds them)")
    return Check(name, None, f"{len(present)}/{total} present; {names} will be downloaded on first use",
                 f"{FETCH_FIX}   (download them now)")


def _writable_dir(path: Path) -> str:
    """'' when files can be created in ``path`` (created if missing), else why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".doctor-", dir=path)
        os.close(fd)
        os.unlink(tmp)
        return ""
    except OSError as e:
        return e.strerror or str(e)


def check_numba_cache(env: Mapping[str, str]) -> Check:
    name = "numba cache"
    fix = "export NUMBA_CACHE_DIR=~/.cache/portrait-cam/numba"
    slow = "kernels are compiled again on every start (slow start)"
    user = env.get("NUMBA_CACHE_DIR")
    if user:
        why = _writable_dir(Path(user).expanduser())
        if why:
            return Check(name, None, f"NUMBA_CACHE_DIR {user} is not writable ({why}): {slow}", fix)
        return Check(name, True, f"{user} (NUMBA_CACHE_DIR) writable")
    import shaders

    in_tree = Path(shaders.__file__).resolve().parent / "__pycache__"
    why = _writable_dir(in_tree)
    if not why:
        return Check(name, True, f"{in_tree} writable")
    try:  # Numba falls back to a per-user cache when the source tree is read-only
        from numba.misc.appdirs import AppDirs

        fallback = Path(AppDirs(appname="numba", appauthor=False).user_cache_dir)
    except ImportError:
        fallback = Path.home() / ".cache" / "numba"
    why2 = _writable_dir(fallback)
    if not why2:
        return Check(name, True, f"{in_tree} is read-only; Numba uses {fallback} (writable)")
    return Check(name, None, f"neither {in_tree} ({why}) nor {fallback} ({why2}) is writable: {slow}", fix)


def check_display(env: Mapping[str, str], platform: str = sys.platform) -> Check:
    name = "display"
    has = bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")) or platform in ("win32", "darwin")
    if not has:
        return Check(name, None, "no display (DISPLAY is not set): no preview window; the virtual camera "
                     "and file outputs work without one", "run from a desktop session to use --output preview")
    import cv2

    m = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    gui = m.group(1) if m else "?"
    if gui.upper() == "NONE":
        return Check(name, None, "OpenCV was built without GUI support (a headless wheel): no preview window",
                     "pip uninstall -y opencv-python-headless opencv-contrib-python-headless && "
                     "pip install --force-reinstall opencv-contrib-python")
    where = env.get("WAYLAND_DISPLAY") or env.get("DISPLAY") or platform
    return Check(name, True, f"{where} (OpenCV GUI: {gui})")


def run_checks(root: str = "/", env: Mapping[str, str] = os.environ, vcam_backend: str | None = None, *,
               camera: str = "0", identity: Identity | None = None,
               probe: Callable[[str], CameraInfo] | None = None, network: bool = True,
               timeout: float = 3.0, platform: str = sys.platform) -> list[Check]:
    """Every check, in the order printed. See the module docstring for ``root``.

    ``vcam_backend`` (else ``$REALTIME_VCAM_BACKEND``) names a pyvirtualcam backend to use
    instead of v4l2loopback: when it opens, the loopback checks become warnings.
    """
    root = str(root)
    ident = identity or Identity.current()
    backend = vcam_backend or env.get(VCAM_BACKEND_ENV) or None
    checks: list[Check] = []
    linux = platform.startswith("linux")
    if linux and backend == "v4l2loopback":
        backend = None  # the default: checked through sysfs, never opened (it may be in use)
    if linux:
        loop_nodes = loopback_devices(_under(root, "/sys/devices/virtual/video4linux"))
        cam_check, cam_info = check_camera(root, camera, probe or probe_camera, loop_nodes)
        checks.append(cam_check)
        module = check_module(root)
        vcam = [module, check_loopback_device(root, loop_nodes, ident, module.ok is True),
                check_exclusive_caps(root, loop_nodes, module.ok is True)]
        cam_node = cam_info.node if cam_info is not None and cam_check.ok else None
        access = [(n, stat.S_IROTH) for n in ([cam_node] if cam_node else [])]
        access += [(n, stat.S_IWOTH) for n in loop_nodes]
        group = check_access(root, access, ident)
        if backend:
            b = check_backend(backend)
            if b.ok:  # the loopback device is not needed: report what is wrong without failing
                vcam = [c if c.ok is not False else
                        Check(c.name, None, f"{c.detail} (not needed with backend '{backend}')", c.fix) for c in vcam]
            vcam.append(b)
        from realtime.app import doctor_pipewire as dpw

        pw_checks = dpw.check_pipewire(env, Check)
        if dpw.usable(pw_checks) and not backend:  # 'python run.py' picks the PipeWire camera
            vcam = dpw.as_warnings(vcam, "not needed: the PipeWire camera works")
        # one working camera path is enough; when neither works the loopback failures fail
        loop_ok = all(c.ok is not False for c in vcam)
        pw_checks = dpw.as_warnings(pw_checks, "optional while v4l2loopback works" if loop_ok
                                    else "fix this or v4l2loopback")
        checks += vcam
        checks.append(group)
        checks += pw_checks
    else:
        if camera.isdigit():
            info = (probe or (lambda _n: probe_opencv(int(camera), timeout=max(timeout, 8.0))))(camera)
            ok = info.capture is True and not info.error
            checks.append(Check(f"camera {camera}", ok, _describe_camera(info, "") if ok else info.error,
                                "" if ok else "check the camera works in another app and is not in use"))
        checks.append(check_backend(backend or ("obs" if platform in ("win32", "darwin") else "")))
    checks.append(check_models(env, network=network, timeout=timeout))
    checks.append(check_numba_cache(env))
    checks.append(check_display(env, platform))
    return checks


MARKS = {True: "[ ok ]", False: "[FAIL]", None: "[warn]"}


def format_checks(checks: Sequence[Check]) -> str:
    """One line per check (continuation lines and the fix indented below)."""
    lines = []
    indent = " " * (len(MARKS[True]) + 1)
    for c in checks:
        first, *rest = c.detail.splitlines() or [""]
        lines.append(f"{MARKS[c.ok]} {c.name}: {first}")
        lines += [indent + "  " + r for r in rest]
        if c.ok is not True and c.fix:
            lines.append(f"{indent}fix: {c.fix}")
    failed = sum(c.ok is False for c in checks)
    warned = sum(c.ok is None for c in checks)
    if failed:
        lines.append(f"not ready: {failed} problem{'s' if failed > 1 else ''} to fix (the [FAIL] lines above)")
    else:
        lines.append("ready: 'python run.py' can send camera to the virtual camera"
                     + (f" ({warned} warning{'s' if warned > 1 else ''})" if warned else ""))
    return "\n".join(lines)


def exit_code(checks: Sequence[Check]) -> int:
    """0 when the main job can run (no check failed), else 1."""
    return 1 if any(c.ok is False for c in checks) else 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"doctor: {message} (see 'python run.py doctor --help')")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="run.py doctor",
                description="Check this machine is set up for camera -> virtual camera; prints the fix for each "
                            "problem. Exit code 0 when 'python run.py' can run.")
    p.add_argument("--camera", default="0", metavar="N|/dev/videoN", help="the camera to check (default: 0)")
    p.add_argument("--offline", action="store_true", help="do not check that missing models can be downloaded")
    p.add_argument("--timeout", type=float, default=3.0, metavar="S", help="network timeout in seconds (default: 3)")
    p.add_argument("--vcam-backend", metavar="NAME", help=argparse.SUPPRESS)  # tests: a registered pyvirtualcam backend
    p.add_argument("--root", default="/", help=argparse.SUPPRESS)            # tests: a fake /sys, /dev, /etc tree
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    camera = args.camera[len("/dev/video"):] if re.fullmatch(r"/dev/video\d+", args.camera) else args.camera
    checks = run_checks(args.root, os.environ, args.vcam_backend, camera=camera, network=not args.offline,
                        timeout=args.timeout)
    print(format_checks(checks))
    return exit_code(checks)
