"""Person-centred segmentation: the model runs on a window around the people (real models,
real frames; see docs/matte.md)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import load_sequence, talking_frame
from realtime.core.config import SegModel, load_preset
from realtime.devtools import testdata
from realtime.devtools.metrics import iou
from realtime.stages.person_box import CropTracker, crop_for, person_box
from realtime.stages.segmentation import Segmenter


def _cfg(**kw):
    return dataclasses.replace(load_preset("portrait").segmentation, **kw)


def test_crop_geometry():
    conf = np.zeros((144, 256), np.float32)
    conf[40:100, 30:60] = 1.0   # one person
    conf[50:120, 200:230] = 0.9  # another: the box holds both
    conf[5, 5] = 1.0            # a speck: ignored
    assert person_box(conf) == (30.0, 40.0, 230.0, 120.0)
    assert person_box(np.zeros((9, 9), np.float32)) is None
    # a tall box gets a square window, grown by the margin, inside the frame
    x0, y0, x1, y1 = crop_for((600, 200, 700, 500), (1280, 720), 0.15)
    assert x1 - x0 == y1 - y0 and x0 <= 585 and x1 >= 715 and y0 <= 155 and y1 >= 545
    # a wide one a 16:9 window; near the edge it is shifted (not cut) into the frame
    x0, y0, x1, y1 = crop_for((0, 300, 500, 500), (1280, 720), 0.1)
    assert x0 == 0 and abs((x1 - x0) / (y1 - y0) - 16 / 9) < 0.02 and y1 <= 720
    # nearly everything: the whole frame
    assert crop_for((10, 10, 1270, 710), (1280, 720), 0.15) == (0, 0, 1280, 720)


def test_tracker_grows_at_once_holds_still_and_shrinks_in_steps():
    t = CropTracker()
    assert t.update((100, 100, 500, 500)) == (100, 100, 500, 500)
    assert t.update((110, 105, 490, 495)) == (100, 100, 500, 500)  # inside: no jitter
    assert t.update((90, 100, 500, 500)) == (90, 100, 500, 500)    # past the edge: at once
    small = (200, 200, 300, 300)
    steps = [t.update(small) for _ in range(30)]
    assert steps[0] != small and steps[0][0] < 200  # not at once
    assert steps[-1] == small or all(a <= b for a, b in zip(steps[-1][:2], small[:2]))
    assert all(s[0] <= 200 and s[2] >= 300 for s in steps)  # never cuts the people


@pytest.fixture(scope="module")
def twirl():
    return load_sequence("dance-twirl", 30)


def test_window_follows_the_dancer_and_beats_the_whole_frame(twirl):
    """A moving camera, a person a third of the frame high: the window holds the annotated
    person and the matte beats the whole-frame model's."""
    frames, masks = twirl
    scores = {}
    for crop in (True, False):
        out = []
        with Segmenter(_cfg(crop=crop)) as seg:
            for i, (frame, gt) in enumerate(zip(frames, masks)):
                matte = seg.process(frame, i * 33)
                out.append(iou(matte, gt))
                if crop:
                    x0, y0, x1, y1 = seg.crop
                    assert (x1 - x0) * (y1 - y0) < 0.7 * gt.size
                    assert gt[y0:y1, x0:x1].sum() >= 0.97 * gt.sum()
        scores[crop] = float(np.mean(out))
    assert scores[True] >= scores[False] + 0.01, scores


def test_a_still_gets_the_streams_quality(twirl):
    """After reset() a frame is found by a whole-frame pass, then segmented in its window (and,
    a first frame, in a tighter one, both mirrored too): close to the matte the stream's
    window gives, and no worse against the ground truth."""
    frames, masks = twirl
    with Segmenter(_cfg()) as seg:
        for i in range(5):
            stream = np.array(seg.process(frames[i], i * 33))
        seg.reset()
        still = np.array(seg.process(frames[4], 0))
    assert iou(still, stream) > 0.85
    assert iou(still, masks[4]) > iou(stream, masks[4]) - 0.02


def _side_by_side(left_clip: str, right: np.ndarray | None) -> np.ndarray:
    left = talking_frame(5, left_clip, (640, 720))
    if right is None:  # background only: the top-left corner of the clip, enlarged
        right = np.ascontiguousarray(np.repeat(np.repeat(left[:90, :80], 8, axis=0), 8, axis=1)[:720, :640])
    return np.ascontiguousarray(np.hstack([left, right]))


