"""The PipeWire camera's formats: what the node offers, how a negotiated format is read back, and
how a frame is laid out and converted for it.

Pure Python (struct, NumPy, OpenCV), shared by the streaming process
(realtime/io/pipewire_stream.py, which imports it as a sibling script module) and the tests.

PipeWire describes formats as SPA PODs: 8-byte aligned ``{size, type}`` headers followed by a
body. Only what a raw video source needs is written here: one ``EnumFormat`` object per pixel
format (media type, subtype, format, size, frame rate, and for YUV the BT.601 limited-range
matrix the OpenCV conversions use), a ``Buffers`` object, and a reader for the ``Format`` the
consumer picked.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

# SPA constants (spa/utils/type.h, spa/param/param.h, spa/param/format.h, spa/param/video/raw.h,
# spa/param/buffers.h): stable ABI values.
_T_ID, _T_INT, _T_RECT, _T_FRAC, _T_OBJECT, _T_CHOICE = 3, 4, 10, 11, 15, 19
_CHOICE_NONE, _CHOICE_RANGE, _CHOICE_ENUM = 0, 1, 3
_OBJ_FORMAT, _OBJ_BUFFERS = 0x40003, 0x40004
PARAM_ENUM_FORMAT, PARAM_FORMAT, PARAM_BUFFERS = 3, 4, 5
_KEY_MEDIA_TYPE, _KEY_MEDIA_SUBTYPE = 1, 2
_KEY_FORMAT, _KEY_SIZE, _KEY_FRAMERATE = 0x20001, 0x20003, 0x20004
_KEY_COLOR_RANGE, _KEY_COLOR_MATRIX = 0x2000C, 0x2000D
_MEDIA_VIDEO, _SUBTYPE_RAW = 2, 1
_RANGE_16_235, _MATRIX_BT601 = 2, 4
_BUF_BUFFERS, _BUF_BLOCKS, _BUF_SIZE, _BUF_STRIDE = 1, 2, 3, 4

# Node pixel formats, in the order they are offered after the preferred one: the browsers' and
# OBS's first choices, then the rest.
SPA_FORMATS = {"I420": 2, "YUY2": 4, "NV12": 23, "UYVY": 5, "BGRx": 8, "RGBx": 7}
_BY_ID = {v: k for k, v in SPA_FORMATS.items()}
YUV = ("I420", "NV12", "YUY2", "UYVY")
# --vcam-format name -> node format
FROM_VCAM = {"i420": "I420", "yuyv": "YUY2", "nv12": "NV12", "uyvy": "UYVY", "bgr": "BGRx", "rgb": "RGBx"}


def offer_order(preferred: str) -> list[str]:
    """Every node format, the preferred one first (a consumer that takes anything gets it)."""
    if preferred not in SPA_FORMATS:
        raise ValueError(f"unknown node format {preferred!r}; one of {', '.join(SPA_FORMATS)}")
    return [preferred] + [f for f in SPA_FORMATS if f != preferred]


# -- SPA POD writing and reading ---------------------------------------------------------------

def _pad8(n: int) -> int:
    return (n + 7) & ~7


def _pod(kind: int, body: bytes) -> bytes:
    return struct.pack("<II", len(body), kind) + body + b"\0" * (_pad8(len(body)) - len(body))


def _id(v: int) -> bytes:
    return _pod(_T_ID, struct.pack("<I", v))


def _int(v: int) -> bytes:
    return _pod(_T_INT, struct.pack("<i", v))


def _int_range(default: int, lo: int, hi: int) -> bytes:
    return _pod(_T_CHOICE, struct.pack("<IIIIiii", _CHOICE_RANGE, 0, 4, _T_INT, default, lo, hi))


def _object(kind: int, param: int, props: list[tuple[int, bytes]]) -> bytes:
    body = struct.pack("<II", kind, param) + b"".join(struct.pack("<II", k, 0) + v for k, v in props)
    return _pod(_T_OBJECT, body)


def enum_format(fmt: str, width: int, height: int, rate: tuple[int, int]) -> bytes:
    """One ``EnumFormat`` the node offers: raw video in ``fmt`` at the run's size and rate."""
    props = [(_KEY_MEDIA_TYPE, _id(_MEDIA_VIDEO)), (_KEY_MEDIA_SUBTYPE, _id(_SUBTYPE_RAW)),
             (_KEY_FORMAT, _id(SPA_FORMATS[fmt])),
             (_KEY_SIZE, _pod(_T_RECT, struct.pack("<II", width, height))),
             (_KEY_FRAMERATE, _pod(_T_FRAC, struct.pack("<II", *rate)))]
    if fmt in YUV:  # what the OpenCV conversions write; without it a consumer may assume BT.709 for HD
        props += [(_KEY_COLOR_RANGE, _id(_RANGE_16_235)), (_KEY_COLOR_MATRIX, _id(_MATRIX_BT601))]
    return _object(_OBJ_FORMAT, PARAM_ENUM_FORMAT, props)


