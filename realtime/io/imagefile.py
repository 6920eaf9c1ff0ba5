"""Reading input pictures and videos safely: any file name, bounded size, the right way up.

- Bytes are read with Python's I/O and decoded with ``cv2.imdecode`` (OpenCV's own path
  functions crash on names that are not valid UTF-8); a video whose name is not valid UTF-8 is
  opened through ``/proc/self/fd``.
- A picture is decoded once, the right way up: the EXIF orientation of a photo is applied
  (``IMREAD_COLOR`` does it), so a portrait photo from a phone comes out as it is shown.
- Pixel cap: a still or a video frame larger than :func:`max_pixels` (8K UHD, 33.2 MP, by
  default; ``REALTIME_MAX_PIXELS`` changes it) is refused before it is decoded, from its
  header; a JPEG up to 64 times the cap is instead decoded at 1/2, 1/4 or 1/8 of its size
  (libjpeg scales while decoding) and the log says so. A video above the cap is accepted only
  with ``--size``, which bounds what the pipeline works on.
- A truncated JPEG (its picture data ends before the end-of-image marker) is decoded as far as
  it goes, said in a warning and counted (:class:`Damaged`).
- Output names of a folder of images: the input's stem, or its whole name when two inputs share
  a stem (``a.jpg`` and ``a.png`` give ``a.jpg.png`` and ``a.png.png``), never one over the other.
"""

from __future__ import annotations

import logging
import os
import struct
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from realtime.core.errors import SourceError
from realtime.io.safefiles import cv2_path, is_clean_name

log = logging.getLogger(__name__)

ENV_MAX_PIXELS = "REALTIME_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 7680 * 4320


