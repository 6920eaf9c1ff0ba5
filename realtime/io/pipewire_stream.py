"""The PipeWire camera's streaming process: raw frames on stdin -> a PipeWire ``Video/Source`` node.

Run by :mod:`realtime.io.pipewire` as a script (``python pipewire_stream.py CONFIG_JSON``), never
imported by the product. It talks to PipeWire through libpipewire's own stream API
(``libpipewire-0.3.so.0``, loaded with ctypes): the node offers every raw format in
realtime/io/pipewire_pod.py at the run's size and rate, and the consumer's choice decides what is
produced. GStreamer's ``pipewiresink`` cannot do that: it fixes one format when its caps are set,
before any consumer connects, so an app that asks for another one never gets a frame.

Why a process of its own: the node's pacing and conversions run away from the parent's load,
neither process can crash the other, and the node goes away with this process whatever happens
to the parent (stdin closes, the daemon drops the client when the process dies).

``--probe`` instead of a configuration prints what loads (for doctor) as one JSON line.

Protocol: prints ``ready`` (or ``error: WHAT``) on stdout once the node exists, then
``format NAME WxH`` each time a consumer settles on a format and ``state streaming`` /
``state paused`` when an app starts or stops reading; reads frames of exactly the
configured byte size from stdin until EOF and sends the newest one at the configured rate (a black
frame until the first arrives, the last one again when none came). Exit codes: 0 after EOF,
3 libpipewire does not load, 4 the node did not start, 5 a stream error while running.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import signal
import sys
import threading
import time
from ctypes import CFUNCTYPE, POINTER, Structure, c_bool, c_char_p, c_int, c_int32, c_int64, c_uint32, c_uint64, c_void_p

import pipewire_pod as pod  # sibling module: this file runs as a script

LIBRARY = "libpipewire-0.3.so.0"
_OUTPUT, _ANY_ID = 1, 0xFFFFFFFF
_FLAG_MAP_BUFFERS, _FLAG_DRIVER = 1 << 2, 1 << 3
_STATE_ERROR, _STATE_PAUSED, _STATE_STREAMING = -1, 2, 3


class _DictItem(Structure):
    _fields_ = [("key", c_char_p), ("value", c_char_p)]


class _Dict(Structure):
    _fields_ = [("flags", c_uint32), ("n_items", c_uint32), ("items", POINTER(_DictItem))]


class _Chunk(Structure):
    _fields_ = [("offset", c_uint32), ("size", c_uint32), ("stride", c_int32), ("flags", c_int32)]


class _Data(Structure):
    _fields_ = [("type", c_uint32), ("flags", c_uint32), ("fd", c_int64), ("mapoffset", c_uint32),
                ("maxsize", c_uint32), ("data", c_void_p), ("chunk", POINTER(_Chunk))]


class _SpaBuffer(Structure):
    _fields_ = [("n_metas", c_uint32), ("n_datas", c_uint32), ("metas", c_void_p), ("datas", POINTER(_Data))]


class _Buffer(Structure):
    _fields_ = [("buffer", POINTER(_SpaBuffer)), ("user_data", c_void_p), ("size", c_uint64)]


_STATE_CB = CFUNCTYPE(None, c_void_p, c_int, c_int, c_char_p)
_PARAM_CB = CFUNCTYPE(None, c_void_p, c_uint32, c_void_p)
_VOID_CB = CFUNCTYPE(None, c_void_p)


class _Events(Structure):  # struct pw_stream_events, version 0 (the fields every libpipewire 0.3 has)
    _fields_ = [("version", c_uint32), ("destroy", _VOID_CB), ("state_changed", _STATE_CB),
                ("control_info", c_void_p), ("io_changed", c_void_p), ("param_changed", _PARAM_CB),
                ("add_buffer", c_void_p), ("remove_buffer", c_void_p), ("process", c_void_p), ("drained", c_void_p)]


def load_library() -> ctypes.CDLL:
    """libpipewire with the signatures used here (raises OSError when it is not installed)."""
    lib = ctypes.CDLL(ctypes.util.find_library("pipewire-0.3") or LIBRARY)
    sig = {
        "pw_init": (None, [c_void_p, c_void_p]), "pw_get_library_version": (c_char_p, []),
        "pw_thread_loop_new": (c_void_p, [c_char_p, c_void_p]), "pw_thread_loop_get_loop": (c_void_p, [c_void_p]),
        "pw_thread_loop_start": (c_int, [c_void_p]), "pw_thread_loop_stop": (None, [c_void_p]),
        "pw_thread_loop_lock": (None, [c_void_p]), "pw_thread_loop_unlock": (None, [c_void_p]),
        "pw_thread_loop_destroy": (None, [c_void_p]), "pw_properties_new_dict": (c_void_p, [POINTER(_Dict)]),
        "pw_stream_new_simple": (c_void_p, [c_void_p, c_char_p, c_void_p, POINTER(_Events), c_void_p]),
        "pw_stream_connect": (c_int, [c_void_p, c_int, c_uint32, c_int, POINTER(c_void_p), c_uint32]),
        "pw_stream_dequeue_buffer": (POINTER(_Buffer), [c_void_p]),
        "pw_stream_queue_buffer": (c_int, [c_void_p, POINTER(_Buffer)]),
        "pw_stream_update_params": (c_int, [c_void_p, POINTER(c_void_p), c_uint32]),
        "pw_stream_trigger_process": (c_int, [c_void_p]), "pw_stream_is_driving": (c_bool, [c_void_p]),
        "pw_stream_destroy": (None, [c_void_p]), "pw_context_new": (c_void_p, [c_void_p, c_void_p, c_uint64]),
        "pw_context_destroy": (None, [c_void_p]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def _params(blobs: list[bytes]):
    """A ``const struct spa_pod **`` array (the buffers are returned too: they must stay alive)."""
    keep = [ctypes.create_string_buffer(b, len(b)) for b in blobs]
    return (c_void_p * len(keep))(*[ctypes.addressof(k) for k in keep]), keep


_SAYING = threading.Lock()


def _say(line: str) -> None:
    with _SAYING:  # PipeWire's thread says formats and states, the main thread the rest
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Node:
    """One output stream with the node's properties and every format offered."""

    def __init__(self, lib: ctypes.CDLL, cfg: dict) -> None:
        self.lib, self.cfg = lib, cfg
        self.width, self.height = cfg["width"], cfg["height"]
        self.error: str | None = None
        self.state = 0
        self.format: str | None = None  # what the consumer settled on (None: no consumer)
        self.announce = False  # say state changes (once "ready" is said)
        self.changed = threading.Event()
        self._events = _Events(version=0, state_changed=_STATE_CB(self._on_state),
                               param_changed=_PARAM_CB(self._on_param))
        lib.pw_init(None, None)
        self.loop = lib.pw_thread_loop_new(b"portrait-cam-pipewire", None)
        items = [(k.encode(), str(v).encode()) for k, v in cfg["properties"].items()]
        arr = (_DictItem * len(items))(*[_DictItem(k, v) for k, v in items])
        props = lib.pw_properties_new_dict(ctypes.byref(_Dict(0, len(items), arr)))
        self.stream = lib.pw_stream_new_simple(lib.pw_thread_loop_get_loop(self.loop),
                                               cfg["properties"]["node.name"].encode(), props,
                                               ctypes.byref(self._events), None)
        if not self.stream:
            raise RuntimeError("libpipewire could not create the stream")
        rate = tuple(cfg["rate"])
        offers = [pod.enum_format(f, self.width, self.height, rate) for f in pod.offer_order(cfg["prefer"])]
        arr, self._keep = _params(offers)
        self.lib.pw_thread_loop_lock(self.loop)
        try:
            res = lib.pw_stream_connect(self.stream, _OUTPUT, _ANY_ID, _FLAG_DRIVER | _FLAG_MAP_BUFFERS, arr,
                                        len(offers))
        finally:
            self.lib.pw_thread_loop_unlock(self.loop)
        if res < 0:
            raise RuntimeError(f"pw_stream_connect failed ({res})")
        if lib.pw_thread_loop_start(self.loop) < 0:
            raise RuntimeError("the PipeWire thread did not start")

    # callbacks: PipeWire's thread, with the loop lock held
    def _on_state(self, _data, _old, state, error) -> None:
        self.state = state
        if state == _STATE_ERROR:
            self.error = (error or b"stream error").decode(errors="replace")
        self.changed.set()
        if self.announce:
            self.say_state()

    def say_state(self) -> None:
        """``state streaming`` while an app reads the camera, ``state paused`` when none does."""
        if self.state in (_STATE_PAUSED, _STATE_STREAMING):
            _say(f"state {'streaming' if self.state == _STATE_STREAMING else 'paused'}")

    def _on_param(self, _data, param_id, param) -> None:
        if param_id != pod.PARAM_FORMAT:
            return
        if not param:
            self.format = None
            return
        size = int.from_bytes(ctypes.string_at(param, 4), "little")  # the POD's body, after its 8-byte header
        try:
            got = pod.parse_format(ctypes.string_at(param, 8 + size))
        except ValueError as e:
            self.error = f"unreadable format from the consumer ({e})"
            return
        fmt = got.get("format")
        if fmt not in pod.SPA_FORMATS:
            self.format = None
            return
        planes, total = pod.layout(fmt, self.width, self.height)
        arr, _keep = _params([pod.buffers_param(total, planes[0][1])])
        self.lib.pw_stream_update_params(self.stream, arr, 1)  # copied: the blobs may go after the call
        self.format = fmt
        _say(f"format {fmt} {got.get('width', self.width)}x{got.get('height', self.height)}")

    def wait_ready(self, timeout: float) -> str | None:
        """None once the node exists, else why not."""
        deadline = time.monotonic() + timeout
        while self.state < _STATE_PAUSED and self.error is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return f"no PipeWire node after {timeout:.0f} s"
            self.changed.wait(min(left, 0.1))
            self.changed.clear()
        return self.error

    def send(self, frames: dict) -> None:
        """Fill one buffer with the frame in the negotiated format (nothing while no consumer)."""
        fmt = self.format
        if fmt is None or self.state != _STATE_STREAMING:
            return
        data = frames.get(fmt)
        if data is None:
            return
        lib = self.lib
        lib.pw_thread_loop_lock(self.loop)
        try:
            if self.format != fmt:
                return  # renegotiated meanwhile: the next tick sends the new format
            b = lib.pw_stream_dequeue_buffer(self.stream)
            if not b:
                return  # all buffers are with the consumer
            d = b.contents.buffer.contents.datas[0]
            stride = pod.layout(fmt, self.width, self.height)[0][0][1]  # the first plane's
            if d.data and d.maxsize >= len(data):
                ctypes.memmove(d.data, data, len(data))
                d.chunk.contents.offset, d.chunk.contents.size, d.chunk.contents.stride = 0, len(data), stride
            else:
                d.chunk.contents.size = 0
            lib.pw_stream_queue_buffer(self.stream, b)
            if lib.pw_stream_is_driving(self.stream):
                lib.pw_stream_trigger_process(self.stream)
        finally:
            lib.pw_thread_loop_unlock(self.loop)

    def close(self) -> None:
        self.lib.pw_thread_loop_lock(self.loop)
        self.lib.pw_stream_destroy(self.stream)  # the node leaves the graph now
        self.lib.pw_thread_loop_unlock(self.loop)
        self.lib.pw_thread_loop_stop(self.loop)
        self.lib.pw_thread_loop_destroy(self.loop)


