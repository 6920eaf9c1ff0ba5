"""The segmentation stage with the real MediaPipe models on real frames."""

from __future__ import annotations

import dataclasses
import shutil

import cv2
import numpy as np
import pytest

from conftest import DATA, MODELS, PEOPLE, load_sequence, talking_frame
from realtime.core import models
from realtime.core.config import MatteRefine, SegModel, SegmentationConfig, load_preset
from realtime.core.errors import ClosedError, FrameShapeError, FrameTypeError, ModelHashError, StageError, TimestampError
from realtime.devtools.metrics import blockiness, boundary_f, iou
from realtime.stages.segmentation import MediaPipeSegmenter, Segmenter, choose_model, guide_size, radius_at_model

PEOPLE_DIR = DATA / "people"

# Floors a little under what tools/eval_matte.py measures with the default preset (the
# person-centred window, all frames; see docs/matte.md): (IoU, boundary F) of the refined matte.
FLOORS = {"breakdance": (0.175, 0.180), "dance-twirl": (0.725, 0.685)}


def _cfg(**kw) -> SegmentationConfig:
    return dataclasses.replace(load_preset("portrait").segmentation, **kw)


@pytest.fixture(scope="module")
def sequences():
    return {name: load_sequence(name) for name in PEOPLE}


@pytest.fixture(scope="module")
def measured(sequences):
    """Per sequence: mean (IoU, boundary F) of MediaPipe on the whole frame upsampled bilinearly
    (the reference), of the window's model output upsampled bilinearly, and of the matte."""
    out = {}
    for name, (frames, masks) in sequences.items():
        whole_s, raw_s, ref_s = [], [], []
        with Segmenter(_cfg()) as seg, Segmenter(_cfg(crop=False, refine=MatteRefine.BILINEAR)) as whole:
            for i, (frame, gt) in enumerate(zip(frames, masks)):
                matte = seg.process(frame, i * 33)
                raw = seg.raw()
                w = whole.process(frame, i * 33)
                whole_s.append((iou(w, gt), boundary_f(w, gt)))
                raw_s.append((iou(raw, gt), boundary_f(raw, gt)))
                ref_s.append((iou(matte, gt), boundary_f(matte, gt)))
        out[name] = (np.mean(whole_s, axis=0), np.mean(raw_s, axis=0), np.mean(ref_s, axis=0))
    return out


@pytest.mark.parametrize("name", PEOPLE)
def test_quality_floors_on_people_sequences(measured, name):
    _, _, (ref_iou, ref_bf) = measured[name]
    iou_floor, bf_floor = FLOORS[name]
    assert ref_iou >= iou_floor and ref_bf >= bf_floor, (ref_iou, ref_bf)


@pytest.mark.parametrize("name", PEOPLE)
def test_matte_beats_the_whole_frame_model_on_a_moving_camera(measured, name):
    """The issue's bar for the moving-camera sequence: at least MediaPipe on the whole frame
    (measured: +0.02 / +0.10 IoU, +0.03 / +0.10 boundary F)."""
    (whole_iou, whole_bf), (raw_iou, raw_bf), (ref_iou, ref_bf) = measured[name]
    assert ref_iou >= whole_iou + 0.015 and ref_bf >= whole_bf + 0.02, measured[name]
    # the refinement keeps what the window's model gives (it has little left to add at this
    # resolution: measured within 0.001 of it)
    assert ref_iou >= raw_iou - 0.003 and ref_bf >= raw_bf - 0.005, measured[name]


