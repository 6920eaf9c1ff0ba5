"""``--quality fast|high`` on the command line and the ``segmentation.quality`` knob (real CLI,
real models)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import ROOT, people_frames
from realtime.app.cli import FILE_QUALITY, build_parser
from realtime.core.config import MatteQuality, load_preset
from realtime.devtools.metrics import iou
from realtime.stages.segmentation import Segmenter


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    for p in people_frames("dance-twirl")[:3]:
        (d / p.name).symlink_to(p)
    return d


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *argv], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _mattes(folder) -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted(folder.iterdir())]


def test_quality_flag_reaches_the_matte(frames_dir, tmp_path):
    """--quality high and fast give different mattes of the same person; without the flag a file
    job gets the preset's (fast: high does not pass the keep rule on every set, docs/matte.md)."""
    assert FILE_QUALITY is None
    runs = {}
    for name, extra in (("default", ()), ("fast", ("--quality", "fast")), ("high", ("--quality", "high"))):
        out = tmp_path / name
        r = _cli("--input", str(frames_dir), "--output", "null", "--save-matte", str(out), "--quiet", *extra)
        assert r.returncode == 0, r.stderr
        runs[name] = _mattes(out)
        assert len(runs[name]) == 3
    for a, b in zip(runs["default"], runs["fast"]):
        np.testing.assert_array_equal(a, b)  # the preset's quality
    for a, b in zip(runs["fast"], runs["high"]):
        assert np.count_nonzero(a != b) > 0.001 * a.size  # a different matte...
        assert iou(a / 255.0, b / 255.0) > 0.8  # ...of the same person


def test_bad_quality_one_line_exit_2(frames_dir, tmp_path):
    out = tmp_path / "m"
    r = _cli("--input", str(frames_dir), "--output", "null", "--save-matte", str(out), "--quality", "best")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--quality" in lines[0] and "fast" in lines[0] and "high" in lines[0], r.stderr
    assert not out.exists()


def test_quality_is_a_preset_knob():
    assert load_preset("portrait").segmentation.quality is MatteQuality.FAST  # live sources: one model run
    with pytest.raises(Exception, match="fast"):
        load_preset("portrait").replace({"segmentation": {"quality": "best"}})
    assert build_parser().parse_args(["--quality", "high"]).quality == "high"


def test_high_runs_the_mirrored_window_and_the_other_model():
    """High quality averages the model on the window with the other model and with itself on the
    mirrored window: its matte of a mirrored frame is nearer the mirrored matte than fast's."""
    img = cv2.imread(str(people_frames("dance-twirl")[10]))
    mirrored = np.ascontiguousarray(img[:, ::-1])
    asym = {}
    for q in (MatteQuality.FAST, MatteQuality.HIGH):
        cfg = dataclasses.replace(load_preset("portrait").segmentation, quality=q, crop=False)
        with Segmenter(cfg) as seg:
            a = np.array(seg.process(img, 0))
            seg.reset()
            b = np.array(seg.process(mirrored, 0))
            assert seg.model_name == "selfie_landscape"
            models = set(seg._backends)
        asym[q] = float(np.abs(a - b[:, ::-1]).mean())
        assert models == ({"selfie_landscape", "selfie_square"} if q is MatteQuality.HIGH else {"selfie_landscape"})
    assert asym[MatteQuality.HIGH] < 0.75 * asym[MatteQuality.FAST], asym
