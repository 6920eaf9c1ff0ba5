"""``python run.py doctor`` on fake /sys, /dev and /etc trees, a registered test backend, the
real model store and a local HTTP mirror."""

from __future__ import annotations

import errno
import functools
import http.server
import os
import struct
from pathlib import Path

import pytest

import vcam_capture
from conftest import MODELS, LocalHTTP
from realtime.app import doctor
from realtime.io import v4l2
from realtime.core import models
from realtime.app.cli import main as cli_main
from realtime.app.doctor import CameraInfo, Check, Identity
from realtime.io.sinks import MODPROBE_FIX

ALICE = Identity("alice", 1000, 1000, frozenset({1000}))
ALICE_VIDEO = Identity("alice", 1000, 1000, frozenset({1000, 44}))
GOOD_ENV = {"REALTIME_MODEL_DIR": str(MODELS), "DISPLAY": ":0"}


def make_tree(root: Path, *, cams=("video0",), loop=("video10",), loaded=True, installed=True,
              exclusive="Y", group_members="", mode=0o660, gid=44) -> Path:
    """A fake machine: device nodes (regular files), sysfs entries, /etc/group, modules.dep."""
    dev = root / "dev"
    dev.mkdir(parents=True, exist_ok=True)
    for n in (*cams, *loop):
        (dev / n).touch()
        os.chmod(dev / n, mode)
        os.chown(dev / n, 0, gid)
        cls = root / "sys/class/video4linux" / n
        cls.mkdir(parents=True, exist_ok=True)
        (cls / "name").write_text("Portrait Cam\n" if n in loop else "Integrated Camera\n")
    for n in loop:
        (root / "sys/devices/virtual/video4linux" / n).mkdir(parents=True, exist_ok=True)
    if loaded:
        params = root / "sys/module/v4l2loopback/parameters"
        params.mkdir(parents=True, exist_ok=True)
        (params / "exclusive_caps").write_text(exclusive + "\n")
        (root / "sys/module/v4l2loopback/version").write_text("0.12.7\n")
    mods = root / "lib/modules" / os.uname().release
    mods.mkdir(parents=True, exist_ok=True)
    (mods / "modules.dep").write_text(
        "kernel/drivers/media/v4l2-core/videodev.ko:\n"
        + ("updates/dkms/v4l2loopback.ko: kernel/drivers/media/v4l2-core/videodev.ko\n" if installed else ""))
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/group").write_text(f"root:x:0:\nvideo:x:{gid}:{group_members}\nalice:x:1000:\n")
    return root


def fake_probe(capture_nodes=("video0",), metadata_nodes=(), formats=(("MJPG", ("1280x720", "640x480")),)):
    probed = []

    def probe(path: str) -> CameraInfo:
        probed.append(path)
        name = os.path.basename(path)
        if name in metadata_nodes:
            return CameraInfo(path, "Integrated Camera", capture=False)
        if name in capture_nodes:
            return CameraInfo(path, "Integrated Camera", True, formats)
        return CameraInfo(path, error="No such device")

    probe.probed = probed
    return probe


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def run(tmp_path, ident=ALICE_VIDEO, env=GOOD_ENV, probe=None, **kw):
    return doctor.run_checks(tmp_path, env, identity=ident, probe=probe or fake_probe(), network=False,
                             platform="linux", **kw)


def test_ready_machine_passes_with_camera_formats(tmp_path):
    make_tree(tmp_path)
    probe = fake_probe()
    checks = run(tmp_path, probe=probe)
    c = by_name(checks)
    assert doctor.exit_code(checks) == 0, doctor.format_checks(checks)
    assert c["camera 0"].ok and "/dev/video0" in c["camera 0"].detail and "MJPG: 1280x720, 640x480" in c["camera 0"].detail
    assert c["v4l2loopback"].ok and "0.12.7" in c["v4l2loopback"].detail
    assert c["loopback device"].ok and '/dev/video10 "Portrait Cam"' in c["loopback device"].detail
    assert c["exclusive_caps"].ok and c["video group"].ok
    assert c["models"].ok and c["display"].ok
    # the loopback node is never probed as a camera
    assert [os.path.basename(p) for p in probe.probed] == ["video0"]


