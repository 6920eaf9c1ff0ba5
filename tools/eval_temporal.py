"""Temporal stability of the matte and the disparity, stabiliser on against off.

Prints markdown tables (pasted into docs/temporal.md). Every row runs the real segmenter and
depth stage once per frame and feeds the same matte and disparity to the stabiliser, so "off" is
exactly what the pipeline hands on without it:

- **static scene**: one real 1280x720 frame of a talking-head clip, repeated with seeded
  Gaussian camera noise (sigma in levels); after the warm-up frames, the share of pixels whose
  alpha crosses 0.5 between consecutive frames, the mean |d alpha| per frame and the mean
  |d disparity| per frame;
- **moving person**: the people/* sequences with ground truth: mean dtSSD (Robust Video
  Matting's temporal coherence error, x100) and mean IoU at alpha 0.5;
- **step change**: the talking frame, then the same frame shifted sideways (the person jumps);
  settle = frames after the jump until the stabilised matte agrees with the unstabilised one
  (IoU >= 0.98 and mean |difference| <= 0.01 on that frame and every later one; the unstabilised
  matte flickers, so the two never agree exactly even on a still scene), and the mean disparity
  difference 3 frames after the jump.

::

    python tools/eval_temporal.py                       # everything (a few minutes)
    python tools/eval_temporal.py --only static --clips 1 2 --sigmas 4
    python tools/eval_temporal.py --set matte_smoothing=0.95 --set motion_threshold=12
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realtime.devtools import testdata  # noqa: E402

testdata.use_shared_models()
DATA = testdata.data_dir()
FRAME_MS = 33
SIZE = (1280, 720)

from realtime import load_preset  # noqa: E402
from realtime.core.config import Preset  # noqa: E402
from realtime.stages.depth import DepthEstimator  # noqa: E402
from realtime.devtools.metrics import dtssd, iou  # noqa: E402
from realtime.devtools.settings import parse_settings  # noqa: E402
from realtime.stages.segmentation import Segmenter  # noqa: E402
from realtime.stages.temporal import Stabiliser  # noqa: E402


def talking_frame(clip: str, index: int = 0, size: tuple[int, int] = SIZE) -> np.ndarray:
    """Frame ``index`` of ``talking/<clip>.mp4`` resized to ``size``."""
    return testdata.video_frame(DATA / "talking" / f"{clip}.mp4", index, size)


noisy = testdata.noisy


def model_outputs(preset: Preset, frames) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """(frames, mattes, disparities) from the real segmenter and depth stage, one run per frame."""
    fs, ms, ds = [], [], []
    with Segmenter(preset.segmentation) as seg, DepthEstimator(preset.depth) as depth:
        for i, f in enumerate(frames):
            m = seg.process(f, i * FRAME_MS)
            d = depth.process(f, i * FRAME_MS, m)
            fs.append(f)
            ms.append(m.copy())
            ds.append(d.copy())
    return fs, ms, ds


def stabilised(preset: Preset, frames, mattes, disps) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The stabiliser's outputs for the given inputs (copied: its buffers are reused)."""
    om, od = [], []
    with Stabiliser(preset.temporal) as st:
        for i, (f, m, d) in enumerate(zip(frames, mattes, disps)):
            a, b = st.process(f, i * FRAME_MS, m, d)
            om.append(a.copy())
            od.append(b.copy())
    return om, od


def flicker(planes: list[np.ndarray], warmup: int) -> tuple[float, float]:
    """(% of pixels crossing 0.5, mean |d value|) per consecutive pair after ``warmup`` frames."""
    seq = planes[warmup:]
    cross = [np.count_nonzero((a >= 0.5) != (b >= 0.5)) / a.size for a, b in zip(seq[1:], seq[:-1])]
    delta = [float(np.mean(np.abs(a - b))) for a, b in zip(seq[1:], seq[:-1])]
    return 100.0 * float(np.mean(cross)), float(np.mean(delta))


def static_scene(preset: Preset, clip: str, sigma: float, n: int = 30, warmup: int = 10) -> dict[str, float]:
    base = talking_frame(clip)
    frames, mattes, disps = model_outputs(preset, (noisy(base, sigma, i) for i in range(n)))
    om, od = stabilised(preset, frames, mattes, disps)
    off_c, off_d = flicker(mattes, warmup)
    on_c, on_d = flicker(om, warmup)
    return {"off_cross": off_c, "on_cross": on_c, "off_da": off_d, "on_da": on_d,
            "off_dd": flicker(disps, warmup)[1], "on_dd": flicker(od, warmup)[1]}


def sequence_scores(mattes: list[np.ndarray], gts: list[np.ndarray]) -> tuple[float, float]:
    """(mean dtSSD over consecutive pairs, mean IoU)."""
    dt = [dtssd(mattes[i], mattes[i - 1], gts[i], gts[i - 1]) for i in range(1, len(gts))]
    return float(np.mean(dt)), float(np.mean([iou(m, g) for m, g in zip(mattes, gts)]))


