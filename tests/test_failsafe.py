"""Fault injection through the real pipeline: the output never shows the raw frame, keeps its
frame rate, and recovers on its own."""

from __future__ import annotations

import time

import numpy as np
import pytest

import vcam_capture
from conftest import DATA
from realtime import Pipeline, load_preset
from realtime.app.failsafe import Watchdog, privacy_frame
from realtime.app.loop import run_stream
from realtime.stages.segmentation import MediaPipeSegmenter
from realtime.io.sinks import NullSink, OutputFrame, PngFolderSink, Sink, VirtualCameraSink
from realtime.io.sources import LiveSource, ReplayReader, VideoFileSource

CLIP = DATA / "talking" / "5.mp4"
SIZE = (320, 320)


class FaultySegmenter:
    """The real MediaPipe segmenter, misbehaving on frames [start, stop) in a chosen way.
    ``calls`` counts frames (distinct timestamps): a first frame runs the model several times."""

    def __init__(self, mode: str, start: int, stop: int) -> None:
        self.inner = MediaPipeSegmenter("selfie_square")
        self.input_size = self.inner.input_size
        self.mode, self.start, self.stop = mode, start, stop
        self.calls = 0
        self._ts = None

    def segment(self, rgb, ts):
        if ts != self._ts:
            self._ts = ts
            self.calls += 1
        i = self.calls - 1
        conf = self.inner.segment(rgb, ts)
        if self.start <= i < self.stop:
            if self.mode == "raise":
                raise RuntimeError("injected model failure")
            if self.mode == "stall":
                time.sleep(0.6)
            if self.mode == "nan":
                conf = conf.copy()
                conf[::7, ::5] = np.nan
            if self.mode == "shape":
                return np.zeros((3, 3, 3), np.float32)
        return conf

    def close(self):
        self.inner.close()


class Recorder(Sink):
    kind = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[np.ndarray] = []
        self.ok: list[bool] = []

    def write(self, out: OutputFrame) -> None:
        self.frames.append(out.frame.copy())
        self.ok.append(out.result is not None)


def _raw_frames() -> list[np.ndarray]:
    with VideoFileSource(CLIP, size=SIZE) as src:
        return [f.frame for f in src]


@pytest.fixture(scope="module")
def raw():
    return _raw_frames()


def _run(mode: str, start=5, stop=12, frames=25, privacy=True, extra_sinks=(), live=False, short_gap_s=0.3):
    rec = Recorder()
    seg = FaultySegmenter(mode, start, stop)
    source = LiveSource(ReplayReader(CLIP, size=SIZE, fps=30)) if live else VideoFileSource(CLIP, size=SIZE)
    with Pipeline(load_preset("portrait"), segmentation_backend=seg) as pipe, source as src:
        pipe.warmup(SIZE)
        seg.calls = 0
        report = run_stream(pipe, src, [rec, *extra_sinks], max_frames=frames, privacy=privacy, deadline_ms=200,
                            short_gap_s=short_gap_s)
    return rec, report


def _never_raw(frames, raw):
    for f in frames:
        assert min(np.abs(f.astype(np.int16) - r).mean() for r in raw) > 0.5


@pytest.mark.parametrize("mode", ["raise", "nan", "shape"])
def test_faults_fail_closed_and_recover(mode, raw):
    rec, report = _run(mode)
    assert len(rec.frames) == 25
    assert report.failed_frames == 7
    _never_raw(rec.frames, raw)
    # failed frames were answered fail-closed, and processing recovered afterwards
    assert rec.ok == [True] * 5 + [False] * 7 + [True] * 13
    assert any(report.failures), report.failures
    # the first failed frame (milliseconds after the last good one) shows exactly that one
    assert np.array_equal(rec.frames[5], rec.frames[4])


