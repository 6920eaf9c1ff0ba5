"""An app going through the camera portal, as Firefox and Flatpak apps do (run as a script in the
test's private session):

    python tests/pw_portal.py OUT_DIR TARGET [TARGET...]

Records "yes" for camera access in the permission store (what the user's "Allow" in the portal's
dialog writes; the dialog itself needs someone to click), calls org.freedesktop.portal.Camera
AccessCamera and waits for its Response, then for each TARGET asks OpenPipeWireRemote for a
PipeWire connection (the one an app gets: only the cameras the session manager lets through are
visible on it) and reads frames from TARGET over it with pipewiresrc for a few seconds. Prints
one JSON line: ``response``, ``present`` (IsCameraPresent) and per target the frame count (frames
saved to OUT_DIR/TARGET.npz, decoded as tests/pw_capture.py does).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import gi
import numpy as np

gi.require_version("Gio", "2.0")
gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import Gio, GLib, Gst, GstVideo  # noqa: E402

from pw_capture import DECODE, tight  # noqa: E402  (same folder: this runs as a script)

PORTAL, PATH, CAMERA = "org.freedesktop.portal.Desktop", "/org/freedesktop/portal/desktop", "org.freedesktop.portal.Camera"


def access_camera(bus) -> int:
    bus.call_sync("org.freedesktop.impl.portal.PermissionStore", "/org/freedesktop/impl/portal/PermissionStore",
                  "org.freedesktop.impl.portal.PermissionStore", "SetPermission",
                  GLib.Variant("(sbssas)", ("devices", True, "camera", "", ["yes"])), None, 0, 20000, None)
    token = "portraitcam"
    request = f"{PATH}/request/{bus.get_unique_name()[1:].replace('.', '_')}/{token}"
    loop, got = GLib.MainLoop(), {}

    def on_response(_c, _s, _p, _i, _n, params):
        got["code"] = params.unpack()[0]
        loop.quit()

    bus.signal_subscribe(PORTAL, "org.freedesktop.portal.Request", "Response", request, None, 0, on_response)
    bus.call_sync(PORTAL, PATH, CAMERA, "AccessCamera",
                  GLib.Variant("(a{sv})", ({"handle_token": GLib.Variant("s", token)},)), None, 0, 20000, None)
    GLib.timeout_add_seconds(20, loop.quit)
    loop.run()
    return got.get("code", -1)


def read_through_portal(bus, target: str, seconds: float = 6.0, odd: list | None = None) -> list[np.ndarray]:
    res, fds = bus.call_with_unix_fd_list_sync(PORTAL, PATH, CAMERA, "OpenPipeWireRemote",
                                               GLib.Variant("(a{sv})", ({},)), None, 0, 20000, None, None)
    fd = fds.get(res.unpack()[0])
    pipe = Gst.parse_launch(f"pipewiresrc fd={fd} target-object={target} ! video/x-raw ! "
                            "appsink name=out sync=false max-buffers=8 drop=true")
    sink = pipe.get_by_name("out")
    pipe.set_state(Gst.State.PLAYING)
    frames, deadline = [], time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and len(frames) < 5:
            sample = sink.emit("try-pull-sample", int(0.2 * Gst.SECOND))
            if sample is None:
                continue
            try:
                info = GstVideo.VideoInfo.new_from_caps(sample.get_caps())
            except TypeError:  # not raw video (e.g. caps left unfixed): report it, take no frame
                if odd is not None:
                    odd.append(sample.get_caps().to_string())
                continue
            planes, decode = DECODE[info.finfo.name]
            buf = sample.get_buffer()
            data = np.frombuffer(buf.extract_dup(0, buf.get_size()), np.uint8)
            frame = decode(tight(data, info, planes), info.width, info.height)
            if frame.mean() > 8 or frames:  # past the black frames before the first picture
                frames.append(frame)
    finally:
        pipe.set_state(Gst.State.NULL)
    return frames


def main() -> int:
    out, targets = Path(sys.argv[1]), sys.argv[2:]
    Gst.init(None)
    bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
    present = bus.call_sync(PORTAL, PATH, "org.freedesktop.DBus.Properties", "Get",
                            GLib.Variant("(ss)", (CAMERA, "IsCameraPresent")), None, 0, 20000, None).unpack()[0]
    report = {"present": present, "response": access_camera(bus), "frames": {}, "odd caps": {}}
    if report["response"] == 0:
        for target in targets:
            odd: list = []
            frames = read_through_portal(bus, target, odd=odd)
            report["frames"][target] = len(frames)
            if odd:
                report["odd caps"][target] = sorted(set(odd))
            if frames:
                np.savez(out / f"{target}.npz", frames=np.stack(frames))
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