def _eval_matte():
    """tools/eval_matte.py as a module (its head-and-shoulders crops with real ground truth)."""
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("eval_matte", ROOT / "tools" / "eval_matte.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_refined_beats_raw_on_head_and_shoulders_crops():
    """Webcam-style crops of dance-twirl around the dancer's face, real masks (see
    tools/eval_matte.py): measured +0.010 boundary F over raw with the landscape model."""
    em = _eval_matte()
    [(name, frames, masks)] = em.head_crops([PEOPLE_DIR / "dance-twirl"], "landscape")
    assert len(frames) >= 60 and frames[0].shape == (720, 1280, 3)
    raw_s, ref_s = [], []
    with Segmenter(_cfg(model=SegModel.LANDSCAPE, crop=False)) as seg:
        for frame, gt in zip(frames, masks):
            seg.reset()
            matte = seg.process(frame, 0)
            raw_s.append((iou(seg.raw(), gt), boundary_f(seg.raw(), gt)))
            ref_s.append((iou(matte, gt), boundary_f(matte, gt)))
    (raw_iou, raw_bf), (ref_iou, ref_bf) = np.mean(raw_s, axis=0), np.mean(ref_s, axis=0)
    assert ref_bf - raw_bf >= 0.007, (raw_bf, ref_bf)
    assert ref_iou >= raw_iou - 0.001 and ref_iou >= 0.71, (raw_iou, ref_iou)


def test_matte_contract_on_head_and_shoulders():
    frame = talking_frame(10, "1.mp4", (1280, 720))
    with Segmenter(_cfg()) as seg:
        matte = seg.process(frame, 0)
        assert matte.shape == (720, 1280) and matte.dtype == np.float32
        assert not matte.flags.writeable
        assert 0.0 <= matte.min() and matte.max() <= 1.0
        conf = seg.confidence
        assert conf.shape in ((144, 256), (256, 256)) and not conf.flags.writeable
        # the person fills the centre, the top corners are background
        assert matte[360:, 480:800].mean() > 0.95
        assert matte[:100, :150].max() < 0.05 and matte[:100, -150:].max() < 0.05
        # soft edges, not a thresholded mask: a band of partial values along the outline
        partial = np.count_nonzero((matte > 0.05) & (matte < 0.95))
        outline = np.count_nonzero(np.abs(np.diff(matte >= 0.5, axis=1)))
        assert partial > 2 * outline > 0
        # the buffer is reused, the view handed out earlier stays read-only
        again = seg.process(frame, 33)
        assert np.shares_memory(matte, again)


def test_refined_edge_is_sharper_than_bilinear():
    """At the person's outline the refined matte goes 0 -> 1 over fewer pixels than bilinear
    (one view each: the first frame's extra views off, so the bilinear matte is ``raw()``)."""
    frame = talking_frame(30, "4.mp4", (1280, 720))
    with Segmenter(_cfg(first_frame_views=False)) as seg, \
            Segmenter(_cfg(refine=MatteRefine.BILINEAR, first_frame_views=False)) as lin:
        ref = seg.process(frame, 0)
        raw = lin.process(frame, 0)
        assert seg.crop == lin.crop
        np.testing.assert_allclose(raw, lin.raw(), atol=1e-6)
    band = lambda m: np.count_nonzero((m > 0.1) & (m < 0.9))  # noqa: E731
    assert band(ref) < 0.8 * band(raw)
    assert abs(np.count_nonzero(ref >= 0.5) - np.count_nonzero(raw >= 0.5)) < 0.02 * ref.size


def test_every_person_is_kept():
    """Two people side by side: both are in the matte (no largest-blob selection)."""
    left = talking_frame(5, "2.mp4", (640, 720))
    right = talking_frame(5, "5.mp4", (640, 720))
    frame = np.ascontiguousarray(np.hstack([left, right]))
    with Segmenter(_cfg()) as seg:
        matte = seg.process(frame, 0)
    for half in (matte[:, :640], matte[:, 640:]):
        assert np.count_nonzero(half >= 0.5) > 0.2 * half.size
        assert half[500:, 220:420].mean() > 0.9


def test_model_choice_follows_aspect_and_preset():
    cfg = _cfg()
    assert choose_model(cfg, 1280, 720) == "selfie_landscape"
    assert choose_model(cfg, 640, 480) == "selfie_square"
    assert choose_model(cfg, 720, 720) == "selfie_square"
    assert choose_model(_cfg(model=SegModel.SQUARE), 1280, 720) == "selfie_square"
    assert choose_model(_cfg(model=SegModel.LANDSCAPE), 480, 640) == "selfie_landscape"
    with Segmenter(_cfg(crop=False)) as seg:
        seg.process(talking_frame(0, "3.mp4", (1280, 720)), 0)
        assert seg.model_name == "selfie_landscape" and seg.confidence.shape == (144, 256)
        m = seg.process(talking_frame(0, "3.mp4", (590, 590)), 33)  # new size: the square model
        assert seg.model_name == "selfie_square" and seg.confidence.shape == (256, 256)
        assert m.shape == (590, 590) and m[400:, 200:400].mean() > 0.9


def test_radius_maps_to_model_rows():
    assert radius_at_model(32, 144) == 6
    assert radius_at_model(32, 256) == 11
    assert radius_at_model(1, 144) == 1


def test_guide_is_finer_than_the_model_but_never_than_the_frame():
    assert guide_size((256, 144), (1280, 720), 1.25) == (320, 180)
    assert guide_size((256, 256), (640, 480), 1.25) == (320, 320)
    assert guide_size((256, 144), (1280, 720), 1.0) == (256, 144)
    assert guide_size((256, 144), (300, 160), 1.25) == (300, 160)
    assert guide_size((256, 144), (200, 100), 2.0) == (200, 100)  # a frame smaller than the model's input


def test_bad_input_and_lifecycle():
    frame = talking_frame(0, "1.mp4", (320, 180))
    seg = Segmenter(_cfg())
    with pytest.raises(FrameTypeError):
        seg.process(frame.astype(np.float32), 0)
    with pytest.raises(FrameShapeError):
        seg.process(frame[..., 0].copy(), 0)
    seg.process(frame, 100)
    with pytest.raises(TimestampError):
        seg.process(frame, 100)
    seg.reset()  # a new stream may start again at 0 (MediaPipe's own clock must not complain)
    seg.process(frame, 0)
    seg.process(frame, 33)
    seg.close()
    seg.close()
    with pytest.raises(ClosedError):
        seg.process(frame, 66)


class _Garbling:
    """The real landscape model whose output is spoiled after the fact (fault injection)."""

    def __init__(self, spoil) -> None:
        self.inner = MediaPipeSegmenter("selfie_landscape")
        self.input_size = self.inner.input_size
        self.spoil = spoil

    def segment(self, rgb, ts):
        return self.spoil(self.inner.segment(rgb, ts))

    def close(self):
        self.inner.close()


def _nan(c):
    c[10:20, 30:40] = np.nan
    return c


@pytest.mark.parametrize("spoil,match", [
    (_nan, "NaN"),
    (lambda c: c[:-1], "expected"),
    (lambda c: [0.5], "expected"),
])
def test_bad_model_output_fails_closed(spoil, match):
    frame = talking_frame(0, "1.mp4", (640, 360))
    with Segmenter(_cfg(), backend=_Garbling(spoil)) as seg:
        with pytest.raises(StageError, match=match):
            seg.process(frame, 0)


def test_explicit_model_path_with_auto_is_identified(tmp_path):
    square = tmp_path / "mine.tflite"
    shutil.copy(MODELS / models.REGISTRY["selfie_square"].file, square)
    frame = talking_frame(0, "1.mp4", (640, 360))  # wide: auto alone would pick landscape
    with Segmenter(_cfg(model_path=str(square))) as seg:
        seg.process(frame, 0)
        assert seg.model_name == "selfie_square" and seg.confidence.shape == (256, 256)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    with Segmenter(_cfg(model_path=str(bad))) as seg:
        with pytest.raises(ModelHashError, match="not a known segmentation model"):
            seg.process(frame, 0)


class _Recording:
    """The real model, keeping a copy of each input it was given."""

    def __init__(self, name: str) -> None:
        self.inner = MediaPipeSegmenter(name)
        self.input_size = self.inner.input_size
        self.inputs: list[np.ndarray] = []

    def segment(self, rgb, ts):
        self.inputs.append(rgb.copy())
        return self.inner.segment(rgb, ts)

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("model,size", [("selfie_landscape", (1280, 720)),  # integer factors (5, 5)
                                        ("selfie_square", (640, 480)),     # fractional factors
                                        ("selfie_landscape", (200, 120))])  # smaller than the input
def test_model_sees_the_area_average_in_rgb(model, size):
    """What the model gets is OpenCV's INTER_AREA of the frame in RGB, to a level (our kernels do
    both in one pass)."""
    frame = talking_frame(20, "2.mp4", size)
    rec = _Recording(model)
    with Segmenter(_cfg(crop=False), backend=rec) as seg:
        matte = seg.process(frame, 0)
    mw, mh = rec.input_size
    want = cv2.cvtColor(cv2.resize(frame, (mw, mh), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    got = rec.inputs[0]
    assert got.shape == (mh, mw, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - want).max() <= 1 and np.mean(got != want) < 0.01
    assert matte.shape == frame.shape[:2] and matte[-20:, size[0] // 2].mean() > 0.9


def test_refinement_knobs_take_effect_on_configure():
    """configure() with other refinement knobs rebuilds the filter (same sizes, new numbers)."""
    frame = talking_frame(10, "1.mp4", (640, 360))
    cfg = _cfg(first_frame_views=False)  # every frame one view, so the first compares with the last
    with Segmenter(cfg) as seg:
        first = np.array(seg.process(frame, 0))
        seg.configure(dataclasses.replace(cfg, refine_radius_px=96, refine_eps=1e-2))
        wider = np.array(seg.process(frame, 33))
        seg.configure(dataclasses.replace(cfg, refine_guide_scale=1.0, refine_contrast=1.0))
        coarse = np.array(seg.process(frame, 66))
        seg.configure(cfg)
        again = np.array(seg.process(frame, 99))
    assert np.abs(wider - first).max() > 0.05
    assert np.abs(coarse - first).max() > 0.05
    np.testing.assert_allclose(again, first, atol=1e-6)


def test_matte_does_not_depend_on_the_thread_count():
    import numba

    frame = talking_frame(40, "4.mp4", (1280, 720))
    prev = numba.get_num_threads()
    out = []
    try:
        for n in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(n)
            with Segmenter(_cfg()) as seg:
                out.append(np.array(seg.process(frame, 0)))
    finally:
        numba.set_num_threads(prev)
    np.testing.assert_array_equal(out[0], out[1])


def test_no_coefficient_grid_in_the_matte():
    """A webcam-style head-and-shoulders view (dance-twirl frame 20, enlarged like a soft
    webcam): without the coefficients' box mean the matte's second differences pile up on the
    coefficient grid's lines (the blocks); with it they do not."""
    em = _eval_matte()
    frames, masks = load_sequence("dance-twirl", 21)
    face = (383, 124, 417, 158)  # what the face detector finds there (tools/eval_matte.py)
    assert em.find_faces([frames[20]], [masks[20]])[0] == face
    x0, y0, cw, ch = em.crop_window(face, masks[20].shape[::-1], 16 / 9)
    frame = np.ascontiguousarray(cv2.resize(frames[20][y0:y0 + ch, x0:x0 + cw], (1280, 720),
                                            interpolation=cv2.INTER_LINEAR))
    block = {}
    for smooth in (False, True):
        # one view (a first frame's extra views average two grids of different sizes)
        with Segmenter(_cfg(refine_smooth=smooth, first_frame_views=False)) as seg:
            matte = seg.process(frame, 0)
            assert seg.grid[2] == 1280 / 320  # the coefficients' grid: 4 pixels at 720p
            block[smooth] = blockiness(matte, seg.grid)
    assert block[False] > 1.15 and block[True] < 1.08, block


def _portrait(name: str) -> tuple[np.ndarray, np.ndarray]:
    folder = DATA / "portraits"
    frame = cv2.imread(str(folder / "images" / f"{name}.jpg"), cv2.IMREAD_COLOR)
    mask = cv2.imread(str(folder / "masks" / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
    assert frame is not None and mask is not None, f"portraits/{name} missing under {folder}"
    return np.ascontiguousarray(frame), (mask >= 128).astype(np.float32)


def test_unsure_background_is_not_a_plate():
    """Portrait 281 (a runner on a treadmill): the model holds the treadmill and the floor at
    0.2-0.7 a hand's width from the body, a semi-transparent plate of background. Faded by its
    distance from the person's core, the plate goes; the person's outline does not move."""
    frame, gt = _portrait("281")
    h, w = gt.shape
    far = cv2.distanceTransform((gt < 0.5).astype(np.uint8), cv2.DIST_L2, 3) > 0.03 * np.hypot(h, w)
    out = {}
    for fade in (False, True):
        with Segmenter(_cfg(fade_unsure_background=fade)) as seg:
            matte = np.array(seg.process(frame, 0))
        plate = float(np.mean(matte[far] > 0.1)) * 100.0
        out[fade] = (plate, iou(matte, gt), boundary_f(matte, gt))
    assert out[False][0] > 3.0, out  # the plate is there without the fade (about 5.5% of the background)
    assert out[True][0] < 0.25 * out[False][0], out
    assert out[True][1] >= out[False][1] - 0.005 and out[True][2] >= out[False][2], out


def test_fade_leaves_the_core_and_the_edge_alone():
    from realtime.stages.person_box import FADE_FAR, FADE_NEAR, fade_far_background

    conf = np.zeros((100, 200), np.float32)
    conf[20:80, 20:60] = 1.0          # the core
    conf[20:80, 60:200] = 0.7         # an unsure band reaching far to the right
    out = np.empty_like(conf)
    fade_far_background(conf, out)
    side = 200.0
    near, far = int(60 + FADE_NEAR * side) - 1, int(np.ceil(60 + FADE_FAR * side)) + 1
    np.testing.assert_array_equal(out[:, :near], conf[:, :near])  # core and the near band as they were
    assert out[50, far:].max() == 0.0                              # far away: gone
    assert np.all(np.diff(out[50, near:far]) <= 0)                 # a ramp, not a cut
    nocore = np.full((50, 50), 0.7, np.float32)
    fade_far_background(nocore, out[:50, :50])
    np.testing.assert_array_equal(out[:50, :50], nocore)           # no core: nothing to measure from