def test_someone_entering_is_found():
    alone = _side_by_side("2.mp4", None)
    both = _side_by_side("2.mp4", talking_frame(5, "5.mp4", (640, 720)))
    with Segmenter(_cfg(crop_refresh_frames=5)) as seg:
        for i in range(4):
            seg.process(alone, i * 33)
        assert seg.crop[2] <= 800  # the window holds the one person on the left
        for i in range(4, 12):
            matte = seg.process(both, i * 33)
    assert seg.crop[0] == 0 and seg.crop[2] == 1280
    assert matte[500:, 860:1060].mean() > 0.9 and matte[500:, 220:420].mean() > 0.9


def test_the_matte_does_not_jump_when_the_window_moves():
    """A slow pan over a person small in frame: the window moves now and then; the matte
    changes from frame to frame no more than the whole-frame model's does."""
    person = talking_frame(20, "4.mp4", (400, 400))
    canvas = np.ascontiguousarray(np.tile(person[:40, :40], (18, 32, 1)))  # the clip's own backdrop
    change = {}
    for crop in (True, False):
        seg = Segmenter(_cfg(crop=crop))
        prev, diffs, crops = None, [], set()
        with seg:
            for i in range(40):
                frame = canvas.copy()
                x = 200 + 6 * i
                frame[320:720, x:x + 400] = person
                matte = np.array(seg.process(frame, i * 33))
                crops.add(seg.crop)
                if prev is not None:
                    # compare with the previous matte moved along with the person
                    moved = np.zeros_like(prev)
                    moved[:, 6:] = prev[:, :-6]
                    diffs.append(float(np.abs(matte - moved)[300:, :].mean()))
                prev = matte
        change[crop] = (float(np.max(diffs)), float(np.mean(diffs)), len(crops))
    assert change[True][2] >= 2, change  # the window moved
    assert change[True][0] <= 1.5 * change[False][0] + 0.002, change
    assert change[True][1] <= 1.2 * change[False][1] + 0.001, change


class _MissesThePersonOnce:
    """The real landscape model, except that its first answer finds nobody: a person the
    whole-frame pass misses (too small, too dark, turned away) while the face shows."""

    def __init__(self) -> None:
        from realtime.stages.segmentation import MediaPipeSegmenter

        self._model = MediaPipeSegmenter("selfie_landscape")
        self.input_size = self._model.input_size
        self.calls = 0

    def segment(self, rgb: np.ndarray, timestamp_ms: int) -> np.ndarray:
        conf = self._model.segment(rgb, timestamp_ms)
        self.calls += 1
        return np.zeros_like(conf) if self.calls == 1 else conf

    def close(self) -> None:
        self._model.close()


def test_a_person_the_model_misses_is_found_by_the_face_detector():
    """Matte lost on the whole-frame pass -> the face detector's head-and-shoulders box is the
    window, and the window pass then finds the person (the matte of a normal run)."""
    person = talking_frame(20, "4.mp4", (560, 560))
    frame = np.ascontiguousarray(np.tile(person[:40, :40], (27, 48, 1)))  # the clip's own backdrop
    frame[520:1080, 100:660] = person  # 1920x1080, the person in the lower left
    with Segmenter(_cfg()) as ref:
        expected = np.array(ref.process(frame, 0))
    backend = _MissesThePersonOnce()
    with Segmenter(_cfg(), backend=backend) as seg:
        matte = np.array(seg.process(frame, 0))
        x0, y0, x1, y1 = seg.crop
    assert backend.calls >= 2  # the whole-frame pass (nobody), then the window the face gave
    assert (x1 - x0) * (y1 - y0) < 0.7 * 1920 * 1080, seg.crop  # not the whole frame
    head = np.nonzero(expected > 0.5)
    assert x0 <= head[1].min() and x1 >= head[1].max() and y0 <= head[0].min(), (seg.crop, head[1].min(), head[0].min())
    assert iou(matte, expected) > 0.9
    assert matte[:, x1:].max() == 0.0 and matte[:y0].max() == 0.0  # nothing outside the window


def test_nobody_and_no_face_keeps_the_whole_frame():
    person = talking_frame(20, "4.mp4", (560, 560))
    backdrop = np.ascontiguousarray(np.tile(person[:40, :40], (18, 32, 1)))
    with Segmenter(_cfg()) as seg:
        matte = seg.process(backdrop, 0)
        assert seg.crop == (0, 0, 1280, 720)
        assert float(matte.max()) < 0.5


