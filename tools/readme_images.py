"""Makes the README's pictures with the project itself, from the Pixabay stills:

    python tools/readme_images.py [STILLS_DIR] [--out DIR]   # default: $REALTIME_DATA_DIR/stills or
                                                             # ../shared/data/stills, into docs/images/

writes ``docs/images/before_after.jpg`` (the photo | portrait-cam, through ``run.py``) and
``docs/images/strip.jpg`` (input | output | matte | disparity | CoC, through ``run.py
--debug-strip``). Only the three photos of ``stills/`` (Pixabay Content License) may be shown:
never point this at the other test footage, whose terms allow testing only. The pictures are
committed, kept well under 300 KB each (JPEG); the README credits Pixabay under them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BEFORE_AFTER = "doctor-5871743_640.jpg"  # an office behind: the blur is easy to see
STRIP = "woman-5883428_1280.jpg"        # a selfie: an arm near the lens, backlit hair, a street
MAX_BYTES = 300_000


def stills_dir(argv: list[str]) -> Path:
    if argv and not argv[0].startswith("--"):
        return Path(argv[0])
    data = os.environ.get("REALTIME_DATA_DIR")
    return (Path(data) if data else ROOT.parent / "shared" / "data") / "stills"


def _jpeg(path: Path, img: np.ndarray, width: int) -> None:
    """Write ``img`` scaled to ``width`` as a JPEG under MAX_BYTES (quality stepped down if needed)."""
    h = round(img.shape[0] * width / img.shape[1])
    img = cv2.resize(img, (width, h), interpolation=cv2.INTER_AREA)
    for quality in (88, 82, 75, 68, 60):
        ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 1])
        if ok and len(data) < MAX_BYTES:
            path.write_bytes(data.tobytes())
            return
    raise SystemExit(f"{path} would be over {MAX_BYTES} bytes")


def main(argv: list[str]) -> int:
    stills = stills_dir(argv)
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else ROOT / "docs" / "images"
    out.mkdir(parents=True, exist_ok=True)
    run = [sys.executable, str(ROOT / "run.py"), "--quiet"]
    with tempfile.TemporaryDirectory() as tmp:
        photo = stills / BEFORE_AFTER
        subprocess.run([*run, "--input", str(photo), "--output", f"{tmp}/after/"], check=True)
        before = cv2.imread(str(photo))
        after = cv2.imread(str(next(Path(tmp, "after").glob("*.png"))))
        gap = np.full((before.shape[0], 12, 3), 255, np.uint8)
        _jpeg(out / "before_after.jpg", np.hstack([before, gap, after]), 1200)
        strip = Path(tmp) / "strip.png"
        subprocess.run([*run, "--input", str(stills / STRIP), "--size", "640x640", "--output", str(strip),
                        "--debug-strip"], check=True)
        img = cv2.imread(str(strip))
        _jpeg(out / "strip.jpg", img, min(img.shape[1], 1500))
    for name in ("before_after.jpg", "strip.jpg"):
        print(f"wrote {out / name} ({(out / name).stat().st_size // 1000} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
