"""Focus: the One Euro filter on synthetic sequences, face choice, and the tracker with the real
MediaPipe face detector on real frames."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from conftest import DATA, talking_frame
from realtime.core.config import FocusConfig, FocusMode
from realtime.core.errors import ConfigError, FrameShapeError
from realtime.stages.filters import OneEuroFilter
from realtime.stages.focus import FocusTracker, MediaPipeFaceDetector, choose_face, parse_focus

FRAME_MS = 33


# -- One Euro filter ----------------------------------------------------------------------------

def test_one_euro_settles_after_a_step_within_n_frames():
    f = OneEuroFilter(0.5, 2.0)
    for i in range(10):
        f(0.5, i * FRAME_MS)
    out = [f(0.8, (10 + i) * FRAME_MS) for i in range(60)]
    settled = next(i for i, v in enumerate(out) if abs(v - 0.8) < 0.003)
    assert settled <= 30
    assert all(0.5 <= v <= 0.8 + 1e-9 for v in out), "no overshoot"


def test_one_euro_suppresses_noise():
    rng = np.random.default_rng(3)
    f = OneEuroFilter(0.5, 2.0)
    x = 0.6 + rng.normal(0, 0.01, 300)
    y = np.array([f(v, i * FRAME_MS) for i, v in enumerate(x)])
    assert np.std(y[30:]) < 0.35 * np.std(x[30:])
    assert abs(np.mean(y[30:]) - 0.6) < 0.005


def test_one_euro_speed_term_cuts_lag_when_leaning_in():
    """A ramp (leaning in over half a second): beta > 0 lags less than a plain low-pass."""
    ramp = np.concatenate([np.full(10, 0.5), np.linspace(0.5, 0.8, 15), np.full(30, 0.8)])
    lags = {}
    for beta in (0.0, 2.0):
        f = OneEuroFilter(0.5, beta)
        y = np.array([f(v, i * FRAME_MS) for i, v in enumerate(ramp)])
        lags[beta] = float(ramp[24] - y[24])  # behind at the end of the ramp
        if beta:
            assert abs(y[35] - 0.8) < 0.01  # a third of a second later it is there
    assert lags[2.0] < 0.5 * lags[0.0]


def test_one_euro_restarts_on_non_increasing_time():
    f = OneEuroFilter(0.5, 2.0)
    f(0.2, 0)
    f(0.2, 33)
    assert f(0.9, 33) == 0.9  # same timestamp: no dt, start over rather than divide by zero


# -- parsing and choice --------------------------------------------------------------------------

def test_parse_focus():
    assert parse_focus("0.7") == pytest.approx(0.7)
    assert parse_focus("640,360") == (640, 360)
    assert parse_focus("640x360") == (640, 360)
    assert parse_focus("auto") is None
    for bad in ("1.5", "-3,4", "a,b", "1,2,3", "near"):
        with pytest.raises(ConfigError):
            parse_focus(bad)


def test_choose_face_prefers_the_largest_but_sticks_to_the_tracked_one():
    small = (0.1, 0.1, 0.2, 0.2, 0.9)
    big = (0.5, 0.5, 0.75, 0.75, 0.9)
    bigger = (0.5, 0.1, 0.78, 0.38, 0.9)
    assert choose_face([small, big], None) == big
    assert choose_face([], big) is None
    assert choose_face([big, bigger], big) == big          # not clearly larger: stay
    huge = (0.0, 0.4, 0.5, 0.9, 0.9)
    assert choose_face([big, huge], big) == huge           # clearly larger: switch


# -- the tracker ---------------------------------------------------------------------------------

def _ramp_disparity(h: int, w: int) -> np.ndarray:
    """Disparity = x / w: the focus value tells where it was read."""
    return np.ascontiguousarray(np.broadcast_to(np.linspace(0, 1, w, dtype=np.float32), (h, w)))


@pytest.fixture(scope="module")
def face_frame():
    return talking_frame(0, size=(640, 360))


@pytest.fixture(scope="module")
def room_frame():
    return cv2.resize(cv2.imread(str(DATA / "depth" / "nyuv2" / "rgb_00000.jpg")), (640, 360))


def test_focus_is_on_the_real_face(face_frame):
    h, w = face_frame.shape[:2]
    disp = _ramp_disparity(h, w)
    matte = np.zeros((h, w), np.float32)
    matte[:, :100] = 1.0  # the "person" is somewhere else: the face must win
    with FocusTracker(FocusConfig()) as foc:
        v = foc.process(face_frame, 1, matte, disp)
        assert foc.source == "face" and foc.face is not None
        x0, y0, x1, y1, score = foc.face
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 and score > 0.5
        assert v == pytest.approx((x0 + x1) / 2, abs=0.02)


def test_no_face_falls_back_to_the_person_then_the_default(room_frame):
    h, w = room_frame.shape[:2]
    disp = _ramp_disparity(h, w)
    matte = np.zeros((h, w), np.float32)
    matte[:, 500:600] = 1.0
    with FocusTracker(FocusConfig()) as foc:
        v = foc.process(room_frame, 1, matte, disp)
        assert foc.source == "person" and v == pytest.approx(550 / 639, abs=0.01)
    with FocusTracker(FocusConfig(disparity=0.42)) as foc:
        v = foc.process(room_frame, 1, np.zeros((h, w), np.float32), disp)
        assert foc.source == "default" and v == pytest.approx(0.42)


def test_a_lost_face_is_held_then_released(face_frame, room_frame):
    h, w = face_frame.shape[:2]
    disp = _ramp_disparity(h, w)
    matte = np.zeros((h, w), np.float32)
    matte[:, 500:600] = 1.0
    cfg = FocusConfig(face_every_n_frames=1, face_hold_ms=200.0)
    with FocusTracker(cfg) as foc:
        foc.process(face_frame, 1, matte, disp)
        sources = [(foc.process(room_frame, 1 + i * FRAME_MS, matte, disp), foc.source)[1] for i in range(1, 12)]
    assert sources[:5] == ["face"] * 5          # 165 ms: still holding the face
    assert sources[-1] == "person"              # 363 ms: released


def test_fixed_point_and_override(face_frame):
    h, w = face_frame.shape[:2]
    disp = _ramp_disparity(h, w)
    matte = np.zeros((h, w), np.float32)
    with FocusTracker(FocusConfig(mode=FocusMode.FIXED, disparity=0.33)) as foc:
        assert foc.process(face_frame, 1, matte, disp) == pytest.approx(0.33)
    with FocusTracker(FocusConfig(mode=FocusMode.POINT, point_x=0.25, point_y=0.5)) as foc:
        assert foc.process(face_frame, 1, matte, disp) == pytest.approx(0.25, abs=0.01)
        foc.override = 0.9
        assert foc.process(face_frame, 2, matte, disp) == pytest.approx(0.9)
        foc.override = (w - 1, 10)  # a clicked pixel: focus pulls there like a lens, not in one jump
        pulled = [foc.process(face_frame, 3 + i * FRAME_MS, matte, disp) for i in range(40)]
        assert pulled[0] < 0.9 and pulled[-1] == pytest.approx(1.0, abs=0.01)
        assert (np.diff(pulled) >= -1e-9).all()
        foc.override = None
        assert foc.process(face_frame, 2000, matte, disp) < 0.99  # back to the point, smoothly
    with FocusTracker(FocusConfig(mode=FocusMode.PERSON)) as foc:
        with pytest.raises(FrameShapeError):
            foc.process(face_frame, 1, matte[:-1], disp)


def test_focus_follows_a_lean_in_without_jitter(face_frame):
    """The face's disparity rises over half a second (leaning in), with noise on top."""
    h, w = face_frame.shape[:2]
    matte = np.ones((h, w), np.float32)
    rng = np.random.default_rng(5)
    target = np.concatenate([np.full(20, 0.6), np.linspace(0.6, 0.85, 15), np.full(25, 0.85)])
    out = []
    with FocusTracker(FocusConfig()) as foc:
        for i, t in enumerate(target):
            disp = np.full((h, w), t, np.float32) + rng.normal(0, 0.003, (h, w)).astype(np.float32)
            out.append(foc.process(face_frame, 1 + i * FRAME_MS, matte, disp))
            assert foc.source == "face"
    out = np.array(out)
    assert np.sum(np.abs(np.diff(out[5:20]))) < 0.01                # still: no jitter
    assert abs(out[34] - 0.85) < 0.03                               # little lag at the end of the lean
    assert abs(out[45] - 0.85) < 0.005                              # settled a third of a second later


