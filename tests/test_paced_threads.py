"""A live stream's kernels run on one thread while the frame is early (less CPU per frame), on
every thread as soon as it is not, and the frames are the same either way
(:class:`realtime.core.threads.PacedThreads`, ``capture.one_thread_share``)."""

from __future__ import annotations

import cv2
import numba
import numpy as np
import pytest

from conftest import DATA, FakeClock
from realtime.app.loop import run_stream
from realtime.app.scaling import QualityGovernor
from realtime.core.config import load_preset
from realtime.core.threads import PacedThreads
from realtime.io.memory import ArrayReader
from realtime.io.sinks import NullSink
from realtime.io.sources import LiveSource
from realtime.pipeline import Pipeline

INTERVAL = 1000.0 / 30.0
several_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                     reason="one Numba thread on this machine: nothing to choose from")


def _feed(p: PacedThreads, ms: float, n: int) -> None:
    for _ in range(n):
        p.observe(ms)


@several_threads
def test_one_thread_while_early_every_thread_when_late_and_a_growing_back_off():
    cv_before = cv2.getNumThreads()
    clock = FakeClock()
    p = PacedThreads(INTERVAL, 0.7, clock=clock)
    try:
        assert p.threads == p.all_threads
        _feed(p, 10.0, PacedThreads.WINDOW - 1)
        assert p.threads == p.all_threads  # a window first
        p.observe(10.0)
        assert p.threads == 1 and cv2.getNumThreads() == 1
        # one thread and late on 3 of the last 5 frames: every thread again, at once
        _feed(p, 15.0, 2)
        assert p.threads == 1
        _feed(p, 40.0, 3)
        assert p.threads == p.all_threads and cv2.getNumThreads() == cv_before
        # the measured ratio (one thread 15-40 ms against 10 ms) is now used, and not retried
        # before the back-off: early frames do not switch within it
        assert p.ratio > PacedThreads.RATIO
        _feed(p, 5.0, 3 * PacedThreads.WINDOW)
        assert p.threads == p.all_threads
        clock.t += PacedThreads.RETRY_S + 0.1
        _feed(p, 5.0, PacedThreads.WINDOW)
        assert p.threads == 1
        # slow on one thread by the window's median this time: back, and the back-off doubled
        _feed(p, 0.9 * INTERVAL, PacedThreads.WINDOW)
        assert p.threads == p.all_threads
        clock.t += PacedThreads.RETRY_S + 0.1
        _feed(p, 5.0, PacedThreads.WINDOW)
        assert p.threads == p.all_threads
        clock.t += PacedThreads.RETRY_S
        _feed(p, 5.0, PacedThreads.WINDOW)
        assert p.threads == 1
    finally:
        p.close()
    assert cv2.getNumThreads() == cv_before
    p.observe(1.0)  # a frame finishing after the stream ended changes nothing
    assert p.threads == p.all_threads and cv2.getNumThreads() == cv_before


@several_threads
def test_frames_that_would_not_fit_on_one_thread_keep_every_thread():
    p = PacedThreads(INTERVAL, 0.7, clock=FakeClock())
    # 25 ms on every thread is over 0.7 of 33 ms already
    _feed(p, 25.0, 5 * PacedThreads.WINDOW)
    assert p.threads == p.all_threads and p.switches == 0
    off = PacedThreads(INTERVAL, 0.0, clock=FakeClock())  # share 0: never
    _feed(off, 1.0, 5 * PacedThreads.WINDOW)
    assert off.threads == off.all_threads and off.switches == 0


@several_threads
def test_a_paced_pipeline_gives_the_same_frames_on_one_thread():
    frames = [np.ascontiguousarray(f) for f in _clip(36)]
    preset = load_preset("portrait").replace({"capture": {"one_thread_share": 1.0}})
    with Pipeline(preset) as paced, Pipeline(preset) as plain:
        paced.pace(30.0)
        threads = []
        for i, f in enumerate(frames):
            threads.append(paced.paced.threads)
            a = paced.process(f, 33 * i)
            b = plain.process(f, 33 * i)
            assert np.array_equal(a.frame, b.frame), f"frame {i} differs on {threads[-1]} thread(s)"
            assert np.array_equal(a.matte, b.matte)
            assert a.kernel_threads == threads[-1] and b.kernel_threads == 0
        assert threads[0] == numba.config.NUMBA_NUM_THREADS and threads[-1] == 1
        paced.pace(None)
        assert paced.paced is None


def test_the_loop_paces_a_live_source_and_lets_go_after():
    cv_before = cv2.getNumThreads()
    seen = []
    with Pipeline(load_preset("portrait")) as pipe:
        with LiveSource(ArrayReader(_clip(10), fps=30.0)) as live:
            run_stream(pipe, live, [NullSink()], max_frames=8,
                       on_result=lambda sf, r: seen.append(pipe.paced))
        assert seen and all(p is not None and p.interval_ms == pytest.approx(INTERVAL) for p in seen)
        assert pipe.paced is None
        # paced by the caller (a bench, a session of several streams): still paced after, with
        # what it learnt
        assert pipe.pace(30.0) and not pipe.pace(30.0)
        policy = pipe.paced
        with LiveSource(ArrayReader(_clip(10), fps=30.0)) as live:
            run_stream(pipe, live, [NullSink()], max_frames=8)
        assert pipe.paced is policy
        assert pipe.pace(25.0) and pipe.paced is not policy  # another rate: a new policy
        assert not pipe.pace(None) and pipe.paced is None
    assert cv2.getNumThreads() == cv_before


@several_threads
def test_the_quality_governor_ignores_frames_that_ran_on_one_thread():
    """A one-thread frame is slower by choice: it must not step the quality down."""
    preset = load_preset("portrait").replace({"capture": {"one_thread_share": 1.0}})
    seen, kinds = [], []

    class Counting(QualityGovernor):
        def observe(self, frame_ms, now=None):
            seen.append(frame_ms)
            return None

    with Pipeline(preset) as pipe:
        governor = Counting(pipe.apply, pipe.preset, 30.0)
        with LiveSource(ArrayReader(_clip(40), fps=30.0)) as live:
            run_stream(pipe, live, [NullSink()], max_frames=40, governor=governor,
                       on_result=lambda sf, r: kinds.append(None if r is None else r.kernel_threads))
    # (a frame past the stage deadline on a loaded machine fails closed: no result, not observed)
    assert 1 in kinds and len(seen) == sum(k is not None and k != 1 for k in kinds) > 0


def _clip(n: int) -> list[np.ndarray]:
    from realtime.devtools.testdata import read_video

    return [cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA) for f in read_video(DATA / "talking" / "4.mp4", n)]
