"""Quality of the layer scales on real frames: the same frames rendered with layers at a third
(s = 3) and at half resolution (s = 2), and every few frames at full resolution (s = 1).

The pipeline with every optimisation off gives each frame its real matte and CoC (from its
disparity and focus); each frame is then rendered by :func:`render_bokeh` with the layer scale
held at each value. Frames: the talking clips (centre-cropped and upscaled) and the DAVIS
sequences (fitted), at the size given. Prints per set the mean and worst PSNR and the share of
pixels (any channel) off by more than 4 levels; ``docs/render.md`` has the numbers.

    python tools/eval_layer_scale.py --size 1920x1080 --frames 30
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from realtime.core.config import load_preset  # noqa: E402
from realtime.devtools.livebench import psnr  # noqa: E402
from realtime.devtools.recipe import fit_frame  # noqa: E402
from realtime.devtools.testdata import data_dir, people_sequence, read_video, use_shared_models  # noqa: E402
from realtime.pipeline import Pipeline, all_optimisations_off  # noqa: E402
from realtime.stages import render  # noqa: E402


def render_at(frame: np.ndarray, coc: np.ndarray, matte: np.ndarray, s: int) -> np.ndarray:
    """``render_bokeh`` with the layer scale held at ``s`` (the only scale the size rule may pick)."""
    scales = render.LAYER_SCALES
    render.LAYER_SCALES = (s,)
    try:
        return render.render_bokeh(frame, coc, matte)
    finally:
        render.LAYER_SCALES = scales


def compare(name: str, frames: list[np.ndarray], full_every: int) -> dict:
    preset = all_optimisations_off(load_preset("portrait"))
    rows = {"3v2": [], "3v1": [], "2v1": []}
    off4 = []
    with Pipeline(preset) as pipe:
        for i, f in enumerate(frames):
            res = pipe.process(f, 33 * i)
            coc, matte = np.array(res.coc), np.array(res.matte)
            a3 = render_at(f, coc, matte, 3)
            a2 = render_at(f, coc, matte, 2)
            rows["3v2"].append(min(psnr(a3, a2), 99.0))
            off4.append(float(np.mean(np.abs(a3.astype(np.int16) - a2).max(-1) > 4)))
            if full_every and i % full_every == 0:
                a1 = render_at(f, coc, matte, 1)
                rows["3v1"].append(min(psnr(a3, a1), 99.0))
                rows["2v1"].append(min(psnr(a2, a1), 99.0))
    out = {"set": name, "frames": len(frames), "off4": float(np.mean(off4))}
    for k, v in rows.items():
        if v:
            out[k] = (float(np.mean(v)), float(np.min(v)), len(v))
    print(out, flush=True)
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1920x1080", help="frame size WxH (default 1920x1080)")
    ap.add_argument("--frames", type=int, default=30, help="frames per talking clip and DAVIS sequence")
    ap.add_argument("--full-every", type=int, default=5, help="render at full resolution every Nth frame (0 = never)")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    use_shared_models()
    results = []
    for clip in ("1.mp4", "2.mp4", "3.mp4", "4.mp4", "5.mp4"):
        frames = [fit_frame(f, (w, h)) for f in read_video(data_dir() / "talking" / clip, args.frames)]
        results.append(compare(f"talking/{clip}", frames, args.full_every))
    for seq in ("breakdance", "dance-twirl"):
        frames, _ = people_sequence(seq, args.frames)
        results.append(compare(f"people/{seq}", [fit_frame(f, (w, h)) for f in frames], args.full_every))
    for key, label in (("3v2", "s=3 vs s=2"), ("3v1", "s=3 vs s=1"), ("2v1", "s=2 vs s=1")):
        vals = [r[key] for r in results if key in r]
        n = sum(v[2] for v in vals)
        mean = sum(v[0] * v[2] for v in vals) / n
        print(f"{label}: mean PSNR {mean:.2f} dB over {n} frames, worst {min(v[1] for v in vals):.2f} dB")
    print(f"share of pixels off by > 4 levels (s=3 vs s=2): {np.mean([r['off4'] for r in results]):.4%}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