class _BrokenDetector:
    """Fault injection through the FaceBackend protocol: a detector that starts failing."""

    def __init__(self) -> None:
        self.inner = MediaPipeFaceDetector()
        self.calls = 0

    def detect(self, rgb):
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("injected failure")
        return self.inner.detect(rgb)

    def close(self):
        self.inner.close()


class _CountingDetector:
    """The real detector, its runs counted (on which frames)."""

    def __init__(self) -> None:
        self.inner = MediaPipeFaceDetector()
        self.frames: list[int] = []
        self.frame = 0

    def detect(self, rgb):
        self.frames.append(self.frame)
        return self.inner.detect(rgb)

    def close(self):
        self.inner.close()


def _face_matte(face_frame) -> np.ndarray:
    """A matte over the face and shoulders of the talking frame (what segmentation gives)."""
    with FocusTracker(FocusConfig()) as foc:
        h, w = face_frame.shape[:2]
        foc.process(face_frame, 1, np.ones((h, w), np.float32), _ramp_disparity(h, w))
        x0, y0, x1, y1, _ = foc.face
    matte = np.zeros((h, w), np.float32)
    matte[int(y0 * h):, max(0, int((2 * x0 - x1) * w)):int((2 * x1 - x0) * w)] = 1.0
    return matte