def buffers_param(size: int, stride: int) -> bytes:
    """The buffers the node fills: one block of ``size`` bytes, 2 to 16 of them (4 preferred)."""
    return _object(_OBJ_BUFFERS, PARAM_BUFFERS, [(_BUF_BUFFERS, _int_range(4, 2, 16)), (_BUF_BLOCKS, _int(1)),
                                                 (_BUF_SIZE, _int(size)), (_BUF_STRIDE, _int(stride))])


def _value(kind: int, body: bytes):
    if kind == _T_CHOICE:  # a choice left in a fixed format: its default (first) value
        _, _, child_size, child_kind = struct.unpack_from("<IIII", body)
        return _value(child_kind, body[16:16 + child_size])
    if kind in (_T_ID, _T_INT):
        return struct.unpack_from("<I" if kind == _T_ID else "<i", body)[0]
    if kind in (_T_RECT, _T_FRAC):
        return struct.unpack_from("<II", body)
    return None


def parse_format(pod: bytes) -> dict:
    """The ``Format`` a consumer settled on: ``format`` (a node format name, or ``id:N`` when not
    one of ours), ``width``, ``height``, ``rate`` (num, denom) as far as present."""
    size, kind = struct.unpack_from("<II", pod)
    if kind != _T_OBJECT or size < 8:
        raise ValueError(f"not a format object (type {kind})")
    end, at, out = 8 + size, 16, {}
    while at + 16 <= end:
        key, _flags, vsize, vkind = struct.unpack_from("<IIII", pod, at)
        value = _value(vkind, pod[at + 16: at + 16 + vsize])
        if key == _KEY_FORMAT and value is not None:
            out["format"] = _BY_ID.get(value, f"id:{value}")
        elif key == _KEY_SIZE and value is not None:
            out["width"], out["height"] = value
        elif key == _KEY_FRAMERATE and value is not None:
            out["rate"] = value
        at += 16 + _pad8(vsize)
    return out


# -- frame layout and conversion ---------------------------------------------------------------

def _round4(n: int) -> int:
    return (n + 3) & ~3


def layout(fmt: str, width: int, height: int) -> tuple[list[tuple[int, int, int, int]], int]:
    """Planes as (offset, stride, rows, row bytes) in one memory block, and its size. Strides are
    GStreamer's defaults (rows rounded up to 4 bytes), which consumers assume for the planes
    after the first when a buffer has one block; with widths that are multiples of 8 this is
    the tight layout."""
    w, h, cw, ch = width, height, (width + 1) // 2, (height + 1) // 2
    rows = {"I420": [(h, w), (ch, cw), (ch, cw)], "NV12": [(h, w), (ch, 2 * cw)],
            "YUY2": [(h, 2 * w)], "UYVY": [(h, 2 * w)], "BGRx": [(h, 4 * w)], "RGBx": [(h, 4 * w)]}[fmt]
    planes, offset = [], 0
    for n, row in rows:
        stride = _round4(row)
        if fmt == "NV12" and planes:  # GStreamer gives NV12's chroma plane the luma stride
            stride = planes[0][1]
        planes.append((offset, stride, n, row))
        offset += stride * n
    return planes, offset


