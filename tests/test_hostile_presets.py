"""Presets that try to crash, hang or eat memory (issue 19): one line, exit 2, quickly."""

from __future__ import annotations

import os
import time

import pytest

from hostile import CLIP, cli
from realtime.core.config import MAX_PRESET_BYTES, load_preset
from realtime.core.errors import ConfigError


def _one_line_exit_2(r, expect: str) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("portrait-cam: error:") and expect in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("body, expect", [
    ("[render]\naperture_px = " + "9" * 400 + "\n", "render.aperture_px is far out of range"),
    ("[render]\nblades = " + "9" * 400 + "\n", "render.blades = a number with dozens of digits"),
    ("[render]\naperture_px = " + "9" * 5000 + "\n", "a value cannot be read"),
    ("x = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
    ("\ufeffname = \"bom\"\n[render]\naperture_px = 31\n", None),
])
def test_hostile_preset_values(tmp_path, body, expect):
    f = tmp_path / "p.toml"
    f.write_text(body, encoding="utf-8")
    if expect is None:  # a UTF-8 BOM (Windows editors) is accepted
        assert load_preset(f).render.aperture_px == 31
        return
    with pytest.raises(ConfigError, match=expect):
        load_preset(f)


def test_preset_extends_dev_zero_and_fifo_fail_fast_cli(tmp_path):
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    for target, expect in (("/dev/zero", "not a regular file"), (str(fifo), "not a regular file"),
                           (str(tmp_path), "not a regular file")):
        p = tmp_path / "p.toml"
        p.write_text(f'extends = "{target}"\n')
        t0 = time.monotonic()
        r = cli("--input", CLIP, "--output", "null", "--preset", p, timeout=60)
        assert time.monotonic() - t0 < 30
        _one_line_exit_2(r, expect)


def test_preset_size_cap(tmp_path):
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * MAX_PRESET_BYTES + "\n")
    with pytest.raises(ConfigError, match="bytes"):
        load_preset(big)


def test_extends_loop_found_by_real_path(tmp_path):
    (tmp_path / "toml").mkdir()
    me = tmp_path / "toml" / "self.toml"
    me.write_text('extends = "../toml/self.toml"\n')
    with pytest.raises(ConfigError, match="forms a loop"):
        load_preset(me)
    a, b = tmp_path / "a.toml", tmp_path / "link.toml"
    a.write_text('extends = "link.toml"\n')
    b.symlink_to(a)
    with pytest.raises(ConfigError, match="forms a loop"):
        load_preset(a)
