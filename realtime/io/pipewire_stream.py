"""The PipeWire camera's streaming process: raw frames on stdin -> a PipeWire ``Video/Source`` node.

Run by :mod:`realtime.io.pipewire` as a script (``python pipewire_stream.py CONFIG_JSON``), never
imported by the product. It holds the GStreamer pipeline ``appsrc ! videoconvert ! identity !
capsfilter ! pipewiresink mode=provide`` with the node's ``stream-properties``.

Why a process of its own: libgstreamer links libunwind, whose ``_Unwind_Resume`` then takes
over C++ exception unwinding for extension modules loaded later (MediaPipe, matplotlib's
ft2font): the first C++ exception they throw aborts the process. Kept apart, neither can crash
the other, and the node goes away with this process whatever happens to the parent (stdin
closes, the daemon drops the client).

Protocol: prints ``ready`` (or ``error: WHAT``) on stdout once the pipeline runs, then reads
frames of exactly the configured byte size from stdin until EOF, and sends the newest one at
the configured rate (a black frame until the first arrives; the last one again when none came). Exit codes: 0 after EOF, 3 no
bindings or plugin, 4 the pipeline did not start, 5 a stream error while running.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _load_gst():
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    Gst.init(None)
    for element in ("appsrc", "videoconvert", "identity", "capsfilter", "pipewiresink"):
        if Gst.ElementFactory.find(element) is None:
            raise ImportError(f"GStreamer has no '{element}' element")
    return Gst


def _bus_error(Gst, bus) -> str | None:
    msg = bus.pop_filtered(Gst.MessageType.ERROR)
    if msg is None:
        return None
    err, debug = msg.parse_error()
    return f"{err.message}{' (' + debug.splitlines()[-1] + ')' if debug else ''}"


def build(Gst, cfg: dict):
    w, h = cfg["width"], cfg["height"]
    num, den = Gst.util_double_to_fraction(float(cfg["fps"]))
    src_caps = f"video/x-raw,format={cfg['src_format']},width={w},height={h},framerate={num}/{den}"
    out_caps = f"video/x-raw,format={cfg['node_format']}"
    if cfg.get("colorimetry"):
        src_caps += f",colorimetry={cfg['colorimetry']}"
        out_caps += f",colorimetry={cfg['colorimetry']}"
    pipe = Gst.Pipeline.new("portrait-cam")
    src = Gst.ElementFactory.make("appsrc", "src")
    src.set_property("caps", Gst.Caps.from_string(src_caps))
    src.set_property("is-live", True)
    src.set_property("format", Gst.Format.TIME)
    src.set_property("do-timestamp", True)
    src.set_property("block", False)
    src.set_property("max-bytes", 3 * cfg["frame_bytes"])  # the parent paces; never a backlog
    conv = Gst.ElementFactory.make("videoconvert", "convert")
    # pipewiresink 0.3 sends empty buffers when an upstream element allocates from its pool
    noalloc = Gst.ElementFactory.make("identity", "no-pool")
    noalloc.set_property("drop-allocation", True)
    capsfilter = Gst.ElementFactory.make("capsfilter", "format")
    capsfilter.set_property("caps", Gst.Caps.from_string(out_caps))
    sink = Gst.ElementFactory.make("pipewiresink", "pipewire")
    sink.set_property("mode", "provide")
    sink.set_property("client-name", cfg["properties"]["node.name"])
    sink.set_property("sync", False)  # frames come at the camera's rate already
    props = Gst.Structure.new_empty("props")
    for k, v in cfg["properties"].items():
        props.set_value(k, v)
    sink.set_property("stream-properties", props)
    chain = (src, conv, noalloc, capsfilter, sink)
    for el in chain:
        pipe.add(el)
    for a, b in zip(chain, chain[1:]):
        if not a.link(b):
            raise RuntimeError(f"cannot link {a.get_name()} to {b.get_name()}")
    return pipe, src


def black(fmt: str, width: int, height: int) -> bytes:
    """A black frame in the fed format (BT.601 limited range for YUV)."""
    n = width * height
    if fmt in ("I420", "NV12"):
        return bytes([16]) * n + bytes([128]) * (n // 2)
    if fmt == "YUY2":
        return bytes([16, 128]) * n
    if fmt == "UYVY":
        return bytes([128, 16]) * n
    return bytes({"BGR": 3, "RGB": 3, "RGBA": 4, "GRAY8": 1}[fmt] * n)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which closes stdin
    cfg = json.loads(argv[1])
    try:
        Gst = _load_gst()
    except (ImportError, ValueError) as e:
        _say(f"error: {e}")
        return 3
    pipe, src = build(Gst, cfg)
    bus = pipe.get_bus()
    if pipe.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        _say(f"error: {_bus_error(Gst, bus) or 'the pipeline did not start'}")
        pipe.set_state(Gst.State.NULL)
        return 4
    size = cfg["frame_bytes"]
    latest = [black(cfg["src_format"], cfg["width"], cfg["height"])]  # never the raw camera
    ended = threading.Event()

    def read_frames() -> None:
        # the newest complete frame wins; EOF (the parent closed the camera or died) ends the stream
        stdin = sys.stdin.buffer
        while True:
            data = stdin.read(size)
            if len(data) < size:
                break
            latest[0] = data
        ended.set()

    reader = threading.Thread(target=read_frames, name="portrait-cam-pipewire-reader", daemon=True)
    reader.start()
    _say("ready")
    # This process keeps the rate (the last frame again when no new one came): it holds no
    # other work, so the parent's load does not make the camera stutter.
    period = 1.0 / float(cfg["fps"])
    next_t = time.monotonic()
    code = 0
    try:
        while not ended.is_set():
            err = _bus_error(Gst, bus)
            if err:
                print(f"error: {err}", file=sys.stderr, flush=True)
                code = 5
                break
            buf = Gst.Buffer.new_allocate(None, size, None)
            buf.fill(0, latest[0])
            src.emit("push-buffer", buf)
            next_t += period
            delay = next_t - time.monotonic()
            if delay < -period:  # far behind (suspend, debugger): do not burst to catch up
                next_t, delay = time.monotonic(), 0.0
            ended.wait(max(0.0, delay))
    finally:
        src.emit("end-of-stream")
        pipe.set_state(Gst.State.NULL)
        pipe.get_state(5 * Gst.SECOND)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
