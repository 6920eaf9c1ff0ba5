"""The README a newcomer reads: its pictures are in the repository, rendered from the Pixabay
stills by tools/readme_images.py, small, and credited."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import cv2
import numpy as np

from conftest import DATA, ROOT

README = (ROOT / "README.md").read_text()
PICTURES = re.findall(r"!\[[^\]]*\]\((docs/images/[^)]+)\)", README)


def test_readme_pictures_are_committed_small_and_credited():
    assert {"docs/images/before_after.jpg", "docs/images/strip.jpg"} <= set(PICTURES)
    for rel in ("docs/images/before_after.jpg", "docs/images/strip.jpg"):
        path = ROOT / rel
        assert path.is_file() and path.stat().st_size < 300_000, rel
        assert cv2.imread(str(path)) is not None
        after = README[README.index(rel):][:1200]
        assert "Pixabay" in after  # credited under the picture
    if (ROOT / ".git").exists():
        for rel in ("docs/images/before_after.jpg", "docs/images/strip.jpg"):
            ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", rel]).returncode == 0
            assert not ignored, f"{rel} is ignored by .gitignore"
        ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "docs/images/frame_from_footage.jpg"])
        assert ignored.returncode == 0  # anything else in docs/images stays out


def test_readme_images_tool_regenerates_them_from_the_stills(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "readme_images.py"), str(DATA / "stills"),
                           "--out", str(tmp_path)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for name in ("before_after.jpg", "strip.jpg"):
        new, committed = cv2.imread(str(tmp_path / name)), cv2.imread(str(ROOT / "docs" / "images" / name))
        assert (tmp_path / name).stat().st_size < 300_000
        assert new.shape == committed.shape
        assert np.abs(new.astype(np.int16) - committed).mean() < 4.0, name  # the committed one is this render
