"""Presets: built-ins load, and every kind of bad file fails at load with a sentence."""

from __future__ import annotations

import dataclasses

import pytest

from realtime.core.config import FocusMode, Preset, builtin_presets, describe_knobs, load_preset
from realtime.core.errors import ConfigError


def test_builtin_presets_load_and_differ():
    names = builtin_presets()
    assert {"portrait", "subtle", "blur-only"} <= set(names)
    portrait, subtle, blur = (load_preset(n) for n in ("portrait", "subtle", "blur-only"))
    assert portrait.depth.enabled and not blur.depth.enabled
    assert subtle.render.max_coc_px < portrait.render.max_coc_px
    assert blur.name == "blur-only" and subtle.name == "subtle"


def test_preset_is_frozen():
    p = load_preset("portrait")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.render.aperture_px = 3.0  # type: ignore[misc]


def _write(tmp_path, text):
    f = tmp_path / "p.toml"
    f.write_text(text)
    return f


def test_unknown_key_names_key_and_allowed(tmp_path):
    f = _write(tmp_path, "[render]\naperture = 3\n")
    with pytest.raises(ConfigError) as e:
        load_preset(f)
    msg = str(e.value)
    assert "render.aperture" in msg and "aperture_px" in msg and str(f) in msg


def test_unknown_section(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'lens'"):
        load_preset(_write(tmp_path, "[lens]\nx = 1\n"))


def test_out_of_range_names_range(tmp_path):
    with pytest.raises(ConfigError, match=r"render\.max_coc_px = 500\.0 is out of range; allowed 0\.0\.\.128\.0"):
        load_preset(_write(tmp_path, "[render]\nmax_coc_px = 500\n"))


def test_wrong_type(tmp_path):
    with pytest.raises(ConfigError, match="must be a number"):
        load_preset(_write(tmp_path, '[render]\naperture_px = "big"\n'))
    with pytest.raises(ConfigError, match="true or false"):
        load_preset(_write(tmp_path, "[depth]\nenabled = 1\n"))


def test_enum_lists_allowed_values(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_preset(_write(tmp_path, '[focus]\nmode = "eyes"\n'))
    assert "'face'" in str(e.value) and "'point'" in str(e.value)


def test_syntax_error_has_line_number(tmp_path):
    with pytest.raises(ConfigError, match="line 3"):
        load_preset(_write(tmp_path, "[render]\naperture_px = 3\nmax_coc_px = = 4\n"))


def test_extends_and_override(tmp_path):
    p = load_preset(_write(tmp_path, 'extends = "subtle"\n[focus]\nmode = "fixed"\ndisparity = 0.4\n'))
    assert p.render.max_coc_px == load_preset("subtle").render.max_coc_px
    assert p.focus.mode is FocusMode.FIXED and p.focus.disparity == 0.4
    assert p.name == "p"


def test_unknown_preset_name_lists_choices():
    with pytest.raises(ConfigError, match="portrait"):
        load_preset("nonexistent")


def test_missing_preset_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_preset("/nonexistent/x.toml")


def test_replace_validates():
    p = Preset()
    assert p.replace({"render": {"aperture_px": 10}}).render.aperture_px == 10.0
    with pytest.raises(ConfigError, match="out of range"):
        p.replace({"render": {"aperture_px": -1}})


def test_every_knob_is_documented():
    rows = describe_knobs()
    assert rows and all(doc for _, _, _, doc in rows)


def test_preset_docs_are_current():
    import subprocess
    import sys

    from conftest import ROOT

    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_preset_docs.py"), "--check"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr


def test_evaluation_settings_become_validated_preset_changes():
    """``--set`` of tools/eval_matte.py and eval_temporal.py: bare keys go to the tool's section,
    ``SECTION.KEY`` elsewhere, values are typed, and the preset validates them like a file."""
    from realtime.devtools.settings import parse_settings

    changes = parse_settings(["refine_eps=0.002", "crop_refresh_frames=15", "model=square",
                              "depth.fade_behind=false", "temporal.matte_smoothing=0.9"], "segmentation")
    assert changes == {"segmentation": {"refine_eps": 0.002, "crop_refresh_frames": 15, "model": "square"},
                       "depth": {"fade_behind": False}, "temporal": {"matte_smoothing": 0.9}}
    p = load_preset("portrait").replace(changes)
    assert p.segmentation.refine_eps == 0.002 and p.segmentation.crop_refresh_frames == 15
    assert p.depth.fade_behind is False and p.temporal.matte_smoothing == 0.9
    assert parse_settings(["matte_smoothing=0.8"], "temporal") == {"temporal": {"matte_smoothing": 0.8}}
    with pytest.raises(ConfigError, match="refine_epz"):
        load_preset("portrait").replace(parse_settings(["refine_epz=1"], "segmentation"))
