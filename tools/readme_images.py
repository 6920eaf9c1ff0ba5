"""Makes the README's pictures with the project itself, from a real frame:

    python tools/readme_images.py [VIDEO_OR_IMAGE]   # default: ../shared/data/talking/2.mp4

writes ``docs/images/before_after.jpg`` (camera | portrait-cam) and ``docs/images/strip.png``
(input | output | matte | disparity | CoC, via ``run.py --debug-strip``). The pictures are not
committed: the test footage may be used for testing only, not redistributed.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    src = Path(argv[0]) if argv else ROOT.parent / "shared" / "data" / "talking" / "2.mp4"
    out = ROOT / "docs" / "images"
    out.mkdir(parents=True, exist_ok=True)
    run = [sys.executable, str(ROOT / "run.py"), "--input", str(src), "--size", "720x720", "--frames", "40", "--quiet"]
    subprocess.run([*run, "--output", str(out / "strip.png"), "--debug-strip"], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([*run, "--output", f"{tmp}/"], check=True)
        frames = sorted(Path(tmp).glob("*.png"))
        after = cv2.imread(str(frames[-1]))
    cap = cv2.VideoCapture(str(src))
    before = None
    for _ in range(len(frames)):
        ok, f = cap.read()
        if ok:
            before = cv2.resize(f, (720, 720), interpolation=cv2.INTER_AREA)
    cap.release()
    pair = np.hstack([before, np.zeros((720, 8, 3), np.uint8), after])
    cv2.imwrite(str(out / "before_after.jpg"), cv2.resize(pair, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA),
                [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f"wrote {out / 'before_after.jpg'} and {out / 'strip.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
