"""Cameras asked what they are, without streaming: V4L2 ioctls (capabilities, pixel formats, frame
sizes) on Linux, OpenCV in a child process elsewhere. A query cannot hang (no streaming is
started) and works while another program uses the camera."""

from __future__ import annotations

import errno
import os
import stat
import struct
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class CameraInfo:
    node: str
    card: str = ""
    capture: bool | None = None                     # None = could not tell
    formats: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (fourcc, sizes "WxH")
    error: str = ""
    denied: bool = False                            # permission denied on open


# -- V4L2 queries ------------------------------------------------------------------------------
# Struct layouts from linux/videodev2.h; the ioctl numbers are derived from the struct sizes
# exactly as the kernel's _IOR/_IOWR macros do (tests compare them with the header's values).

_CAPABILITY = struct.Struct("16s32s32sIII12x")      # driver, card, bus_info, version, caps, device_caps
_FMTDESC = struct.Struct("III32sII12x")             # index, type, flags, description, pixelformat, mbus
_FRMSIZE = struct.Struct("III6I8x")                 # index, pixel_format, type, union (6 u32)

CAP_VIDEO_CAPTURE = 0x00000001
CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
CAP_DEVICE_CAPS = 0x80000000
BUF_TYPE_VIDEO_CAPTURE = 1
FRMSIZE_DISCRETE, FRMSIZE_CONTINUOUS, FRMSIZE_STEPWISE = 1, 2, 3


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("V") << 8) | nr


VIDIOC_QUERYCAP = _ioc(2, 0, _CAPABILITY.size)
VIDIOC_ENUM_FMT = _ioc(3, 2, _FMTDESC.size)
VIDIOC_ENUM_FRAMESIZES = _ioc(3, 74, _FRMSIZE.size)


def _fourcc(code: int) -> str:
    return "".join(chr((code >> (8 * k)) & 0xFF) for k in range(4)).strip("\x00 ") or "?"


def _cstr(b: bytes) -> str:
    return b.split(b"\x00", 1)[0].decode("utf-8", "replace").strip()


def query_v4l2(fd: int, ioctl: Callable = None) -> tuple[str, bool, list[tuple[str, list[str]]]]:
    """(card name, is a capture device, [(fourcc, sizes)]) of an open V4L2 node."""
    if ioctl is None:
        import fcntl

        ioctl = fcntl.ioctl
    buf = bytearray(_CAPABILITY.size)
    ioctl(fd, VIDIOC_QUERYCAP, buf, True)
    _, card, _, _, caps, device_caps = _CAPABILITY.unpack(buf)
    effective = device_caps if caps & CAP_DEVICE_CAPS else caps
    capture = bool(effective & (CAP_VIDEO_CAPTURE | CAP_VIDEO_CAPTURE_MPLANE))
    formats: list[tuple[str, list[str]]] = []
    if not capture:
        return _cstr(card), False, formats
    for i in range(64):
        buf = bytearray(_FMTDESC.pack(i, BUF_TYPE_VIDEO_CAPTURE, 0, b"", 0, 0))
        try:
            ioctl(fd, VIDIOC_ENUM_FMT, buf, True)
        except OSError as e:
            if e.errno == errno.EINVAL:  # the end of the list
                break
            raise
        pixfmt = _FMTDESC.unpack(buf)[4]
        formats.append((_fourcc(pixfmt), _frame_sizes(fd, pixfmt, ioctl)))
    return _cstr(card), True, formats


def _frame_sizes(fd: int, pixfmt: int, ioctl: Callable) -> list[str]:
    sizes: list[tuple[int, int]] = []
    for i in range(256):
        buf = bytearray(_FRMSIZE.pack(i, pixfmt, 0, 0, 0, 0, 0, 0, 0))
        try:
            ioctl(fd, VIDIOC_ENUM_FRAMESIZES, buf, True)
        except OSError:
            break
        _, _, kind, a, b, _, d, e, _ = _FRMSIZE.unpack(buf)
        if kind == FRMSIZE_DISCRETE:
            sizes.append((a, b))
        else:  # stepwise/continuous: min_w, max_w, step_w, min_h, max_h, step_h
            return [f"{a}x{d} .. {b}x{e}"]
    sizes = sorted(set(sizes), key=lambda s: (-s[0] * s[1], -s[0]))
    return [f"{w}x{h}" for w, h in sizes]


def probe_camera(node: str) -> CameraInfo:
    """What a video node is (Linux): name, capture or not, formats and sizes. Never blocks."""
    try:
        st = os.stat(node)
    except OSError as e:
        return CameraInfo(node, error=e.strerror or str(e))
    if not stat.S_ISCHR(st.st_mode):
        return CameraInfo(node, capture=False, error="not a device node")
    try:
        fd = os.open(node, os.O_RDWR | os.O_NONBLOCK)
    except PermissionError:
        return CameraInfo(node, error="permission denied", denied=True)
    except OSError as e:
        return CameraInfo(node, error=e.strerror or str(e))
    try:
        card, capture, formats = query_v4l2(fd)
    except OSError as e:
        return CameraInfo(node, error=f"not a V4L2 device ({e.strerror or e})")
    finally:
        os.close(fd)
    return CameraInfo(node, card, capture, tuple((f, tuple(s)) for f, s in formats))


_OPENCV_PROBE = """
import sys, cv2
cap = cv2.VideoCapture(int(sys.argv[1]))
ok, frame = cap.read() if cap.isOpened() else (False, None)
code = int(cap.get(cv2.CAP_PROP_FOURCC)) if ok else 0
print(f"{frame.shape[1]}x{frame.shape[0]} {cap.get(cv2.CAP_PROP_FPS):g} {code}" if ok else "none")
cap.release()
"""


def probe_opencv(index: int, timeout: float = 8.0) -> CameraInfo:
    """Open camera ``index`` with OpenCV in a child process (a stuck driver cannot hang us)."""
    node = f"camera {index}"
    try:
        r = subprocess.run([sys.executable, "-c", _OPENCV_PROBE, str(index)], capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return CameraInfo(node, error=f"opening it did not finish within {timeout:g} s")
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return CameraInfo(node, error=f"the OpenCV probe failed ({last})")
    words = (r.stdout.strip().splitlines() or ["none"])[-1].split()
    if words[0] == "none" or len(words) < 3:
        return CameraInfo(node, error="cannot be opened or delivers no frame")
    return CameraInfo(node, capture=True, formats=((_fourcc(int(words[2])), (words[0],)),))
