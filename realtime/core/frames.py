"""The frame contract, written once and checked at every stage boundary.

- **frame**: ``(H, W, 3) uint8`` BGR (OpenCV order), C-contiguous, from the source up to the
  renderer and out of it again. Sinks convert to whatever their device wants.
- **matte**: ``(H, W) float32`` in [0, 1], 1 = person, at the frame's full resolution.
- **disparity**: ``(H, W) float32`` inverse depth mapped to [0, 1], larger = nearer.
- **coc**: ``(H, W) float32`` signed circle of confusion in pixels; negative = in front of the
  focus plane, positive = behind it.
- **timestamp_ms**: ``int`` milliseconds, strictly increasing per stream.

Dtype problems raise :class:`~realtime.core.errors.FrameTypeError` (a ``TypeError``), shape and
layout problems :class:`~realtime.core.errors.FrameShapeError` (a ``ValueError``); both quote the
actual and the expected value, as pyvirtualcam does.

Stages that hand back an internal buffer hand it back read-only (see :func:`readonly`), so a
caller can never scribble over state the stage will reuse.
"""

from __future__ import annotations

import numpy as np

from realtime.core.errors import FrameShapeError, FrameTypeError


def _describe(a: object) -> str:
    if isinstance(a, np.ndarray):
        return f"array of shape {a.shape} and dtype {a.dtype}"
    return f"{type(a).__name__}"


def check_frame(frame: object, name: str = "frame") -> np.ndarray:
    """Validate a BGR frame; returns it unchanged (never copies)."""
    if not isinstance(frame, np.ndarray):
        raise FrameTypeError(f"{name} must be a numpy array (H, W, 3) uint8 BGR, got {_describe(frame)}")
    if frame.dtype != np.uint8:
        raise FrameTypeError(f"{name} must have dtype uint8, got {frame.dtype} (expected (H, W, 3) uint8 BGR; "
                             "convert with cv2.convertScaleAbs or scale to 0..255 first)")
    if frame.ndim != 3 or frame.shape[2] != 3:
        hint = ""
        if frame.ndim == 2:
            hint = "; grey input: use cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)"
        elif frame.ndim == 3 and frame.shape[2] == 4:
            hint = "; BGRA input: use cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)"
        raise FrameShapeError(f"{name} must have shape (H, W, 3), got {frame.shape}{hint}")
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        raise FrameShapeError(f"{name} must be at least 2x2 pixels, got {frame.shape[1]}x{frame.shape[0]}")
    if not frame.flags.c_contiguous:
        raise FrameShapeError(f"{name} must be C-contiguous (use np.ascontiguousarray), got strides {frame.strides}")
    return frame


def check_plane(a: object, shape: tuple[int, int], name: str) -> np.ndarray:
    """Validate a ``(H, W) float32`` plane (matte, disparity, coc) of the given shape."""
    if not isinstance(a, np.ndarray):
        raise FrameTypeError(f"{name} must be a numpy array {shape} float32, got {_describe(a)}")
    if a.dtype != np.float32:
        raise FrameTypeError(f"{name} must have dtype float32, got {a.dtype}")
    if a.shape != tuple(shape):
        raise FrameShapeError(f"{name} must have shape {tuple(shape)} to match the frame, got {a.shape}")
    return a


def check_matte(matte: object, shape: tuple[int, int], name: str = "matte") -> np.ndarray:
    """Validate a matte: ``(H, W) float32``. Values are the producer's promise ([0, 1])."""
    return check_plane(matte, shape, name)


def check_disparity(disparity: object, shape: tuple[int, int], name: str = "disparity") -> np.ndarray:
    """Validate a disparity map: ``(H, W) float32`` in [0, 1], larger = nearer."""
    return check_plane(disparity, shape, name)


def check_timestamp(timestamp_ms: object, last: int | None, who: str) -> int:
    """Validate a timestamp against the previous one; returns it as ``int``."""
    from realtime.core.errors import TimestampError

    if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, (int, np.integer, float, np.floating)):
        raise TimestampError(f"{who}: timestamp_ms must be a number of milliseconds, got {type(timestamp_ms).__name__}")
    if not np.isfinite(timestamp_ms):
        raise TimestampError(f"{who}: timestamp_ms must be finite, got {timestamp_ms}")
    ts = int(timestamp_ms)
    if last is not None and ts <= last:
        raise TimestampError(f"{who}: timestamps must strictly increase, got {ts} ms after {last} ms "
                             "(call reset() when a new stream starts)")
    return ts


def readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a`` (the buffer stays writable for its owner)."""
    v = a.view()
    v.flags.writeable = False
    return v
