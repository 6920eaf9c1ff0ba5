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
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realtime import load_preset  # noqa: E402
from realtime.config import SegModel  # noqa: E402
from realtime.metrics import boundary_f, iou  # noqa: E402
from realtime.segmentation import Segmenter  # noqa: E402


def _shared() -> Path:
    for cand in (ROOT.parent / "shared", Path("/work/shared")):
        if (cand / "models").is_dir():
            return cand
    return ROOT.parent / "shared"


SHARED = _shared()
os.environ.setdefault("REALTIME_MODEL_DIR", str(SHARED / "models"))
DATA = Path(os.environ.get("REALTIME_DATA_DIR", SHARED / "data"))
FRAME_MS = 33


def load_people(folder: Path, limit: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    frames = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in sorted((folder / "frames").glob("*.jpg"))[:limit]]
    masks = [(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 127).astype(np.float32)
             for p in sorted((folder / "masks").glob("*.png"))[:limit]]
    n = min(len(frames), len(masks))
    return frames[:n], masks[:n]


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
    for folder in folders:
        frames, masks = load_people(folder, args.limit)
        for m in model_names:
            cfg = dataclasses.replace(base, model=SegModel(m))
            r = evaluate(frames, masks, cfg)
            print(f"| {folder.name} | {m} | {r['n']} | {r['raw_iou']:.4f} | {r['ref_iou']:.4f} "
                  f"| {r['raw_bf']:.4f} | {r['ref_bf']:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
