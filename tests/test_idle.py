"""Idle mode: nobody reads the virtual camera -> camera released, models stopped, a cheap
placeholder at a low rate; an app opening the device starts everything again within a second.

The run is the real CLI on a clip played as a live camera (``--live``) into the capturing
pyvirtualcam backend (tests/vcam_capture.py); an app is a :class:`vcam_capture.Reader` that
opens the device, reads frames and closes it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np

import vcam_capture
from conftest import DATA
from realtime.app.cli import main
from realtime.app.idle import idle_card, idle_status
from realtime.io.readers import LoopbackReaders

CLIP = DATA / "talking" / "5.mp4"
SIZE = (320, 320)


def _clip_open() -> bool:
    """Whether this process holds the clip open (the 'camera' of a --live run)."""
    target = os.path.realpath(CLIP)
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                return True
        except OSError:
            continue
    return False


def _models_running() -> bool:
    return any(t.name == "portrait-cam-depth" for t in threading.enumerate())


def _wait(cond, timeout: float, step: float = 0.02) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(step)
    return None


def test_idle_until_a_reader_opens_the_virtual_camera(capsys):
    backend = vcam_capture.register()
    card = idle_card(SIZE)
    seen: dict = {}

    def is_card(frame: np.ndarray) -> bool:
        return np.array_equal(frame.reshape(card.shape), card)

    def scenario():
        try:
            if _wait(lambda: backend.instances, 180) is None:
                return
            cam = backend.instances[-1]
            # nobody reads: once running, it goes idle after the grace time
            seen["idle_after_s"] = _wait(lambda: not _clip_open() and not _models_running() and cam.frames
                                         and is_card(cam.frames[-1]), 90)
            time.sleep(0.5)
            n0, c0, t0 = len(cam.frames), time.process_time(), time.monotonic()
            time.sleep(2.0)
            seen["idle_fps"] = (len(cam.frames) - n0) / (time.monotonic() - t0)
            seen["idle_cores"] = (time.process_time() - c0) / (time.monotonic() - t0)
            seen["idle_frames_are_cards"] = all(is_card(f) for f in cam.frames[n0:])
            # an app opens the device: processed frames within a second
            with cam.open_reader() as reader:
                t_open = time.monotonic()
                seen["running_again"] = _wait(lambda: _clip_open() and _models_running(), 5)
                got = None
                while time.monotonic() - t_open < 5:
                    got = reader.read(timeout=0.5, after=None if got is None else got[0])
                    if got is not None and not is_card(got[1]) and got[1].any():
                        seen["first_frame_s"] = time.monotonic() - t_open
                        break
                time.sleep(1.0)
                n1, t1 = len(cam.frames), time.monotonic()
                time.sleep(1.0)
                seen["running_fps"] = (len(cam.frames) - n1) / (time.monotonic() - t1)
            # the app closes it: idle again
            seen["idle_again_s"] = _wait(lambda: not _clip_open() and not _models_running(), 30)
        finally:
            with lock:
                if running.is_set():
                    os.kill(os.getpid(), signal.SIGTERM)

    lock, running = threading.Lock(), threading.Event()
    helper = threading.Thread(target=scenario)
    running.set()
    helper.start()
    try:
        rc = main(["--input", str(CLIP), "--live", "--size", f"{SIZE[0]}x{SIZE[1]}", "--output", "virtualcam",
                   "--vcam-backend", vcam_capture.NAME, "--vcam-format", "bgr"])
    finally:
        with lock:
            running.clear()
        helper.join()
    err = capsys.readouterr().err
    assert seen.get("idle_after_s") is not None, seen
    assert rc == 0
    assert seen["idle_fps"] <= 4.0, seen            # a placeholder at a low rate keeps the device alive
    assert seen["idle_fps"] >= 1.0, seen
    assert seen["idle_frames_are_cards"], seen      # never a camera frame while idle
    assert seen["idle_cores"] < 0.1, seen           # nothing spent
    assert seen["running_again"] is not None, seen
    assert seen.get("first_frame_s") is not None and seen["first_frame_s"] < 1.0, seen
    assert seen["running_fps"] >= 20, seen
    assert seen["idle_again_s"] is not None, seen
    assert idle_status() in err and idle_status() == "idle: no app is reading Portrait Cam"
    cam = backend.instances[-1]
    assert cam.closed


def test_always_on_keeps_running_without_readers():
    backend = vcam_capture.register()
    rc = main(["--input", str(CLIP), "--live", "--size", f"{SIZE[0]}x{SIZE[1]}", "--output", "virtualcam",
               "--vcam-backend", vcam_capture.NAME, "--vcam-format", "bgr", "--frames", "90", "--quiet",
               "--always-on"])
    assert rc == 0
    cam = backend.instances[-1]
    card = idle_card(SIZE)
    # 90 processed frames at 30 fps is 3 s, past the 2 s grace: never a placeholder
    assert not any(np.array_equal(f.reshape(card.shape), card) for f in cam.frames)


def test_device_node_readers_are_seen_through_inotify_and_proc(tmp_path):
    """The v4l2loopback answer, on a plain file standing for the device node: another process
    opening it is a reader, this process (the writer) is not; its close is seen at once."""
    node = tmp_path / "video9"
    node.write_bytes(b"")
    mine = open(node, "rb")  # the writer's own handle does not count
    watch = LoopbackReaders(str(node))
    try:
        assert watch.readers_present() is False
        app = subprocess.Popen([sys.executable, "-c", "import sys, time; f = open(sys.argv[1], 'rb'); "
                                "print('open', flush=True); time.sleep(30)", str(node)], stdout=subprocess.PIPE, text=True)
        try:
            assert app.stdout.readline().strip() == "open"
            assert _wait(lambda: watch.readers_present(), 2.0) is not None
        finally:
            app.kill()
            app.wait()
        assert _wait(lambda: watch.readers_present() is False, 2.0) is not None
    finally:
        watch.close()
        mine.close()
