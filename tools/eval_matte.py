"""Matte quality: the model's raw confidence upsampled bilinearly vs the refined matte.

Prints a markdown table (pasted into docs/matte.md): per sequence and model, mean IoU at alpha
0.5 and mean boundary F (DAVIS, tolerance 0.8% of the diagonal), for

- **raw**: the model's confidence upsampled bilinearly to the frame (``refine = "bilinear"``);
- **refined**: the :class:`realtime.segmentation.Segmenter` output with the preset's refinement.

Both come from the same model run per frame (the raw mask is ``Segmenter.confidence``
upsampled), so the difference is the refinement alone::

    python tools/eval_matte.py                          # people/* sequences, both models
    python tools/eval_matte.py --people DIR [DIR ...]   # other sequences (DIR/frames/*.jpg, DIR/masks/*.png)
    python tools/eval_matte.py --model landscape --set refine_radius_px=24 --set refine_eps=1e-3
    python tools/eval_matte.py --talking                # also head-and-shoulders, pseudo ground truth

``--talking`` adds 15 head-and-shoulders frames of the ``talking/`` clips (frames 10, 60, 110 of
each), which have no ground truth: a pseudo ground truth is made by OpenCV's GrabCut at full
resolution (6 iterations), initialised from the square model's raw confidence (sure where it is
beyond 0.05 / 0.95 after a 15-pixel erosion). GrabCut follows colour edges as the filter does
and starts from the model, so it is biased both ways: a sanity check, no acceptance measure. The
square model sees the native square frames, the landscape model the frames stretched to
1280x720 (and the pseudo ground truth stretched with them).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realtime import load_preset, testdata  # noqa: E402
from realtime.config import SegModel  # noqa: E402
from realtime.metrics import boundary_f, iou  # noqa: E402
from realtime.segmentation import Segmenter  # noqa: E402


testdata.use_shared_models()
DATA = testdata.data_dir()
FRAME_MS = 33



def evaluate(frames: list[np.ndarray], masks: list[np.ndarray], cfg) -> dict[str, float]:
    """Mean IoU and boundary F of raw (bilinear) and refined mattes over one sequence."""
    raw_iou, raw_bf, ref_iou, ref_bf = [], [], [], []
    with Segmenter(cfg) as seg:
        for i, (frame, gt) in enumerate(zip(frames, masks)):
            matte = seg.process(np.ascontiguousarray(frame), i * FRAME_MS)
            h, w = frame.shape[:2]
            raw = cv2.resize(seg.confidence, (w, h), interpolation=cv2.INTER_LINEAR)
            raw_iou.append(iou(raw, gt))
            raw_bf.append(boundary_f(raw, gt))
            ref_iou.append(iou(matte, gt))
            ref_bf.append(boundary_f(matte, gt))
    return {"n": len(frames), "raw_iou": float(np.mean(raw_iou)), "raw_bf": float(np.mean(raw_bf)),
            "ref_iou": float(np.mean(ref_iou)), "ref_bf": float(np.mean(ref_bf))}


TALKING = (("1.mp4", "2.mp4", "3.mp4", "4.mp4", "5.mp4"), (10, 60, 110))


def _read_frames(path: Path, indices: tuple[int, ...]) -> list[np.ndarray]:
    frames = testdata.read_video(path, max(indices) + 1)
    return [np.ascontiguousarray(frames[i]) for i in indices if i < len(frames)]


def talking_pseudo_gt(base) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Head-and-shoulders frames and GrabCut masks initialised from the square model's raw
    confidence (see the module docstring)."""
    clips, indices = TALKING
    frames = [f for c in clips for f in _read_frames(DATA / "talking" / c, indices)]
    masks = []
    with Segmenter(dataclasses.replace(base, model=SegModel.SQUARE)) as seg:
        for i, frame in enumerate(frames):
            seg.process(frame, i * FRAME_MS)
            h, w = frame.shape[:2]
            up = cv2.resize(seg.confidence, (w, h), interpolation=cv2.INTER_LINEAR)
            gc = np.where(up >= 0.5, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
            k = np.ones((15, 15), np.uint8)
            gc[cv2.erode((up >= 0.95).astype(np.uint8), k) > 0] = cv2.GC_FGD
            gc[cv2.erode((up <= 0.05).astype(np.uint8), k) > 0] = cv2.GC_BGD
            bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
            cv2.grabCut(frame, gc, None, bgd, fgd, 6, cv2.GC_INIT_WITH_MASK)
            masks.append(((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.float32))
    return frames, masks


def _parse_set(items: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--people", nargs="*", type=Path,
                    help="sequence folders (default: every folder in the data's people/)")
    ap.add_argument("--model", choices=("landscape", "square", "both"), default="both")
    ap.add_argument("--preset", default="portrait")
    ap.add_argument("--limit", type=int, default=None, help="first N frames of each sequence")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a [segmentation] knob, e.g. refine_radius_px=24")
    ap.add_argument("--talking", action="store_true",
                    help="also head-and-shoulders frames against a GrabCut pseudo ground truth (a sanity check)")
    args = ap.parse_args(argv)

    folders = args.people or sorted(p for p in (DATA / "people").iterdir() if (p / "masks").is_dir())
    model_names = ("landscape", "square") if args.model == "both" else (args.model,)
    preset = load_preset(args.preset)
    base = preset.replace({"segmentation": _parse_set(args.set)}).segmentation if args.set else preset.segmentation
    s = base
    print(f"refinement: {s.refine.value}, radius {s.refine_radius_px} px at 720p, eps {s.refine_eps:g}, "
          f"detail {s.refine_detail:g}, protect {s.refine_protect:g}\n")
    print("| sequence | model | frames | IoU raw | IoU refined | boundary F raw | boundary F refined |")
    print("|---|---|---:|---:|---:|---:|---:|")
    def row(name: str, m: str, r: dict[str, float]) -> None:
        print(f"| {name} | {m} | {r['n']} | {r['raw_iou']:.4f} | {r['ref_iou']:.4f} "
              f"| {r['raw_bf']:.4f} | {r['ref_bf']:.4f} |", flush=True)

    for folder in folders:
        frames, masks = testdata.people_sequence(folder, args.limit)
        for m in model_names:
            row(folder.name, m, evaluate(frames, masks, dataclasses.replace(base, model=SegModel(m))))
    if args.talking:
        frames, masks = talking_pseudo_gt(base)
        for m in model_names:
            if m == "landscape":
                frames_m = [np.ascontiguousarray(cv2.resize(f, (1280, 720), interpolation=cv2.INTER_AREA))
                            for f in frames]
                masks_m = [(cv2.resize(g, (1280, 720), interpolation=cv2.INTER_LINEAR) >= 0.5).astype(np.float32)
                           for g in masks]
            else:
                frames_m, masks_m = frames, masks
            row("talking (pseudo GT)", m, evaluate(frames_m, masks_m, dataclasses.replace(base, model=SegModel(m))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
