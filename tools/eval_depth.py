"""Depth quality: person-vs-background ordering, NYUv2 AbsRel/delta1, static flicker.

Prints one markdown table per measurement (pasted into docs/depth.md)::

    python tools/eval_depth.py                       # everything, default preset
    python tools/eval_depth.py --people DIR [DIR..]  # extra sequences (DIR/frames/*.jpg, DIR/masks/*.png)
    python tools/eval_depth.py --fit crop            # compare the crop fit

Ordering: per frame, is the median disparity inside the ground-truth person mask larger than
the median of the background? "raw" is the model alone (letterboxed, upsampled bilinearly:
the order of two medians does not depend on any monotonic mapping), "depth stage" is
:class:`realtime.stages.depth.DepthEstimator` fed the real segmentation matte, "pipeline" is
``Result.disparity`` of the whole :class:`realtime.Pipeline`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realtime import Pipeline, load_preset  # noqa: E402
from realtime.devtools import testdata
from realtime.core.config import DepthFit  # noqa: E402
from realtime.stages.depth import MODEL_H, MODEL_W, DepthEstimator, compute_fit, open_backend  # noqa: E402
from realtime.devtools.metrics import depth_errors  # noqa: E402
from realtime.stages.segmentation import Segmenter  # noqa: E402


testdata.use_shared_models()
DATA = testdata.data_dir()
FRAME_MS = 33



def raw_model(backend, frame: np.ndarray, fit_mode: DepthFit) -> np.ndarray:
    """The model's output alone, fitted like the stage does it, upsampled bilinearly to the frame."""
    h, w = frame.shape[:2]
    f = compute_fit(h, w, fit_mode)
    src = frame[f.sy:f.sy + f.sh, f.sx:f.sx + f.sw]
    small = cv2.resize(src, (f.nw, f.nh), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((MODEL_H, MODEL_W, 3), np.uint8)
    canvas[f.dy:f.dy + f.nh, f.dx:f.dx + f.nw] = small
    x = np.ascontiguousarray(cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)[None], dtype=np.float32)
    out = np.asarray(backend.infer(x), np.float32)[f.dy:f.dy + f.nh, f.dx:f.dx + f.nw]
    full = np.empty((h, w), np.float32)
    if f.sh == h and f.sw == w:
        cv2.resize(out, (w, h), dst=full, interpolation=cv2.INTER_LINEAR)
    else:  # crop: outside the crop, the nearest model value
        inner = cv2.resize(out, (f.sw, f.sh), interpolation=cv2.INTER_LINEAR)
        full[:] = cv2.copyMakeBorder(inner, f.sy, h - f.sh - f.sy, f.sx, w - f.sw - f.sx, cv2.BORDER_REPLICATE)
    return full


def ordered(disparity: np.ndarray, person: np.ndarray) -> tuple[bool, float]:
    p = float(np.median(disparity[person]))
    b = float(np.median(disparity[~person]))
    return p > b, p - b


def eval_ordering(preset, sequences: list[Path], with_pipeline: bool) -> list[tuple]:
    rows = []
    backend = open_backend(preset.depth)
    try:
        for folder in sequences:
            frames, gt = testdata.people_sequence(folder)
            masks = [m > 0.5 for m in gt]
            raw = [ordered(raw_model(backend, f, preset.depth.fit), m)[0] for f, m in zip(frames, masks)]
            stage = []
            with Segmenter(preset.segmentation) as seg, DepthEstimator(preset.depth) as dep:
                for i, (f, m) in enumerate(zip(frames, masks)):
                    ts = i * FRAME_MS + 1
                    stage.append(ordered(dep.process(f, ts, seg.process(f, ts)), m)[0])
            pipe = []
            if with_pipeline:
                with Pipeline(preset) as pl:
                    for i, (f, m) in enumerate(zip(frames, masks)):
                        pipe.append(ordered(pl.process(f, i * FRAME_MS + 1).disparity, m)[0])
            rows.append((folder.name, len(frames), np.mean(raw), np.mean(stage), np.mean(pipe) if pipe else None))
    finally:
        backend.close()
    return rows