# fed formats (what the pipe carries, from the pyvirtualcam pixel format) -> bytes per pixel x 2
FED_HALF_BYTES = {"I420": 3, "NV12": 3, "YUY2": 4, "UYVY": 4, "BGR": 6, "RGB": 6, "RGBA": 8, "GRAY8": 2}
_TO_BGR = {"I420": cv2.COLOR_YUV2BGR_I420, "NV12": cv2.COLOR_YUV2BGR_NV12, "YUY2": cv2.COLOR_YUV2BGR_YUY2,
           "UYVY": cv2.COLOR_YUV2BGR_UYVY, "RGB": cv2.COLOR_RGB2BGR, "RGBA": cv2.COLOR_RGBA2BGR,
           "GRAY8": cv2.COLOR_GRAY2BGR}
_FED_SHAPE = {"I420": lambda w, h: (h * 3 // 2, w), "NV12": lambda w, h: (h * 3 // 2, w),
              "YUY2": lambda w, h: (h, w, 2), "UYVY": lambda w, h: (h, w, 2), "BGR": lambda w, h: (h, w, 3),
              "RGB": lambda w, h: (h, w, 3), "RGBA": lambda w, h: (h, w, 4), "GRAY8": lambda w, h: (h, w)}


def to_bgr(fed: str, data: bytes, width: int, height: int) -> np.ndarray:
    """A fed frame as BGR (H, W, 3) uint8."""
    a = np.frombuffer(data, np.uint8).reshape(_FED_SHAPE[fed](width, height))
    return a if fed == "BGR" else cv2.cvtColor(a, _TO_BGR[fed])


def _tight_from_bgr(fmt: str, bgr: np.ndarray) -> np.ndarray:
    if fmt == "I420":
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    if fmt == "NV12":
        h, w = bgr.shape[:2]
        i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).reshape(-1)
        n = h * w
        uv = np.empty(n // 2, np.uint8)
        uv[0::2], uv[1::2] = i420[n: n * 5 // 4], i420[n * 5 // 4:]
        return np.concatenate([i420[:n], uv])
    if fmt == "YUY2":
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_YUYV)
    if fmt == "UYVY":
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_UYVY)
    if fmt == "BGRx":
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    if fmt == "RGBx":
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA)
    raise ValueError(fmt)


_SAME = {"I420": "I420", "NV12": "NV12", "YUY2": "YUY2", "UYVY": "UYVY"}


def frame_for(fmt: str, fed: str, data: bytes, width: int, height: int) -> bytes:
    """A fed frame in node format ``fmt``, laid out as :func:`layout` says. A YUV frame fed in
    the node's own format goes through untouched (no second chroma subsampling)."""
    if _SAME.get(fed) == fmt:
        tight = np.frombuffer(data, np.uint8)
    else:
        tight = _tight_from_bgr(fmt, to_bgr(fed, data, width, height)).reshape(-1)
    planes, size = layout(fmt, width, height)
    if all(stride == row for _, stride, _, row in planes):
        return tight.tobytes()
    out = np.zeros(size, np.uint8)
    at = 0
    for offset, stride, rows, row in planes:
        out[offset: offset + stride * rows].reshape(rows, stride)[:, :row] = tight[at: at + rows * row].reshape(rows, row)
        at += rows * row
    return out.tobytes()


def black(fed: str, width: int, height: int) -> bytes:
    """A black frame in a fed format (BT.601 limited range for YUV)."""
    n = width * height
    if fed in ("I420", "NV12"):
        return bytes([16]) * n + bytes([128]) * (n // 2)
    if fed == "YUY2":
        return bytes([16, 128]) * n
    if fed == "UYVY":
        return bytes([128, 16]) * n
    return bytes(FED_HALF_BYTES[fed] * n // 2)
