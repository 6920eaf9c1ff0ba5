"""Property-based tests: whatever a preset file or an API caller throws at us, the answer is a
result or one of the project's documented errors, never a crash from deep inside."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime import Pipeline, load_preset
from realtime.core.config import _SECTION_TYPES, Preset
from realtime.core.errors import ConfigError, FrameShapeError, FrameTypeError, PortraitCamError, TimestampError
from realtime.stages.render import coc_from_disparity, render_bokeh
from realtime.io.sinks import SinkError, check_vcam_size

KEYS = {s: [f.name for f in dataclasses.fields(c)] for s, c in _SECTION_TYPES.items()}

scalars = st.one_of(
    st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["face", "point", "guided", "crop", "onnxruntime", "square", "auto"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=5), scalars, max_size=2))


@st.composite
def preset_dicts(draw):
    d = {}
    for section in draw(st.lists(st.sampled_from([*KEYS, "bogus"]), max_size=4, unique=True)):
        keys = KEYS.get(section, ["x"]) + ["unknown_key"]
        d[section] = {k: draw(values) for k in draw(st.lists(st.sampled_from(keys), max_size=4, unique=True))}
    if draw(st.booleans()):
        d[draw(st.sampled_from(["name", "description", "extends", "oops"]))] = draw(values)
    return d


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').encode("unicode_escape").decode("ascii") + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f'"{k}" = {_toml_value(x)}' for k, x in v.items()) + "}"
    raise TypeError(v)


def _to_toml(d):
    top = [f"{k} = {_toml_value(v)}" for k, v in d.items() if not (isinstance(v, dict) and k in (*KEYS, "bogus"))]
    body = []
    for k, v in d.items():
        if isinstance(v, dict) and k in (*KEYS, "bogus"):
            body.append(f"[{k}]")
            body += [f'"{kk}" = {_toml_value(vv)}' for kk, vv in v.items()]
    return "\n".join(top + body) + "\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(preset_dicts())
def test_preset_files_load_or_fail_with_config_error(tmp_path, d):
    f = tmp_path / "p.toml"
    f.write_text(_to_toml(d), encoding="utf-8")
    try:
        p = load_preset(f)
    except ConfigError as e:
        assert str(e) and "\n" not in str(e).strip()
    else:
        assert isinstance(p, Preset)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_arbitrary_text_is_a_config_error_or_a_preset(tmp_path, text):
    f = tmp_path / "p.toml"
    f.write_text(text, encoding="utf-8")
    try:
        load_preset(f)
    except ConfigError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([*KEYS, "junk"]), st.dictionaries(st.text(max_size=10), values, max_size=3),
                       max_size=3))
def test_replace_validates_like_files(changes):
    try:
        Preset().replace(changes)
    except ConfigError:
        pass


DTYPES = [np.uint8, np.uint16, np.int8, np.float32, np.float64, np.bool_, np.int64]


@st.composite
def arrays(draw):
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.integers(0, 6)) if i < 2 else draw(st.sampled_from([1, 2, 3, 4]))
                  for i in range(ndim))
    dtype = draw(st.sampled_from(DTYPES))
    a = np.zeros(shape, dtype)
    if draw(st.booleans()) and a.ndim >= 2 and a.shape[1] > 1:
        a = a[:, ::2]
    return a


timestamps = st.one_of(st.integers(-10**9, 10**12), st.floats(allow_nan=True, allow_infinity=True), st.none(),
                       st.text(max_size=3), st.booleans())


@pytest.fixture(scope="module")
def pipe():
    with Pipeline(load_preset("blur-only")) as p:
        yield p


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=st.one_of(arrays(), st.none(), st.lists(st.integers(0, 255), max_size=3)), ts=timestamps)
def test_pipeline_input_validation(pipe, frame, ts):
    pipe.reset()
    try:
        r = pipe.process(frame, ts)
    except (FrameTypeError, FrameShapeError, TimestampError):
        return
    assert isinstance(frame, np.ndarray) and r.frame.shape == frame.shape


@pytest.fixture(scope="module")
def portrait():
    with Pipeline(load_preset("portrait")) as p:
        yield p


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(w=st.integers(2, 9), h=st.integers(2, 9), ts=st.integers(0, 10**6))
def test_tiny_valid_frames_work(portrait, w, h, ts):
    # every size the contract allows goes through every real stage (sizes change between calls)
    portrait.reset()
    f = np.random.default_rng(w * 10 + h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    r = portrait.process(f, ts)
    assert r.frame.shape == (h, w, 3) and np.isfinite(r.disparity).all()


@settings(max_examples=150, deadline=None)
@given(frame=arrays(), coc=arrays(), matte=st.one_of(st.none(), arrays()))
def test_render_bokeh_validation(frame, coc, matte):
    try:
        out = render_bokeh(frame, coc, matte)
    except PortraitCamError as e:
        assert isinstance(e, (FrameTypeError, FrameShapeError))
        return
    assert out.shape == frame.shape and out.dtype == np.uint8


@settings(max_examples=100, deadline=None)
@given(d=arrays(), focus=st.floats(allow_nan=True, allow_infinity=True), ap=st.floats(-1e6, 1e6),
       mx=st.floats(-10, 1e4))
def test_coc_from_disparity_validation(d, focus, ap, mx):
    try:
        c = coc_from_disparity(d, focus, ap, mx)
    except PortraitCamError:
        return
    assert c.shape == d.shape and c.dtype == np.float32


@given(w=st.integers(-4, 4000), h=st.integers(-4, 4000))
def test_virtual_camera_sizes(w, h):
    if w > 0 and h > 0 and w % 2 == 0 and h % 2 == 0:
        check_vcam_size(w, h)
    else:
        with pytest.raises(SinkError):
            check_vcam_size(w, h)