@pytest.mark.parametrize("change", ["none", "face off the matte", "someone enters"])
def test_a_still_face_is_detected_less_often_until_something_moves(face_frame, change):
    """Two agreeing detections space the detector out by face_still_factor; a face that leaves
    the matte under its box, or a person entering (the matte's share of the frame moves), brings
    a detection on that very frame."""
    h, w = face_frame.shape[:2]
    disp = _ramp_disparity(h, w)
    matte = _face_matte(face_frame)
    det = _CountingDetector()
    cfg = FocusConfig(face_every_n_frames=6, face_still_factor=3)
    with FocusTracker(cfg, face_backend=det) as foc:
        for i in range(1, 61):
            det.frame = i
            m = matte
            if change != "none" and i >= 40:
                m = matte.copy()
                if change == "face off the matte":
                    m[:] = 0.0
                    m[:, :w // 5] = 1.0  # the person moved aside
                else:
                    m[h // 3:, :w // 5] = 1.0  # a second person at the left edge
            foc.process(face_frame, i * FRAME_MS, m, disp)
            assert foc.face is not None
    # 1 and 7 agree: then every 18th frame (25, 43) while nothing moves
    assert det.frames[:3] == [1, 7, 25], det.frames
    if change == "none":
        assert det.frames == [1, 7, 25, 43], det.frames
    elif change == "someone enters":  # looked at once, then spaced out again (same face, on the matte)
        assert det.frames == [1, 7, 25, 40, 58], det.frames
    else:  # a face the matte does not cover is not trusted to stay put: every 6th frame
        assert det.frames == [1, 7, 25, 40, 46, 52, 58], det.frames
    with FocusTracker(FocusConfig(face_every_n_frames=6, face_still_factor=1), face_backend=_CountingDetector()) as foc:
        for i in range(1, 31):
            foc._face_backend.frame = i
            foc.process(face_frame, i * FRAME_MS, matte, disp)
        assert foc._face_backend.frames == [1, 7, 13, 19, 25], foc._face_backend.frames


def test_a_failing_face_detector_falls_back_to_the_person(face_frame, caplog):
    h, w = face_frame.shape[:2]
    disp = _ramp_disparity(h, w)
    matte = np.zeros((h, w), np.float32)
    matte[:, 500:600] = 1.0
    with caplog.at_level(logging.WARNING, logger="realtime.stages.focus"):
        with FocusTracker(FocusConfig(face_every_n_frames=1), face_backend=_BrokenDetector()) as foc:
            foc.process(face_frame, 1, matte, disp)
            assert foc.source == "face"
            for i in range(2, 6):
                foc.process(face_frame, i * FRAME_MS, matte, disp)
            assert foc.source == "person"
    assert len([r for r in caplog.records if "face detector failed" in r.getMessage()]) == 1


def test_configure_keeps_the_focus_gliding(face_frame):
    h, w = face_frame.shape[:2]
    matte = np.ones((h, w), np.float32)
    with FocusTracker(FocusConfig()) as foc:
        foc.process(face_frame, 1, matte, np.full((h, w), 0.5, np.float32))
        foc.configure(FocusConfig(min_cutoff_hz=0.1, beta=0.0, face_min_confidence=0.6))
        v = foc.process(face_frame, 34, matte, np.full((h, w), 0.9, np.float32))
        assert 0.5 < v < 0.6  # slower filter, same state: no jump
        assert foc.source == "face"  # the detector came back with the new threshold
