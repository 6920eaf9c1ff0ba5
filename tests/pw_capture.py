"""Read frames back from a PipeWire camera node, as an app would: ``pipewiresrc`` (GStreamer).

    python tests/pw_capture.py TARGET OUT.npz [--frames N] [--seconds S] [--caps CAPS]

Writes ``frames`` (BGR, decoded from the node's own format with OpenCV's BT.601 conversions),
``times`` (monotonic arrival time of each buffer) and ``format`` (what was negotiated).
Stops after N frames (0: no limit), S seconds, --idle seconds without a frame, or SIGTERM. Exit 3 when nothing arrived.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

import cv2
import gi
import numpy as np

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import Gst, GstVideo  # noqa: E402

# format -> (planes as (bytes per row factor over width, rows factor over height), OpenCV decode of the tight bytes)
DECODE = {
    "I420": (((1, 1), (0.5, 0.5), (0.5, 0.5)), lambda a, w, h: cv2.cvtColor(a.reshape(h * 3 // 2, w),
                                                                         cv2.COLOR_YUV2BGR_I420)),
    "NV12": (((1, 1), (1, 0.5)), lambda a, w, h: cv2.cvtColor(a.reshape(h * 3 // 2, w), cv2.COLOR_YUV2BGR_NV12)),
    "YUY2": (((2, 1),), lambda a, w, h: cv2.cvtColor(a.reshape(h, w, 2), cv2.COLOR_YUV2BGR_YUY2)),
    "UYVY": (((2, 1),), lambda a, w, h: cv2.cvtColor(a.reshape(h, w, 2), cv2.COLOR_YUV2BGR_UYVY)),
    "BGRx": (((4, 1),), lambda a, w, h: np.ascontiguousarray(a.reshape(h, w, 4)[..., :3])),
    "RGBx": (((4, 1),), lambda a, w, h: np.ascontiguousarray(a.reshape(h, w, 4)[..., 2::-1])),
}


def tight(data: np.ndarray, info, planes) -> np.ndarray:
    """The planes without row padding (GStreamer rounds strides up, e.g. to 4 bytes)."""
    w, h = info.width, info.height
    parts = []
    for i, (fw, fh) in enumerate(planes):
        row, rows, stride, off = int(w * fw), int(h * fh), info.stride[i], info.offset[i]
        parts.append(data[off: off + stride * rows].reshape(rows, stride)[:, :row].reshape(-1))
    return np.concatenate(parts)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("target")
    ap.add_argument("out")
    ap.add_argument("--frames", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--caps", default="video/x-raw")
    ap.add_argument("--skip-black", action="store_true", help="drop the black frames sent before processing starts")
    ap.add_argument("--idle", type=float, default=3.0, help="stop when no frame came for this long (node gone)")
    a = ap.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))  # the test is done: save what came
    Gst.init(None)
    pipe = Gst.parse_launch(f"pipewiresrc target-object={a.target} ! {a.caps} ! "
                            "appsink name=out sync=false max-buffers=64 drop=false")
    sink = pipe.get_by_name("out")
    pipe.set_state(Gst.State.PLAYING)
    frames, times, fmt = [], [], None
    deadline = time.monotonic() + a.seconds
    try:
        while not stop and time.monotonic() < deadline and (not a.frames or len(frames) < a.frames):
            sample = sink.emit("try-pull-sample", int(0.2 * Gst.SECOND))
            if sample is None:
                if times and time.monotonic() - times[-1] > a.idle:
                    break
                continue
            now = time.monotonic()
            info = GstVideo.VideoInfo.new_from_caps(sample.get_caps())
            fmt = info.finfo.name
            planes, decode = DECODE[fmt]
            buf = sample.get_buffer()
            data = np.frombuffer(buf.extract_dup(0, buf.get_size()), np.uint8)
            if data.size < info.size:
                print(f"short buffer: {data.size} bytes for {fmt} {info.width}x{info.height}", file=sys.stderr)
                return 4
            frame = decode(tight(data, info, planes), info.width, info.height)
            if a.skip_black and not frames and frame.mean() < 8:
                continue
            frames.append(frame)
            times.append(now)
    finally:
        pipe.set_state(Gst.State.NULL)
    if not frames:
        print("no frame arrived", file=sys.stderr)
        return 3
    np.savez(a.out, frames=np.stack(frames), times=np.array(times), format=np.array(fmt))
    print(f"{len(frames)} {fmt}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