def test_module_not_installed_or_not_loaded(tmp_path):
    make_tree(tmp_path / "a", loop=(), loaded=False, installed=False)
    make_tree(tmp_path / "b", loop=(), loaded=False, installed=True)
    a, b = by_name(run(tmp_path / "a")), by_name(run(tmp_path / "b"))
    assert a["v4l2loopback"].ok is False and "apt install v4l2loopback-dkms" in a["v4l2loopback"].fix
    assert b["v4l2loopback"].ok is False and b["v4l2loopback"].fix.startswith(MODPROBE_FIX)
    assert a["loopback device"].ok is False and MODPROBE_FIX in a["loopback device"].fix
    assert a["exclusive_caps"].ok is None  # unknown until the module is loaded


def test_loaded_without_devices_says_reload(tmp_path):
    make_tree(tmp_path, loop=())
    c = by_name(run(tmp_path))["loopback device"]
    assert c.ok is False and c.fix == doctor.RELOAD_FIX and "modprobe -r" in c.fix


def test_exclusive_caps_off_is_a_warning_with_the_reload_fix(tmp_path):
    make_tree(tmp_path, exclusive="N,N,N,N")
    checks = run(tmp_path)
    c = by_name(checks)["exclusive_caps"]
    assert c.ok is None and "Chrome" in c.detail and "exclusive_caps=1" in c.fix and "modprobe -r" in c.fix
    assert doctor.exit_code(checks) == 0  # the virtual camera works, Chrome just will not list it


def test_not_in_video_group(tmp_path):
    make_tree(tmp_path)
    checks = run(tmp_path, ident=ALICE)
    c = by_name(checks)
    assert doctor.exit_code(checks) == 1
    assert c["loopback device"].ok is False and "not writable by alice" in c["loopback device"].detail
    assert c["video group"].ok is False and "not in group 'video'" in c["video group"].detail
    assert c["video group"].fix.startswith("sudo usermod -aG video $USER")


def test_added_to_group_but_session_is_older(tmp_path):
    make_tree(tmp_path, group_members="bob,alice")
    c = by_name(run(tmp_path, ident=ALICE))["video group"]
    assert c.ok is False and "log out and back in" in c.fix and "newgrp video" in c.fix


def test_world_writable_device_needs_no_group(tmp_path):
    make_tree(tmp_path, mode=0o666)
    checks = run(tmp_path, ident=ALICE)
    assert doctor.exit_code(checks) == 0, doctor.format_checks(checks)


def test_camera_0_is_the_loopback_device(tmp_path):
    make_tree(tmp_path, cams=("video2",), loop=("video0",))
    c = by_name(run(tmp_path, probe=fake_probe(("video2",))))["camera 0"]
    assert c.ok is False and "v4l2loopback" in c.detail and "--input /dev/video2" in c.fix and "video_nr=" in c.fix


def test_no_camera_and_metadata_nodes(tmp_path):
    make_tree(tmp_path / "none", cams=())
    c = by_name(run(tmp_path / "none"))["camera 0"]
    assert c.ok is False and "no camera" in c.detail and "ls /dev/video*" in c.fix
    # a UVC webcam: video0 captures, video1 is its metadata node (not a camera)
    make_tree(tmp_path / "uvc", cams=("video0", "video1"))
    c = by_name(run(tmp_path / "uvc", probe=fake_probe(("video0",), ("video1",))))["camera 0"]
    assert c.ok and "video1" not in c.detail
    c = by_name(run(tmp_path / "uvc", probe=fake_probe(("video0",), ("video1",)), camera="1"))["camera 1"]
    assert c.ok is False and "not a capture device" in c.detail and "--input /dev/video0" in c.fix


def test_camera_permission_denied(tmp_path):
    make_tree(tmp_path)

    def probe(path):
        return CameraInfo(path, error="permission denied", denied=True)

    c = by_name(run(tmp_path, ident=ALICE, probe=probe))["camera 0"]
    assert c.ok is False and "usermod -aG video" in c.fix