def probe() -> dict:
    """What loads: ``library`` (why libpipewire does not) or its ``version`` and whether a
    ``context`` can be made (that needs PipeWire's SPA support plugins and client config)."""
    try:
        lib = load_library()
    except (OSError, AttributeError) as e:
        return {"library": str(e) or type(e).__name__}
    lib.pw_init(None, None)
    loop = lib.pw_thread_loop_new(b"portrait-cam-probe", None)
    context = lib.pw_context_new(lib.pw_thread_loop_get_loop(loop), None, 0) if loop else None
    if context:
        lib.pw_context_destroy(context)
    if loop:
        lib.pw_thread_loop_destroy(loop)
    return {"version": lib.pw_get_library_version().decode(), "path": lib._name, "context": bool(context)}


def main(argv: list[str]) -> int:
    if argv[1:] == ["--probe"]:
        _say(json.dumps(probe()))
        return 0
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which closes stdin
    cfg = json.loads(argv[1])
    try:
        lib = load_library()
    except (OSError, AttributeError) as e:
        _say(f"error: libpipewire-0.3 does not load ({e})")
        return 3
    try:
        node = Node(lib, cfg)
    except RuntimeError as e:
        _say(f"error: {e}")
        return 4
    why = node.wait_ready(float(cfg.get("start_timeout", 15.0)))
    if why is not None:
        _say(f"error: {why}")
        node.close()
        return 4
    w, h, fed, size = cfg["width"], cfg["height"], cfg["src_format"], cfg["frame_bytes"]
    latest = [(pod.black(fed, w, h), 0)]  # (frame, serial), replaced whole; black: never the raw camera
    ended = threading.Event()

    def read_frames() -> None:
        # the newest complete frame wins; EOF (the parent closed the camera or died) ends the stream
        stdin = sys.stdin.buffer
        while True:
            data = stdin.read(size)
            if len(data) < size:
                break
            latest[0] = (data, latest[0][1] + 1)
        ended.set()

    reader = threading.Thread(target=read_frames, name="portrait-cam-pipewire-reader", daemon=True)
    reader.start()
    _say("ready")
    node.announce = True
    node.say_state()
    # This process keeps the rate (the last frame again when no new one came): it holds no
    # other work, so the parent's load does not make the camera stutter.
    period = 1.0 / float(cfg["fps"])
    next_t = time.monotonic()
    converted: dict = {}
    seen = None
    code = 0
    try:
        while not ended.is_set():
            if node.error:
                print(f"error: {node.error}", file=sys.stderr, flush=True)
                code = 5
                break
            data, serial = latest[0]
            fmt = node.format
            if serial != seen:
                converted, seen = {}, serial
            if fmt is not None and fmt not in converted:
                converted[fmt] = pod.frame_for(fmt, fed, data, w, h)
            node.send(converted)
            next_t += period
            delay = next_t - time.monotonic()
            if delay < -period:  # far behind (suspend, debugger): do not burst to catch up
                next_t, delay = time.monotonic(), 0.0
            ended.wait(max(0.0, delay))
    finally:
        node.close()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