def test_a_stall_shows_the_last_good_frame_untouched(raw):
    """The loop keeps the renderer's own buffer as its last good frame (no copy): the stalled
    calls, which finish rendering in the background while the loop answers fail-closed, and the
    calls after them must write elsewhere. With a long short-gap every failed frame shows it."""
    rec, report = _run("stall", start=3, stop=5, frames=60, live=True, short_gap_s=30.0)
    first_bad = rec.ok.index(False)
    assert first_bad >= 1 and report.failed_frames >= 10
    last_good = rec.frames[first_bad - 1]
    bad = [f for f, ok in zip(rec.frames, rec.ok) if not ok]
    assert all(np.array_equal(f, last_good) for f in bad), \
        [float(np.abs(f.astype(np.int16) - last_good).mean()) for f in bad]
    assert all(rec.ok[-10:]), rec.ok
    # and the frames after the recovery are new renders again, not the held one
    assert not np.array_equal(rec.frames[-1], last_good)


def test_renderer_never_writes_into_a_held_frame():
    """A held output stays as it was through later calls, one of which fails half-way; held or
    not, every call renders the same pixels (nothing carries over between the buffers)."""
    from realtime.core.errors import StageError

    frames = _raw_frames()[:8]
    preset = load_preset("portrait")
    with Pipeline(preset) as held, Pipeline(preset) as plain:
        kept = None
        for i, f in enumerate(frames):
            a = held.process(f, 33 * i)
            b = plain.process(f, 33 * i)
            assert np.array_equal(a.frame, b.frame), i
            if kept is not None:
                assert np.array_equal(kept[0], kept[1]), i  # the held frame did not change
                assert not np.shares_memory(a.frame, kept[0])
            if i % 3 != 2:  # hold most frames, not all: a frame not held may be overwritten
                assert held.hold_output(a.frame)
                kept = (a.frame, a.frame.copy())
        assert not held.hold_output(frames[0])  # not the renderer's: nothing held

        real = held.renderer.lens.render_disparity
        def half_then_fail(frame, disparity, focus, aperture, max_coc, matte, out, coc):
            out[: out.shape[0] // 2] = 0
            raise StageError("injected render failure")
        a = held.process(frames[0], 1000)
        assert held.hold_output(a.frame)
        kept = a.frame.copy()
        held.renderer.lens.render_disparity = half_then_fail
        with pytest.raises(StageError):
            held.process(frames[1], 1033)
        held.renderer.lens.render_disparity = real
        assert np.array_equal(a.frame, kept)


def test_stall_on_live_source_fails_closed_and_recovers(raw):
    rec, report = _run("stall", start=3, stop=5, frames=60, live=True)
    assert report.failed_frames >= 20  # ~1.2 s of stalls at 30 fps answered at once, not queued
    _never_raw(rec.frames, raw)
    assert all(rec.ok[-10:]), rec.ok
    assert any("stalled past 200 ms" in k for k in report.failures), report.failures


def test_privacy_off_passes_raw_frames_through(raw):
    rec, report = _run("raise", frames=10, privacy=False)
    failed = [f for f, ok in zip(rec.frames, rec.ok) if not ok]
    assert failed
    assert min(min(np.abs(f.astype(np.int16) - r).mean() for r in raw) for f in failed) < 0.01


def test_virtual_camera_rate_holds_during_stall(raw):
    backend = vcam_capture.register()
    vcam = VirtualCameraSink(fmt="bgr", backend=vcam_capture.NAME, fps=30)
    vcam.open(*SIZE, 30)
    try:
        rec, report = _run("stall", start=3, stop=6, frames=40, extra_sinks=[vcam], live=True)
    finally:
        vcam.close()
    cam = backend.instances[-1]
    gaps = np.diff(cam.times)
    assert len(cam.frames) > 10
    assert gaps.max() < 0.2, gaps.max()  # never starved, even while the segmenter stalls 0.6 s
    h, w = SIZE[1], SIZE[0]
    _never_raw([f.reshape(h, w, 3) for f in cam.frames[1:]], raw)


class ExplodingSink(Sink):
    kind = "exploding"

    def write(self, out):
        if out.index >= 3:
            raise OSError(28, "No space left on device")


def test_failing_sink_does_not_take_others_down(tmp_path):
    png = PngFolderSink(tmp_path / "png")
    png.open(*SIZE, 30)
    bad, null = ExplodingSink(), NullSink()
    with Pipeline(load_preset("blur-only")) as pipe, VideoFileSource(CLIP, size=SIZE) as src:
        report = run_stream(pipe, src, [bad, png, null], max_frames=8)
    assert report.frames == 8 and null.written == 8
    assert len(list((tmp_path / "png").glob("*.png"))) == 8
    assert report.failed_sinks and "No space left" in report.failed_sinks[0]


def test_watchdog_reports_exceptions_and_timeouts():
    def work(x):
        if x == "boom":
            raise ValueError("bad")
        if x == "slow":
            time.sleep(0.3)
        return x

    wd = Watchdog(work, 0.1)
    try:
        assert wd.call("a") == ("a", None)
        assert wd.call("boom")[1] == "ValueError: bad"
        assert "stalled past 100 ms" in wd.call("slow")[1]
        assert "still busy" in wd.call("b")[1]
        time.sleep(0.3)
        assert wd.call("c") == ("c", None)
    finally:
        wd.close()


def test_privacy_frame_hides_detail(raw):
    f = raw[0]
    p = privacy_frame(f)
    assert p.shape == f.shape and p.dtype == np.uint8
    # high-frequency detail is gone: neighbouring pixels barely differ
    assert np.abs(np.diff(p.astype(np.int16), axis=1)).mean() < 0.2 * np.abs(np.diff(f.astype(np.int16), axis=1)).mean()


class FaultyDepth:
    """The real depth model, raising or returning NaN on calls [start, stop)."""

    def __init__(self, mode: str, start: int, stop: int) -> None:
        from realtime.stages.depth import OnnxDepth
        from realtime.core.models import resolve

        self.inner = OnnxDepth(str(resolve("tcmonodepth_small")), threads=1)
        self.mode, self.start, self.stop = mode, start, stop
        self.calls = 0

    def infer(self, x):
        i = self.calls
        self.calls += 1
        out = self.inner.infer(x)
        if self.start <= i < self.stop:
            if self.mode == "raise":
                raise RuntimeError("injected depth failure")
            out = np.full_like(out, np.nan)
        return out

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("mode", ["raise", "nan"])
@pytest.mark.parametrize("asynchronous", [True, False])
def test_depth_faults_fail_closed_and_recover(mode, asynchronous, raw):
    rec = Recorder()
    depth = FaultyDepth(mode, 4, 8)
    preset = load_preset("portrait").replace({"depth": {"asynchronous": asynchronous, "still_interval": 1}})  # a model call per frame
    with Pipeline(preset, depth_backend=depth) as pipe, VideoFileSource(CLIP, size=SIZE) as src:
        report = run_stream(pipe, src, [rec], max_frames=20)
    assert len(rec.frames) == 20 and report.failed_frames >= 1
    _never_raw(rec.frames, raw)
    assert all(rec.ok[-6:]), rec.ok
    assert any("depth" in k for k in report.failures), report.failures


class LiveRecorder(Recorder):
    live_view = True

    def __init__(self) -> None:
        super().__init__()
        self.cards = 0
        self.times: list[float] = []

    def write(self, out: OutputFrame) -> None:
        super().write(out)
        self.times.append(time.monotonic())
        if out.index < 0:
            self.cards += 1


def test_camera_loss_shows_a_card_and_recovers(raw):
    from test_sources import FlakyReader

    reader = FlakyReader()
    rec = LiveRecorder()
    unplugged = []

    def unplug_once():
        if len(rec.frames) >= 15 and not unplugged:
            reader.unplugged_until = time.monotonic() + 1.5
            unplugged.append(time.monotonic())

    with Pipeline(load_preset("blur-only")) as pipe, LiveSource(reader, loss_timeout=0.5) as src:
        pipe.warmup(src.size)
        report = run_stream(pipe, src, [rec], max_frames=40, hooks=[unplug_once])
    assert unplugged and rec.cards >= 3  # the card was sent while the camera was gone
    assert report.camera_lost_s > 0.5
    assert all(rec.ok[-5:])  # processed frames again after the camera came back
    _never_raw([f for f in rec.frames if f.shape[:2] == raw[0].shape[:2]], _raw_frames_native())


def _raw_frames_native():
    with VideoFileSource(CLIP) as src:
        return [f.frame for f in src][:60]