def test_registered_test_backend_counts_as_virtual_camera(tmp_path):
    make_tree(tmp_path, loop=(), loaded=False, installed=False)
    vcam_capture.register()
    checks = run(tmp_path, vcam_backend=vcam_capture.NAME)
    c = by_name(checks)
    assert doctor.exit_code(checks) == 0, doctor.format_checks(checks)
    assert c["virtual camera"].ok and vcam_capture.NAME in c["virtual camera"].detail
    assert c["v4l2loopback"].ok is None and "not needed" in c["v4l2loopback"].detail
    # the environment variable works the same way
    checks = run(tmp_path, env={**GOOD_ENV, "REALTIME_VCAM_BACKEND": vcam_capture.NAME})
    assert doctor.exit_code(checks) == 0
    # naming the default backend explicitly checks the loopback device as usual
    checks = run(tmp_path, vcam_backend="v4l2loopback")
    assert "virtual camera" not in by_name(checks) and doctor.exit_code(checks) == 1
    # an unknown backend fails and the loopback problems stay failures
    checks = run(tmp_path, vcam_backend="no-such-backend")
    c = by_name(checks)
    assert c["virtual camera"].ok is False and "not registered" in c["virtual camera"].detail
    assert c["v4l2loopback"].ok is False and doctor.exit_code(checks) == 1


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a) -> None:
        pass


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server holding the model files (like REALTIME_MODEL_URL_BASE mirrors)."""
    root = tmp_path / "mirror"
    root.mkdir()
    for m in models.REGISTRY.values():
        (root / m.file).symlink_to(MODELS / m.file)
    with LocalHTTP(functools.partial(_Quiet, directory=str(root)), "doctor-mirror", threaded=True) as server:
        yield server.url + "/"


def test_models_present_downloadable_or_not(tmp_path, monkeypatch, mirror):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("REALTIME_CACHE_DIR", str(empty))  # an empty user cache
    c = doctor.check_models({"REALTIME_MODEL_DIR": str(MODELS)})
    assert c.ok and f"{len(models.REGISTRY)}/{len(models.REGISTRY)}" in c.detail
    c = doctor.check_models({"REALTIME_MODEL_DIR": str(empty), "REALTIME_MODEL_URL_BASE": mirror}, timeout=5)
    assert c.ok is None and "downloaded on first use" in c.detail and doctor.FETCH_FIX in c.fix
    # a port nothing listens on: not downloadable, a failure naming the URL
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    c = doctor.check_models({"REALTIME_MODEL_DIR": str(empty), "REALTIME_MODEL_URL_BASE": f"http://127.0.0.1:{port}/"},
                            timeout=2)
    assert c.ok is False and f"127.0.0.1:{port}" in c.detail and doctor.FETCH_FIX in c.fix
    c = doctor.check_models({"REALTIME_MODEL_DIR": str(empty)}, network=False)
    assert c.ok is None and "not checked" in c.detail
    # the env mapping given to the check wins over the process environment
    c = doctor.check_models({"REALTIME_MODEL_DIR": str(empty), "REALTIME_CACHE_DIR": str(MODELS)}, network=False)
    assert c.ok and str(MODELS) in c.detail


def test_corrupt_model_fails_with_delete_and_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("REALTIME_CACHE_DIR", str(tmp_path / "cache"))
    d = tmp_path / "models"
    d.mkdir()
    files = [m.file for m in models.REGISTRY.values()]
    for f in files[1:]:
        (d / f).symlink_to(MODELS / f)
    (d / files[0]).write_bytes(b"not a model")
    c = doctor.check_models({"REALTIME_MODEL_DIR": str(d)}, network=False)
    assert c.ok is False and files[0] in c.detail and c.fix.startswith(f"rm {d / files[0]}")


def test_numba_cache_and_display(tmp_path):
    assert doctor.check_numba_cache({"NUMBA_CACHE_DIR": str(tmp_path / "nc")}).ok
    (tmp_path / "file").write_text("x")
    c = doctor.check_numba_cache({"NUMBA_CACHE_DIR": str(tmp_path / "file" / "nc")})
    assert c.ok is None and "NUMBA_CACHE_DIR" in c.fix
    assert doctor.check_numba_cache({}).ok  # the source tree's __pycache__ (or Numba's fallback)
    c = doctor.check_display({}, "linux")
    assert c.ok is None and "DISPLAY" in c.detail
    assert doctor.check_display({"WAYLAND_DISPLAY": "wayland-0"}, "linux").ok in (True, None)


def test_output_format_and_exit_code_through_the_cli(tmp_path, capsys):
    make_tree(tmp_path, exclusive="N")
    # the tree's /dev/video0 is a regular file: the real probe says it is not a device -> FAIL
    rc = cli_main(["doctor", "--root", str(tmp_path), "--offline"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 1
    assert out[0].startswith("[FAIL] camera 0:") and out[1].startswith("       fix: ")
    marks = [line[:6] for line in out if line.startswith("[")]
    assert set(marks) <= {"[ ok ]", "[FAIL]", "[warn]"} and "[warn]" in marks and "[ ok ]" in marks
    assert out[-1].startswith("not ready")
    # a bad option is a one-line error with exit code 2
    assert cli_main(["doctor", "--no-such-option"]) == 2
    assert "doctor" in capsys.readouterr().err


def test_format_ready_summary():
    checks = [Check("a", True, "fine\nsecond line"), Check("b", None, "meh", "do x")]
    text = doctor.format_checks(checks)
    assert text.splitlines() == ["[ ok ] a: fine", "         second line", "[warn] b: meh", "       fix: do x",
                                 "ready: 'python run.py' can send camera to the virtual camera (1 warning)"]
    assert doctor.exit_code(checks) == 0 and doctor.exit_code([*checks, Check("c", False, "x")]) == 1


def test_ioctl_numbers_match_the_kernel_header():
    # linux/videodev2.h as compiled on x86_64 and arm64
    assert v4l2.VIDIOC_QUERYCAP == 0x80685600
    assert v4l2.VIDIOC_ENUM_FMT == 0xC0405602
    assert v4l2.VIDIOC_ENUM_FRAMESIZES == 0xC02C564A


class FakeV4L2:
    """A camera driver behind ioctl: MJPG with discrete sizes, YUYV stepwise."""

    def __init__(self, device_caps: int = v4l2.CAP_VIDEO_CAPTURE) -> None:
        self.device_caps = device_caps
        self.fmts = [(b"MJPG", [(640, 480), (1280, 720), (1920, 1080)]), (b"YUYV", None)]

    def __call__(self, fd, req, buf, mutate):
        assert mutate and isinstance(buf, bytearray)
        if req == v4l2.VIDIOC_QUERYCAP:
            struct.pack_into("16s32s32sIII", buf, 0, b"uvcvideo", b"HD Webcam: HD Webcam", b"usb-1", 1,
                             v4l2.CAP_DEVICE_CAPS | 0x05200001, self.device_caps)
        elif req == v4l2.VIDIOC_ENUM_FMT:
            index, typ = struct.unpack_from("II", buf)
            assert typ == v4l2.BUF_TYPE_VIDEO_CAPTURE
            if index >= len(self.fmts):
                raise OSError(errno.EINVAL, "end")
            struct.pack_into("I", buf, 44, struct.unpack("<I", self.fmts[index][0])[0])
        elif req == v4l2.VIDIOC_ENUM_FRAMESIZES:
            index, pixfmt = struct.unpack_from("II", buf)
            fourcc = struct.pack("<I", pixfmt)
            sizes = dict(self.fmts)[fourcc]
            if sizes is None:
                if index:
                    raise OSError(errno.EINVAL, "end")
                struct.pack_into("I6I", buf, 8, v4l2.FRMSIZE_STEPWISE, 160, 1280, 16, 120, 720, 8)
            elif index >= len(sizes):
                raise OSError(errno.EINVAL, "end")
            else:
                struct.pack_into("III", buf, 8, v4l2.FRMSIZE_DISCRETE, *sizes[index])
        else:
            raise OSError(errno.ENOTTY, "unknown ioctl")


def test_v4l2_query_lists_formats_and_sizes():
    card, capture, formats = v4l2.query_v4l2(3, FakeV4L2())
    assert card == "HD Webcam: HD Webcam" and capture
    assert formats == [("MJPG", ["1920x1080", "1280x720", "640x480"]), ("YUYV", ["160x120 .. 1280x720"])]
    # a metadata node (device caps without VIDEO_CAPTURE) is not a camera and is not enumerated
    card, capture, formats = v4l2.query_v4l2(3, FakeV4L2(device_caps=0x00800000))
    assert not capture and formats == []


def test_probe_camera_on_non_devices(tmp_path):
    f = tmp_path / "video0"
    f.write_text("")
    info = v4l2.probe_camera(str(f))
    assert info.capture is False and "not a device" in info.error
    assert v4l2.probe_camera(str(tmp_path / "video9")).error


def test_opencv_probe_without_a_camera_finishes():
    info = v4l2.probe_opencv(9, timeout=20)
    assert info.capture is not True and "cannot be opened" in info.error, info.error
