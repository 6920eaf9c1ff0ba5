"""The PipeWire camera for real: a private PipeWire + WirePlumber session, ``run.py --output
pipewire``, the node found with pw-dump by its properties, frames read back with pipewiresrc
and compared with a file job on the same input, the rate measured, the node gone at the end.

Skips with the reason when the session cannot start here; under CI=true it fails instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import vcam_capture
from conftest import DATA, ROOT
from pw_session import PipeWireSession, capture, finish, stop_capture, unavailable

CLIP = DATA / "talking" / "5.mp4"
SIZE = (320, 320)
SIZE_ARG = "320x320"


@pytest.fixture(scope="module")
def session():
    from realtime.io.pipewire import check_bindings

    ok, why = check_bindings()
    if not ok:
        unavailable(why)
    s = PipeWireSession().start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def in_session(session, monkeypatch):
    """This test process talks to the private session (in-process sinks)."""
    for k in ("XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(k, session.env[k])
    for k in [k for k in os.environ if k.startswith("PIPEWIRE_")]:
        monkeypatch.delenv(k)
    return session


def _run_py(session, cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], env=session.env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _load(npz: Path) -> tuple[np.ndarray, np.ndarray, str]:
    with np.load(npz) as z:
        return z["frames"], z["times"], str(z["format"])


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b).mean())


def _nearest(frame: np.ndarray, refs) -> float:
    return min(_diff(frame, r) for r in refs)


def _raw(size=SIZE) -> list[np.ndarray]:
    from realtime.io.sources import VideoFileSource

    with VideoFileSource(CLIP, size=size) as src:
        return [f.frame for f in src]


@pytest.fixture(scope="module")
def file_job(session, tmp_path_factory) -> list[np.ndarray]:
    """The reference: a file job on the same input (120 processed frames)."""
    ref = tmp_path_factory.mktemp("ref") / "frames"
    rc, _, err = finish(_run_py(session, ref.parent, "--input", str(CLIP), "--size", SIZE_ARG, "--frames", "120",
                                "--output", f"{ref}/", "--quiet"))
    assert rc == 0, err
    refs = [cv2.imread(str(p)) for p in sorted(ref.glob("*.png"))]
    assert len(refs) == 120
    return refs


def test_node_carries_the_processed_frames_and_leaves(session, file_job, tmp_path):
    """The run offers I420 first; the app asks for YUY2 and gets the processed frames in it."""
    n, refs = 120, file_job  # the run's length; the capture takes 20 processed frames from the middle of it
    # the run goes on for longer than the capture: a reader still linked when a node goes away
    # is not what is tested here (pipewiresrc 0.3 may crash then)
    run = _run_py(session, tmp_path, "--input", str(CLIP), "--size", SIZE_ARG, "--frames", str(n), "--fps",
                  "30", "--output", "pipewire")
    try:
        node = session.wait_node(proc=run, media_class="Video/Source", media_role="Camera",
                                 node_description="Portrait Cam")
        props = node["info"]["props"]
        assert props["node.name"] == "portrait-cam"
        offered = [p.get("format") for p in (node["info"].get("params") or {}).get("EnumFormat", [])]
        cap = capture(session, "portrait-cam", tmp_path / "cap.npz", frames=20, seconds=240, skip_black=True,
                      caps="video/x-raw,format=YUY2")
        crc, out, cerr = finish(cap)
        assert crc == 0, cerr
        rc, _, err = finish(run)
        assert rc == 0, err
        assert ("PipeWire camera 'Portrait Cam' (node portrait-cam, I420 first, also YUY2/NV12/UYVY/BGRx/RGBx; "
                "30 fps)") in err
        assert session.wait_gone(node_name="portrait-cam"), "the node outlived the run"
    finally:
        for p in (run,):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    frames, times, fmt = _load(tmp_path / "cap.npz")
    assert offered == ["I420", "YUY2", "NV12", "UYVY", "BGRx", "RGBx"], offered
    assert fmt == "YUY2" and frames.shape[1:] == (SIZE[1], SIZE[0], 3)
    shown = list(frames)
    assert len(shown) == 20 and all(f.mean() > 8 for f in shown)
    raw = _raw()[:n]
    to_ref = [_nearest(f, refs) for f in shown]
    to_raw = [_nearest(f, raw) for f in shown]
    print(f"mean abs difference to the file job's frames: median {np.median(to_ref):.2f}, max {max(to_ref):.2f}; "
          f"to the raw input: median {np.median(to_raw):.2f}")
    # the processed frames after YUY2 (4:2:2 chroma, BT.601 limited range) and back
    assert np.median(to_ref) < 1.5 and max(to_ref) < 3.0, (np.median(to_ref), max(to_ref))
    assert min(r - p for r, p in zip(to_raw, to_ref)) > 0.5, "a frame looked as much like the raw input"


def test_named_camera_keeps_its_rate_live_and_leaves_on_sigterm(session, tmp_path):
    run = _run_py(session, tmp_path, "--input", str(CLIP), "--size", SIZE_ARG, "--live", "--fps", "30",
                  "--output", "pipewire:Test Cam", "--vcam-format", "yuyv", "--quiet")
    try:
        node = session.wait_node(proc=run, node_description="Test Cam")
        props = node["info"]["props"]
        assert props["node.name"] == "portrait-cam.test-cam"
        assert props["media.class"] == "Video/Source" and props["media.role"] == "Camera"
        # processing runs (not black start-up frames any more), then 6 s of capture for the rate
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            crc, _, cerr = finish(capture(session, "portrait-cam.test-cam", tmp_path / "probe.npz", frames=5))
            assert crc == 0, cerr
            if _load(tmp_path / "probe.npz")[0][-1].mean() > 8:
                break
        cap = capture(session, "portrait-cam.test-cam", tmp_path / "cap.npz", seconds=6.0)
        crc, _, cerr = finish(cap)
        assert crc == 0, cerr
        formats = [p for p in (session.nodes(node_name="portrait-cam.test-cam")[0]["info"].get("params") or {})
                   .get("EnumFormat", [])]
        run.send_signal(signal.SIGTERM)
        rc, _, err = finish(run, 60)
        assert rc in (0, 130), err  # a clean stop (130: the interrupt reached it outside the loop)
        assert session.wait_gone(node_name="portrait-cam.test-cam"), "the node outlived SIGTERM"
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    frames, times, fmt = _load(tmp_path / "cap.npz")
    assert fmt == "YUY2"
    assert formats and formats[0].get("format") == "YUY2", formats
    assert formats[0].get("size") == {"width": SIZE[0], "height": SIZE[1]}, formats
    assert formats[0].get("framerate") == {"num": 30, "denom": 1}, formats
    gaps = np.diff(times)
    rate = (len(times) - 1) / (times[-1] - times[0])
    print(f"live rate {rate:.2f} fps, median gap {np.median(gaps) * 1000:.1f} ms, max {gaps.max() * 1000:.0f} ms")
    assert 27.0 < rate < 33.0, rate
    assert abs(np.median(gaps) - 1 / 30) < 0.006, np.median(gaps)
    assert gaps.max() < 0.25, gaps.max()


@pytest.mark.parametrize("how", ["ctrl-c", "crash", "segfault"])
def test_node_is_removed_when_the_process_stops(session, tmp_path, how):
    """Ctrl-C in a terminal reaches the whole process group; a crash (SIGKILL of the group) runs no
    clean-up code; a segfault of the main process alone leaves the streaming process to notice."""
    run = _run_py(session, tmp_path, "--input", str(CLIP), "--size", SIZE_ARG, "--live",
                  "--output", f"pipewire:{how} Cam", "--quiet")
    name = f"portrait-cam.{how}-cam"
    try:
        session.wait_node(proc=run, node_name=name)
        if how == "segfault":
            os.kill(run.pid, signal.SIGSEGV)
        else:
            os.killpg(run.pid, signal.SIGINT if how == "ctrl-c" else signal.SIGKILL)
        rc = run.wait(60)
        assert session.wait_gone(node_name=name), "the node outlived its process"
        if how == "ctrl-c":
            assert rc in (0, 130), rc  # 130 when it came during start-up
        elif how == "segfault":
            assert rc == -signal.SIGSEGV, rc
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        run.communicate()
        try:
            os.killpg(run.pid, signal.SIGKILL)  # the group: nothing of it may outlive the test
        except ProcessLookupError:
            pass


def _frames_in(session, node_name: str, path: Path):
    return capture(session, node_name, path, seconds=60, caps="video/x-raw")


def test_fail_closed_and_repeat_last_frame_through_pipewire(in_session, tmp_path):
    from test_failsafe import _run

    from realtime.io.sinks import PipeWireSink

    pw = PipeWireSink("Failsafe Cam", fmt="bgr", fps=30)  # BGRx: the exact pixels come back
    pw.open(*SIZE, 30)
    try:
        assert in_session.wait_node(node_name="portrait-cam.failsafe-cam")
        assert pw.readers() == 0 and pw.has_readers() is False and pw.node_state() in ("idle", "suspended")
        assert pw.readers_present() is False
        cap = _frames_in(in_session, "portrait-cam.failsafe-cam", tmp_path / "cap.npz")
        deadline = time.monotonic() + 20
        while pw.readers() != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pw.has_readers() is True and pw.node_state() == "running"
        deadline = time.monotonic() + 10
        while not pw.readers_present() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pw.readers_present() is True  # what idle mode asks, answered by the node's own state
        rec, report = _run("stall", start=3, stop=6, frames=40, live=True, extra_sinks=[pw])
        crc, _, cerr = stop_capture(cap)
    finally:
        pw.close()
        if "cap" in locals():
            stop_capture(cap)
    assert in_session.wait_gone(node_name="portrait-cam.failsafe-cam")
    assert crc == 0, cerr
    frames, times, fmt = _load(tmp_path / "cap.npz")
    assert fmt == "BGRx"
    assert report.failed_frames > 0
    raw = _raw()
    shown = [(i, f) for i, f in enumerate(frames) if f.any()]
    matches = []
    for i, f in shown:
        d = [_diff(f, r) for r in rec.frames]
        j = int(np.argmin(d))
        assert d[j] == 0.0, f"captured frame {i} is none of the frames the loop sent ({d[j]:.2f})"
        matches.append(j)
        assert _nearest(f, raw) > 0.5, f"captured frame {i} shows the raw camera"
    failed = [rec.frames[j] for j, ok in enumerate(rec.ok) if not ok]
    # (a fail-closed frame is the last good one for a short gap, then a blurred one)
    assert any(min(_diff(f, g) for g in failed) == 0.0 for _, f in shown), "no fail-closed frame came through"
    # the segmenter stalled for 3 x 0.6 s: the node kept its rate by repeating the last frame
    gaps = np.diff(times[[i for i, _ in shown]])
    assert gaps.max() < 0.2, gaps.max()
    assert sum(a == b for a, b in zip(matches, matches[1:])) >= 10


# format -> the largest mean difference allowed to the frame sent (YUV: chroma subsampling and
# BT.601 limited range there and back; RGB: the exact pixels)
FORMATS = {"YUY2": 2.0, "I420": 3.0, "BGRx": 0.0, "NV12": 3.0, "RGBx": 0.0, "UYVY": 2.0}


def test_each_app_gets_the_format_it_asks_for(in_session, file_job, tmp_path):
    """One node offers every format; apps asking for YUY2, I420, BGRx, NV12, RGBx, UYVY one after
    another each get the file job's frames in that format (and an app asking for nothing in
    particular gets the --vcam-format one, offered first)."""
    from realtime.io.sinks import OutputFrame, PipeWireSink

    pw = PipeWireSink("Format Cam", fmt="nv12", fps=30)
    pw.open(*SIZE, 30)
    stop = threading.Event()

    def feed():  # the file job's frames, at 30 fps, over and over
        i = 0
        while not stop.is_set():
            f = file_job[i % len(file_job)]
            pw.write(OutputFrame(f, None, None, f"{i:06d}", i, time.perf_counter()))
            i += 1
            stop.wait(1 / 30)

    feeder = threading.Thread(target=feed, name="test-feed")
    feeder.start()
    results = {}
    try:
        node = in_session.wait_node(node_name="portrait-cam.format-cam")
        offers = (node["info"].get("params") or {}).get("EnumFormat", [])
        for caps, want in [("video/x-raw", "NV12")] + [(f"video/x-raw,format={f}", f) for f in FORMATS]:
            crc, _, cerr = finish(capture(in_session, "portrait-cam.format-cam", tmp_path / "cap.npz", frames=8,
                                          seconds=60, skip_black=True, caps=caps), 120)
            assert crc == 0, f"{caps}: {cerr}"
            frames, _, fmt = _load(tmp_path / "cap.npz")
            results[caps] = (fmt, [_nearest(f, file_job) for f in frames], pw._cam._backend.negotiated)
    finally:
        stop.set()
        feeder.join()
        pw.close()
    assert in_session.wait_gone(node_name="portrait-cam.format-cam")
    assert [o.get("format") for o in offers] == ["NV12", "I420", "YUY2", "UYVY", "BGRx", "RGBx"], offers
    assert all(o.get("size") == {"width": SIZE[0], "height": SIZE[1]} and o.get("framerate") == {"num": 30, "denom": 1}
               for o in offers), offers
    for caps, (fmt, diffs, said) in results.items():
        want = caps.split("format=")[1] if "format=" in caps else "NV12"
        print(f"{caps}: got {fmt}, mean abs difference to the file job's frames: max {max(diffs):.2f}")
        assert fmt == want and said == want, (caps, fmt, said)
        assert max(diffs) <= FORMATS[want], (caps, diffs)


def test_camera_unavailable_card_through_pipewire(in_session, tmp_path):
    from test_failsafe import LiveRecorder
    from test_sources import FlakyReader

    from realtime import Pipeline, load_preset
    from realtime.app.loop import run_stream
    from realtime.io.sinks import PipeWireSink
    from realtime.io.sources import LiveSource

    reader, rec = FlakyReader(), LiveRecorder()
    unplugged = []

    def unplug_once():
        if len(rec.frames) >= 15 and not unplugged:
            reader.unplugged_until = time.monotonic() + 1.5
            unplugged.append(time.monotonic())

    with Pipeline(load_preset("blur-only")) as pipe, LiveSource(reader, loss_timeout=0.5) as src:
        pw = PipeWireSink("Card Cam", fmt="bgr", fps=30)
        pw.open(*src.size, 30)
        try:
            in_session.wait_node(node_name="portrait-cam.card-cam")
            cap = _frames_in(in_session, "portrait-cam.card-cam", tmp_path / "cap.npz")
            while pw.readers() != 1 and cap.poll() is None:
                time.sleep(0.1)
            pipe.warmup(src.size)
            run_stream(pipe, src, [rec, pw], max_frames=40, hooks=[unplug_once])
            crc, _, cerr = stop_capture(cap)
        finally:
            pw.close()
            if "cap" in locals():
                stop_capture(cap)
    assert crc == 0, cerr
    frames, _, _ = _load(tmp_path / "cap.npz")
    cards = [f for f, ok in zip(rec.frames, rec.ok) if not ok]
    assert unplugged and rec.cards >= 3 and cards
    assert any(min(_diff(f, c) for c in cards) == 0.0 for f in frames), "no 'camera unavailable' card came through"


def test_virtualcam_and_pipewire_at_once(in_session, tmp_path):
    from realtime.app.cli import main

    backend = vcam_capture.register()
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("rc", main(
        ["--input", str(CLIP), "--size", SIZE_ARG, "--frames", "120", "--fps", "30", "--vcam-format", "bgr",
         "--output", "virtualcam", "--vcam-backend", vcam_capture.NAME, "--output", "pipewire",
         "--output", f"{tmp_path}/all/", "--quiet"])))
    worker.start()
    try:
        in_session.wait_node(node_name="portrait-cam", timeout=180)
        cap = capture(in_session, "portrait-cam", tmp_path / "cap.npz", frames=15, seconds=240, skip_black=True)
        crc, _, cerr = finish(cap)
    finally:
        worker.join(300)
    assert result.get("rc") == 0
    assert crc == 0, cerr
    frames, _, _ = _load(tmp_path / "cap.npz")
    written = [cv2.imread(str(p)) for p in sorted((tmp_path / "all").glob("*.png"))]
    sent = [f.reshape(SIZE[1], SIZE[0], 3) for f in backend.instances[-1].frames if f.any()]
    assert len(written) == 120 and len(sent) > 10 and len(frames) == 15
    # both cameras carried the loop's frames, exactly (each sends the newest at its own 30 fps)
    for name, got in (("virtualcam", sent), ("pipewire", frames)):
        for i, f in enumerate(got):
            assert min(_diff(f, w) for w in written) == 0.0, f"{name} frame {i} is none of the written frames"


def test_idle_while_nobody_reads_the_pipewire_camera(session, tmp_path):
    """A live run with only the PipeWire camera goes idle (the card, 'idle: no app is reading')
    while no app reads it, and an app that starts reading wakes it: the card, then processed frames."""
    from realtime.app.idle import idle_card, idle_status

    run = _run_py(session, tmp_path, "--input", str(CLIP), "--size", SIZE_ARG, "--live", "--fps", "30",
                  "--output", "pipewire:Idle Cam")
    err: list[str] = []
    drain = threading.Thread(target=lambda: err.extend(iter(run.stderr.readline, "")), name="test-stderr")
    drain.start()
    try:
        session.wait_node(proc=run, node_name="portrait-cam.idle-cam")
        deadline = time.monotonic() + 240
        while idle_status("Idle Cam") not in "".join(err) and idle_status() not in "".join(err):
            assert time.monotonic() < deadline and run.poll() is None, "".join(err)[-2000:]
            time.sleep(0.2)
        crc, _, cerr = finish(capture(session, "portrait-cam.idle-cam", tmp_path / "cap.npz", frames=90, seconds=120,
                                      skip_black=True))
        assert crc == 0, cerr
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) in (0, 130)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        drain.join(10)
        run.stdout.close()
    frames, _, _ = _load(tmp_path / "cap.npz")
    card = idle_card(SIZE)
    is_card = [_diff(f, card) < 3.0 for f in frames]
    print(f"frames read after idle: {sum(is_card)} cards first, then {len(is_card) - sum(is_card)} others")
    assert is_card[0], _diff(frames[0], card)  # what the app saw first: the idle card
    assert not any(is_card[-10:]), "the camera did not wake for the app"
    assert all(f.mean() > 8 for f in frames[-10:])


def test_default_output_picks_pipewire_and_says_so(session, tmp_path):
    rc, _, err = finish(_run_py(session, tmp_path, "--input", str(CLIP), "--size", SIZE_ARG, "--frames", "3"))
    assert rc == 0, err
    assert "no --output given: using pipewire (PipeWire session (WirePlumber))" in err
    assert "PipeWire camera 'Portrait Cam'" in err


def test_doctor_checks_the_pipewire_path(session, tmp_path):
    rc, out, err = finish(_run_py(session, tmp_path, "doctor", "--offline"))
    assert "[ ok ] PipeWire daemon:" in out and "[ ok ] PipeWire session manager: WirePlumber" in out, out
    assert "[ ok ] PipeWire Python bindings: libpipewire 0.3" in out and "through ctypes" in out, out
    assert "[ ok ] PipeWire SPA plugins: a client context loads" in out, out
    assert "not needed: the PipeWire camera works" in out or "v4l2loopback: " in out


# -- without a session: what the user sees when something is missing ----------------------------

def test_missing_library_says_what_to_install(tmp_path):
    """A libpipewire that does not load (a broken file found first on the library path): exit 2,
    one line naming the packages per distribution, nothing written; doctor says the same."""
    libs = tmp_path / "lib"
    libs.mkdir()
    (libs / "libpipewire-0.3.so.0").write_bytes(b"not a library")
    env = {**os.environ, "LD_LIBRARY_PATH": str(libs), "PYTHONPATH": str(ROOT)}
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "--input", str(CLIP), "--size", SIZE_ARG,
                        "--output", "pipewire", "--frames", "3"], env=env, cwd=work, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("portrait-cam: error: the PipeWire camera cannot start: PipeWire's client library "
                           "libpipewire-0.3 does not load"), line
    for cmd in ("sudo apt install", "libpipewire-0.3-0", "sudo dnf install", "pipewire-libs",
                "sudo pacman -S", "libpipewire"):
        assert cmd in line, cmd
    assert not any(work.iterdir())  # nothing written
    d = subprocess.run([sys.executable, str(ROOT / "run.py"), "doctor", "--offline"], env=env, cwd=work,
                       capture_output=True, text=True, timeout=120)
    assert "PipeWire Python bindings: libpipewire-0.3 does not load through ctypes" in d.stdout, d.stdout
    assert "sudo apt install libpipewire-0.3-0; Fedora: sudo dnf install pipewire-libs" in d.stdout


def test_no_pipewire_daemon_says_how_to_start_it(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("PIPEWIRE_REMOTE", None)
    env.pop("PIPEWIRE_RUNTIME_DIR", None)
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "--input", str(CLIP), "--size", SIZE_ARG,
                        "--output", "pipewire", "--frames", "3"], env=env, cwd=work, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(f"portrait-cam: error: the PipeWire camera cannot start: no PipeWire daemon at "
                           f"{tmp_path}/pipewire-0"), line
    assert "systemctl --user enable --now pipewire.socket wireplumber" in line and "sudo apt install pipewire" in line
    assert not any(work.iterdir())


@pytest.mark.parametrize("spec, expect", [
    ("pipewire:", "name the camera after the colon"),
    ("pipewire:  ", "name the camera after the colon"),
])
def test_bad_pipewire_spec_exits_2(spec, expect, capsys):
    from realtime.app.cli import main

    assert main(["--input", str(CLIP), "--output", spec]) == 2
    assert expect in capsys.readouterr().err


def test_default_output_falls_back_without_pipewire(monkeypatch):
    from realtime.app.cli import default_output
    from realtime.core.errors import VirtualCameraUnavailableError

    monkeypatch.setattr("realtime.io.pipewire.available", lambda *a: (False, "no PipeWire daemon at /x"))
    monkeypatch.setattr("realtime.io.sinks.loopback_devices", lambda *a: ["/dev/video7"])
    choice, why = default_output()
    assert choice == "virtualcam" and "/dev/video7" in why and "no PipeWire daemon at /x" in why
    monkeypatch.setattr("realtime.io.sinks.loopback_devices", lambda *a: [])
    monkeypatch.setenv("DISPLAY", ":99")
    assert default_output()[0] == "preview"
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(VirtualCameraUnavailableError, match="modprobe v4l2loopback.*no PipeWire camera"):
        default_output()
    monkeypatch.setattr("realtime.io.pipewire.available", lambda *a: (True, "PipeWire session (WirePlumber)"))
    assert default_output() == ("pipewire", "PipeWire session (WirePlumber)")
    assert default_output("test-capture")[0] == "virtualcam"  # an explicit backend wins


def test_doctor_without_a_session_names_the_fixes(tmp_path):
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "doctor", "--offline"], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    out = r.stdout
    assert f"PipeWire daemon: no PipeWire daemon at {tmp_path}/pipewire-0" in out, out
    assert "sudo apt install pipewire; Fedora: sudo dnf install pipewire; Arch: sudo pacman -S pipewire" in out
    assert "PipeWire session manager: not checked: no PipeWire daemon" in out
    assert "sudo apt install wireplumber" in out