def nyu_samples() -> list[tuple[str, np.ndarray, np.ndarray]]:
    root = DATA / "depth" / "nyuv2"
    out = []
    for p in sorted(root.glob("rgb_*.jpg")):
        depth_file = root / p.name.replace("rgb_", "sync_depth_").replace(".jpg", ".png")
        depth = cv2.imread(str(depth_file), cv2.IMREAD_UNCHANGED)
        out.append((p.stem, cv2.imread(str(p), cv2.IMREAD_COLOR), depth.astype(np.float32) / 1000.0))
    rgb = np.load(root / "fastdepth_rgb.npy")
    bgr = cv2.cvtColor(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    out.append(("fastdepth", np.ascontiguousarray(bgr), np.load(root / "fastdepth_depth.npy").astype(np.float32)))
    return out


def eval_nyu(preset) -> list[tuple]:
    rows = []
    backend = open_backend(preset.depth)
    try:
        for name, bgr, depth in nyu_samples():
            valid = depth > 0
            raw = depth_errors(raw_model(backend, bgr, preset.depth.fit), depth, valid)
            with DepthEstimator(preset.depth) as dep:  # no person: the stage's mapping and filling only
                d = dep.process(bgr, 1, np.zeros(bgr.shape[:2], np.float32))
                ours = depth_errors(d, depth, valid)
            rows.append((name, raw["absrel"], raw["delta1"], ours["absrel"], ours["delta1"]))
    finally:
        backend.close()
    return rows


def static_clip(sigma: float, n: int, seed: int = 0) -> list[np.ndarray]:
    """One real 1280x720 talking-head frame repeated with Gaussian camera noise."""
    cap = cv2.VideoCapture(str(DATA / "talking" / "1.mp4"))
    ok, frame = cap.read()
    cap.release()
    if not ok:
        raise SystemExit("cannot read talking/1.mp4")
    base = cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_AREA).astype(np.float32)
    rng = np.random.default_rng(seed)
    return [np.clip(base + rng.normal(0.0, sigma, base.shape), 0, 255).round().astype(np.uint8) for _ in range(n)]


def _changes(maps: list[np.ndarray], warmup: int) -> list[float]:
    return [float(np.mean(np.abs(maps[i] - maps[i - 1]))) for i in range(warmup + 1, len(maps))]


def eval_flicker(preset, sigma: float, n: int = 40, warmup: int = 10, with_pipeline: bool = True) -> list[tuple]:
    frames = static_clip(sigma, n)
    rows = []
    backend = open_backend(preset.depth)
    try:
        raw = []
        for f in frames:
            r = raw_model(backend, f, preset.depth.fit)
            raw.append((r - r.min()) / max(float(r.max() - r.min()), 1e-6))
    finally:
        backend.close()
    ch = _changes(raw, warmup)
    rows.append(("raw model, min-max per frame", np.mean(ch), np.max(ch), None))
    stage, focus = [], []
    with Segmenter(preset.segmentation) as seg, DepthEstimator(preset.depth) as dep:
        from realtime.stages.focus import FocusTracker

        with FocusTracker(preset.focus) as foc:
            for i, f in enumerate(frames):
                ts = i * FRAME_MS + 1
                m = seg.process(f, ts)
                d = dep.process(f, ts, m)
                focus.append(foc.process(f, ts, m, d))
                stage.append(d.copy())
    ch = _changes(stage, warmup)
    rows.append(("depth stage", np.mean(ch), np.max(ch), float(np.sum(np.abs(np.diff(focus[warmup:]))))))
    if with_pipeline:
        maps, focus = [], []
        with Pipeline(preset) as pl:
            for i, f in enumerate(frames):
                r = pl.process(f, i * FRAME_MS + 1)
                maps.append(r.disparity.copy())
                focus.append(r.focus)
        ch = _changes(maps, warmup)
        rows.append(("pipeline (r.disparity, r.focus)", np.mean(ch), np.max(ch),
                     float(np.sum(np.abs(np.diff(focus[warmup:]))))))
    return rows


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 0.1 else f"{v:.3f}"
    return str(v)


def table(header: list[str], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="portrait")
    ap.add_argument("--fit", choices=[m.value for m in DepthFit], default=None)
    ap.add_argument("--synchronous", action="store_true", help="run the model in the caller's thread")
    ap.add_argument("--people", nargs="*", type=Path, default=[], help="extra sequences with frames/ and masks/")
    ap.add_argument("--no-pipeline", action="store_true", help="skip the whole-pipeline columns")
    ap.add_argument("--only", choices=["ordering", "nyu", "flicker"], default=None)
    args = ap.parse_args(argv)
    preset = load_preset(args.preset)
    if args.fit:
        preset = preset.replace({"depth": {"fit": args.fit}})
    if args.synchronous:
        preset = preset.replace({"depth": {"asynchronous": False}})
    pipe = not args.no_pipeline
    mode = "asynchronous" if preset.depth.asynchronous else "synchronous"
    print(f"preset {preset.name}, fit {preset.depth.fit.value}, backend {preset.depth.backend.value}, {mode}\n")
    if args.only in (None, "ordering"):
        seqs = [DATA / "people" / n for n in ("breakdance", "dance-twirl")] + list(args.people)
        print("Person nearer than background (median disparity in GT person > in GT background), share of frames:\n")
        print(table(["sequence", "frames", "raw model", "depth stage", "pipeline"], eval_ordering(preset, seqs, pipe)))
        print()
    if args.only in (None, "nyu"):
        print("NYUv2 after least-squares scale-and-shift alignment of disparity:\n")
        print(table(["image", "raw AbsRel", "raw delta1", "stage AbsRel", "stage delta1"], eval_nyu(preset)))
        print()
    if args.only in (None, "flicker"):
        for sigma in (2.0, 4.0):
            print(f"Static clip (talking/1.mp4 frame 0 at 1280x720, noise sigma {sigma:g}, 40 frames, "
                  "10 warm-up): mean |disparity change| per frame, focus total movement:\n")
            rows = eval_flicker(preset, sigma, with_pipeline=pipe)
            print(table(["what", "mean change", "max change", "focus moved"], rows))
            print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
