"""The Python API contract: real models on real frames."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import load_sequence, talking_frame
from realtime import Pipeline, load_preset
from realtime.core.errors import ClosedError, FrameShapeError, FrameTypeError, PortraitCamError, TimestampError


@pytest.fixture(scope="module")
def pipe():
    with Pipeline(load_preset("portrait")) as p:
        yield p


def test_result_contract_on_real_frames(pipe):
    frames, _ = load_sequence("dance-twirl", limit=3)
    pipe.reset()
    for i, f in enumerate(frames):
        r = pipe.process(f, 1000 + 33 * i)
    h, w = frames[0].shape[:2]
    assert r.frame.shape == (h, w, 3) and r.frame.dtype == np.uint8
    assert r.matte.shape == (h, w) and r.matte.dtype == np.float32
    assert r.disparity.shape == (h, w) and r.disparity.dtype == np.float32
    assert 0.0 <= r.matte.min() and r.matte.max() <= 1.0
    assert 0.0 <= r.disparity.min() and r.disparity.max() <= 1.0
    assert isinstance(r.focus, float) and 0.0 <= r.focus <= 1.0
    assert r.timestamp_ms == 1000 + 33 * 2
    assert set(r.timings_ms) >= {"segmentation", "depth", "temporal", "render"}
    # the person is there and the output differs from the input (the effect is applied)
    assert r.matte.mean() > 0.02
    assert np.abs(r.frame.astype(np.int16) - frames[-1]).mean() > 0.5


def test_results_are_read_only(pipe):
    pipe.reset()
    r = pipe.process(talking_frame(0, size=(640, 360)), 1)
    for a in (r.frame, r.matte, r.disparity, r.coc):
        with pytest.raises(ValueError):
            a[0, 0] = 0


def test_timestamps_must_increase(pipe):
    pipe.reset()
    f = talking_frame(0, size=(320, 240))
    pipe.process(f, 10)
    with pytest.raises(TimestampError, match="strictly increase"):
        pipe.process(f, 10)
    pipe.reset()
    pipe.process(f, 0)  # after reset a stream may start again from 0


@pytest.mark.parametrize("bad, err, text", [
    (np.zeros((240, 320, 3), np.float32), FrameTypeError, "uint8"),
    (np.zeros((240, 320), np.uint8), FrameShapeError, "(H, W, 3)"),
    (np.zeros((240, 320, 4), np.uint8), FrameShapeError, "BGRA"),
    (np.zeros((240, 320, 3), np.uint8)[:, ::2], FrameShapeError, "C-contiguous"),
    ([[1, 2, 3]], FrameTypeError, "numpy array"),
])
def test_bad_frames_are_rejected_clearly(pipe, bad, err, text):
    pipe.reset()
    with pytest.raises(err) as e:
        pipe.process(bad, 1)
    assert text in str(e.value)
    assert isinstance(e.value, PortraitCamError)


def test_close_is_idempotent_and_final():
    p = Pipeline(load_preset("blur-only"))
    p.close()
    p.close()
    with pytest.raises(ClosedError):
        p.process(talking_frame(0, size=(320, 240)), 1)


def test_blur_only_runs_without_depth_model():
    with Pipeline(load_preset("blur-only")) as p:
        f = talking_frame(5, size=(640, 360))
        r = p.process(f, 1)
        # background at one constant disparity: the lens blur is uniform behind the person
        bg = r.disparity[r.matte < 1e-4]
        assert bg.size and np.ptp(bg) < 1e-3


def test_apply_preset_live_keeps_or_rebuilds_stages():
    with Pipeline(load_preset("portrait")) as p:
        f = talking_frame(0, size=(320, 240))
        p.process(f, 1)
        seg, ren = p.segmenter, p.renderer
        changed = p.apply(p.preset.replace({"render": {"aperture_px": 10.0}}))
        assert changed == ["render"] and p.renderer is ren and p.renderer.config.aperture_px == 10.0
        changed = p.apply(p.preset.replace({"segmentation": {"model": "square"}}))
        assert "segmentation" in changed and p.segmenter is not seg and seg.closed
        r = p.process(f, 2)
        assert r.frame.shape == f.shape


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0), (-1, -1), (123, 457)])
def test_all_finite_sees_one_bad_value_anywhere(bad, where):
    from shaders.checks import all_finite

    scratch = np.zeros(1, np.uint32)
    plane = np.random.default_rng(3).random((360, 640), dtype=np.float32)
    plane[0, 1] = np.finfo(np.float32).max  # large, tiny and negative values are finite
    plane[1, 0] = np.finfo(np.float32).smallest_subnormal
    plane[2, 2] = -5.0
    assert all_finite(plane, scratch)
    plane[where] = bad
    assert not all_finite(plane, scratch)
    assert not all_finite(plane[:, 1:] if where[1] != 0 else plane[:, :-1], scratch)  # not contiguous


@pytest.mark.parametrize("stage", ["segmentation", "depth"])
def test_a_non_finite_stage_output_fails_before_temporal_state(stage):
    """A NaN in the matte or the disparity raises StageError naming the stage, and the temporal
    stage (and the depth stage, for a bad matte) never sees it."""
    from realtime.core.errors import StageError

    frame = talking_frame(0, size=(640, 360))
    with Pipeline(load_preset("portrait")) as p:
        p.process(frame, 1)
        calls = {"depth": 0, "temporal": 0}

        def wrap(attr, poison):
            inner = getattr(p, attr)

            def process(*a):
                calls[attr] = calls.get(attr, 0) + 1
                out = inner.process(*a)
                if poison:
                    out = np.array(out)
                    out[200, 300] = np.nan
                return out
            setattr(p, attr, _Wrapped(inner, process))

        wrap("segmenter", stage == "segmentation")
        wrap("depth", stage == "depth")
        wrap("temporal", False)
        with pytest.raises(StageError, match=f"{stage} stage returned a .* NaN or infinite"):
            p.process(frame, 2)
        assert calls["temporal"] == 0
        assert calls["depth"] == (0 if stage == "segmentation" else 1)


class _Wrapped:
    """A stage with its ``process`` replaced (everything else delegated)."""

    def __init__(self, stage, process):
        self._stage, self.process = stage, process

    def __getattr__(self, name):
        return getattr(self._stage, name)