def max_pixels() -> int:
    text = os.environ.get(ENV_MAX_PIXELS, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise SourceError(f"{ENV_MAX_PIXELS}={text!r} is not a positive whole number of pixels (e.g. 33177600)")
    return value


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP"


def cap_message(what: str, w: int, h: int, cap: int, fix: str) -> str:
    return (f"{what} is {w}x{h} ({_mp(w * h)}), more than the pixel cap of {_mp(cap)}; {fix} or raise the cap "
            f"with {ENV_MAX_PIXELS}=N (pixels)")


# -- headers -----------------------------------------------------------------------------------

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_segments(data: bytes):
    """(marker, payload offset, payload length) of a JPEG's header segments, up to SOS."""
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        yield marker, i + 4, length - 2
        if marker == 0xDA:
            return
        i += 2 + length


def _exif_orientation(tiff: bytes) -> int:
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    e = "<" if tiff[:2] == b"II" else ">"
    ifd = struct.unpack(e + "I", tiff[4:8])[0]
    if ifd + 2 > len(tiff):
        return 1
    count = struct.unpack(e + "H", tiff[ifd:ifd + 2])[0]
    for k in range(count):
        at = ifd + 2 + 12 * k
        if at + 12 > len(tiff):
            break
        tag, typ = struct.unpack(e + "HH", tiff[at:at + 4])
        if tag == 0x0112 and typ == 3:
            return struct.unpack(e + "H", tiff[at + 8:at + 10])[0]
    return 1


def header_info(data: bytes) -> tuple[str, tuple[int, int] | None, int]:
    """(format, (w, h) as shown i.e. after EXIF orientation, or None, SOS offset for JPEG else 0)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return "png", (w, h), 0
    if data[:2] == b"\xff\xd8":
        size, orientation, sos = None, 1, 0
        for marker, at, length in _jpeg_segments(data):
            if marker == 0xE1 and data[at:at + 6] == b"Exif\0\0":
                orientation = _exif_orientation(data[at + 6:at + length])
            elif marker in _SOF and length >= 5:
                h, w = struct.unpack(">HH", data[at + 1:at + 5])
                size = (w, h)
            elif marker == 0xDA:
                sos = at + length
        if size is not None and orientation in (5, 6, 7, 8):
            size = (size[1], size[0])
        return "jpeg", size, sos
    return "other", None, 0


def jpeg_truncated(data: bytes, sos: int) -> bool:
    """True when the JPEG's picture data has no end-of-image marker after its start of scan
    (entropy-coded data never holds FF D9, so a marker there ends the picture)."""
    return sos > 0 and data.rfind(b"\xff\xd9") < sos


# -- stills ------------------------------------------------------------------------------------

class Damaged(list):
    """Paths of inputs that were decoded but found damaged (a truncated JPEG)."""


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise SourceError(f"input image {path} does not exist") from None
    except OSError as e:
        raise SourceError(f"input image {path} cannot be read ({e.strerror or e})") from e


def read_still(path: Path, damaged: Damaged | None = None) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 BGR, oriented, within the pixel cap."""
    data = _read_bytes(path)
    cap = max_pixels()
    fmt, size, sos = header_info(data)
    flags = cv2.IMREAD_COLOR
    if size is not None and size[0] * size[1] > cap:
        w, h = size
        factor = next((f for f in (2, 4, 8) if (w // f) * (h // f) <= cap), None)
        if fmt != "jpeg" or factor is None:
            raise SourceError(cap_message(f"input image {path}", w, h, cap, "downscale it first"))
        flags = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
        log.warning("input image %s is %dx%d (%s), more than the pixel cap of %s: decoded at 1/%d size "
                    "(%s=N raises the cap)", path, w, h, _mp(w * h), _mp(cap), factor, ENV_MAX_PIXELS)
    truncated = fmt == "jpeg" and jpeg_truncated(data, sos)
    if truncated:  # an end marker lets libjpeg decode what is there (from memory it refuses otherwise)
        data = data + b"\xff\xd9"
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as e:  # OpenCV's own limits (a header it accepts but cannot allocate)
        raise SourceError(f"input image {path} cannot be decoded ({' '.join(str(e.err).split())}); "
                          "it is damaged or too large") from e
    if img is None or img.size == 0:
        raise SourceError(f"input image {path} cannot be decoded (corrupt or not an image); "
                          "use a readable jpg/jpeg/png/bmp file")
    if img.shape[0] * img.shape[1] > cap:
        raise SourceError(cap_message(f"input image {path}", img.shape[1], img.shape[0], cap, "downscale it first"))
    if truncated:
        log.warning("input image %s is truncated (the file ends inside the picture: its bottom is grey); "
                    "copy it again from its source", path)
        if damaged is not None:
            damaged.append(path)
    return np.ascontiguousarray(img)


def image_size(path: Path) -> tuple[int, int] | None:
    """(w, h) of an image as shown (EXIF orientation applied), from its header when it can."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    fmt, size, _ = header_info(head)
    if size is not None:
        return size
    try:
        img = read_still(path)
    except SourceError:
        return None
    return img.shape[1], img.shape[0]


def output_names(paths: list[Path]) -> list[str]:
    """Output stems for a folder of images: the stem, or the whole name where stems collide."""
    stems = Counter(p.stem for p in paths)
    clashes = sorted(p.name for p in paths if stems[p.stem] > 1)
    if clashes:
        log.warning("inputs share a name: %s; their outputs keep the extension (%s.png ...) so none replaces "
                    "another", ", ".join(clashes[:6]) + (" ..." if len(clashes) > 6 else ""), clashes[0])
    return [p.name if stems[p.stem] > 1 else p.stem for p in paths]


def frame_name(i: int, total: int | None) -> str:
    """``00000`` ...: five digits, more when the input is longer, so names sort in frame order."""
    width = max(5, len(str(max(0, (total or 0) - 1))))
    return f"{i:0{width}d}"


# -- videos ------------------------------------------------------------------------------------

def video_capture(path: Path) -> tuple[cv2.VideoCapture, int | None]:
    """``cv2.VideoCapture`` of a file whatever its name; returns it and a descriptor to close
    after releasing it (None when the plain path was used)."""
    if is_clean_name(path):
        return cv2.VideoCapture(str(path)), None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise SourceError(f"input {path} cannot be read ({e.strerror or e})") from e
    try:
        return cv2.VideoCapture(cv2_path(path, fd)), fd
    except Exception:
        os.close(fd)
        raise


def check_video_frame(path: Path, w: int, h: int, size: tuple[int, int] | None) -> None:
    cap = max_pixels()
    if w * h > cap and (size is None or size[0] * size[1] > cap):
        raise SourceError(cap_message(f"video {path}", w, h, cap, "pass --size WxH to work at a smaller size"))