def moving_person(preset: Preset, folder: Path) -> dict[str, float]:
    frames, gts = testdata.people_sequence(folder)
    frames, mattes, disps = model_outputs(preset, frames)
    om, _ = stabilised(preset, frames, mattes, disps)
    off_dt, off_iou = sequence_scores(mattes, gts)
    on_dt, on_iou = sequence_scores(om, gts)
    return {"n": len(frames), "off_dtssd": off_dt, "on_dtssd": on_dt, "off_iou": off_iou, "on_iou": on_iou}


def settle_frames(on: list[np.ndarray], off: list[np.ndarray], jump: int,
                  min_iou: float = 0.98, max_mean: float = 0.01) -> int | None:
    """Frames after ``jump`` until ``on`` agrees with ``off`` for good (None: never in the window)."""
    ok = [iou(a, b) >= min_iou and float(np.mean(np.abs(a - b))) <= max_mean
          for a, b in zip(on[jump:], off[jump:])]
    for k in range(len(ok)):
        if all(ok[k:]):
            return k
    return None


def step_change(preset: Preset, clip: str, shift: int, sigma: float = 4.0, before: int = 15,
                after: int = 8) -> dict[str, float]:
    base = talking_frame(clip)
    moved = np.ascontiguousarray(np.roll(base, shift, axis=1))
    frames, mattes, disps = model_outputs(
        preset, (noisy(base if i < before else moved, sigma, i) for i in range(before + after)))
    om, od = stabilised(preset, frames, mattes, disps)
    settle = settle_frames(om, mattes, before)
    return {"settle": -1 if settle is None else settle,
            "iou_jump": iou(om[before], mattes[before]),
            "iou_worst": min(iou(a, b) for a, b in zip(om[before:], mattes[before:])),
            "disp_diff_3": float(np.mean(np.abs(od[before + 3] - disps[before + 3])))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("static", "people", "step"), action="append",
                    help="run only these parts (repeatable)")
    ap.add_argument("--clips", nargs="*", default=["1", "2", "3", "4", "5"], help="talking clips (file stems)")
    ap.add_argument("--sigmas", nargs="*", type=float, default=[4.0, 2.0], help="static-scene noise levels")
    ap.add_argument("--frames", type=int, default=30, help="static-scene frames (10 of them warm-up)")
    ap.add_argument("--people", nargs="*", type=Path,
                    help="sequence folders (default: every folder in the data's people/)")
    ap.add_argument("--preset", default="portrait")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a [temporal] knob, e.g. matte_smoothing=0.95, or SECTION.KEY=VALUE "
                         "(e.g. segmentation.first_frame_views=false)")
    args = ap.parse_args(argv)
    parts = set(args.only or ("static", "people", "step"))
    preset = load_preset(args.preset)
    if args.set:
        preset = preset.replace(parse_settings(args.set, "temporal"))
    t = preset.temporal
    print(f"stabiliser: matte_smoothing {t.matte_smoothing:g}, depth_smoothing {t.depth_smoothing:g}, "
          f"motion_threshold {t.motion_threshold:g}, matte_follow {t.matte_follow:g}, "
          f"depth_follow {t.depth_follow:g}, hysteresis {t.hysteresis:g}\n")

    if "static" in parts:
        print(f"Static scene, 1280x720, {args.frames} frames, measured after 10 warm-up frames:\n")
        print("| clip | sigma | crossings % off | on | mean abs d-alpha off | on | ratio | "
              "mean abs d-disparity off | on |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for sigma in args.sigmas:
            for clip in args.clips:
                r = static_scene(preset, clip, sigma, args.frames)
                print(f"| {clip} | {sigma:g} | {r['off_cross']:.4f} | {r['on_cross']:.4f} | {r['off_da']:.6f} "
                      f"| {r['on_da']:.6f} | {r['off_da'] / max(r['on_da'], 1e-12):.1f}x | {r['off_dd']:.5f} "
                      f"| {r['on_dd']:.5f} |", flush=True)
        print()
    if "people" in parts:
        folders = args.people or sorted(p for p in (DATA / "people").iterdir() if (p / "masks").is_dir())
        print("Moving person (ground truth), mean over the sequence:\n")
        print("| sequence | frames | dtSSD off | dtSSD on | IoU off | IoU on |")
        print("|---|---:|---:|---:|---:|---:|")
        for folder in folders:
            r = moving_person(preset, folder)
            print(f"| {folder.name} | {r['n']} | {r['off_dtssd']:.3f} | {r['on_dtssd']:.3f} | {r['off_iou']:.4f} "
                  f"| {r['on_iou']:.4f} |", flush=True)
        print()
    if "step" in parts:
        print("Step change (frame shifted sideways between two frames, noise sigma 4):\n")
        print("| clip | shift px | settle frames | IoU(on, off) at the jump | worst IoU(on, off) after | "
              "mean abs disparity diff +3 |")
        print("|---|---:|---:|---:|---:|---:|")
        for clip in args.clips:
            for shift in (160, 8):
                r = step_change(preset, clip, shift)
                settle = "never" if r["settle"] < 0 else str(r["settle"])
                print(f"| {clip} | {shift} | {settle} | {r['iou_jump']:.4f} | {r['iou_worst']:.4f} "
                      f"| {r['disp_diff_3']:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