class _Counting:
    """The real landscape model, counting its runs."""

    def __init__(self) -> None:
        from realtime.stages.segmentation import MediaPipeSegmenter

        self._model = MediaPipeSegmenter("selfie_landscape")
        self.input_size = self._model.input_size
        self.calls = 0

    def segment(self, rgb: np.ndarray, timestamp_ms: int) -> np.ndarray:
        self.calls += 1
        return self._model.segment(rgb, timestamp_ms)

    def close(self) -> None:
        self._model.close()


def _small_person() -> np.ndarray:
    person = talking_frame(20, "4.mp4", (400, 400))
    frame = np.ascontiguousarray(np.tile(person[:40, :40], (18, 32, 1)))  # the clip's own backdrop
    frame[320:720, 300:700] = person
    return frame


def test_a_first_frame_gets_more_views_and_a_stream_one():
    """After reset() the frame gets the whole-frame pass, the window and a tighter window, both
    also mirrored (5 model runs); the stream's next frames one run each; with the knob off the
    first frame gets the stream's two (whole-frame pass + window)."""
    frame = _small_person()
    runs = {}
    for views in (True, False):
        backend = _Counting()
        with Segmenter(_cfg(first_frame_views=views), backend=backend) as seg:
            counts = []
            for i in range(3):
                before = backend.calls
                seg.process(frame, i * 33)
                counts.append(backend.calls - before)
            seg.reset()
            before = backend.calls
            seg.process(frame, 200)
            counts.append(backend.calls - before)
        runs[views] = counts
    assert runs[True] == [5, 1, 1, 5], runs
    assert runs[False] == [2, 1, 1, 2], runs


def test_the_first_frames_extra_views_do_not_make_the_matte_jump():
    """A still scene with camera noise through the whole pipeline: the change from the first
    frame (more views) to the second (the stream's one) is no larger than the stream's own
    frame-to-frame change, and no larger than without the extra views."""
    from realtime import Pipeline

    base = _small_person()
    frames = [testdata.noisy(base, 2.0, i) for i in range(6)]
    jumps, firsts = {}, {}
    for views in (True, False):
        with Pipeline(load_preset("portrait").replace({"segmentation": {"first_frame_views": views}})) as pipe:
            mattes = [np.array(pipe.process(f, i * 33).matte) for i, f in enumerate(frames)]
        jumps[views] = [float(np.abs(b - a).mean()) for a, b in zip(mattes, mattes[1:])]
        firsts[views] = mattes[0]
    assert float(np.abs(firsts[True] - firsts[False]).max()) > 0.05  # the extra views changed the first matte
    assert jumps[True][0] <= 1.5 * jumps[False][0] + 0.001, jumps
    assert jumps[True][0] <= 3 * max(jumps[True][1:]) + 0.001, jumps


def test_a_still_between_the_models_shapes_also_gets_the_square_models_views():
    """A 3:2 still goes to the landscape model; its matte is the first-frame views' blended with
    the square model's by ``first_frame_square_weight``, and the square pass leaves nothing
    behind: the stream's next frame has the same window and model as without it. Frames of
    the models' own shapes (16:9, 4:3) are not touched."""
    person = talking_frame(20, "4.mp4", None)  # 700x700
    still = np.ascontiguousarray(person[60:527])  # 700x467: 3:2
    runs = {}
    for key, cfg in (("off", _cfg(first_frame_square_weight=0.0)), ("on", _cfg()),
                     ("square", _cfg(model=SegModel.SQUARE, first_frame_square_weight=0.0))):
        with Segmenter(cfg) as seg:
            first = np.array(seg.process(still, 0))
            state = (seg.crop, seg.model_name)
            second = np.array(seg.process(still, 33))
            runs[key] = (first, state, second, (seg.crop, seg.model_name))
    w = _cfg().first_frame_square_weight
    assert 0 < w < 1
    off, on, square = runs["off"][0], runs["on"][0], runs["square"][0]
    assert float(np.abs(square - off).max()) > 0.05  # the two models do differ here
    np.testing.assert_allclose(on, (1 - w) * off + w * square, atol=2e-6)
    assert runs["on"][1] == runs["off"][1] and runs["on"][1][1] == "selfie_landscape"
    assert runs["on"][3] == runs["off"][3]
    np.testing.assert_array_equal(runs["on"][2], runs["off"][2])
    for size in ((1280, 720), (640, 480)):
        frame = talking_frame(20, "4.mp4", size)
        with Segmenter(_cfg()) as a, Segmenter(_cfg(first_frame_square_weight=0.0)) as b:
            np.testing.assert_array_equal(np.array(a.process(frame, 0)), np.array(b.process(frame, 0)))
