#!/usr/bin/env python3
"""Measure ``run.py batch``: throughput for 1, 2 and N workers, and how well chunks join.

    python tools/batch_bench.py throughput [--workers 1 2 4] [--repeat 2] [--frames 60]
    python tools/batch_bench.py joins [--clips 1.mp4 4.mp4 dance-twirl] [--chunk 60] [--warmup 0 10 30]

``throughput`` runs the same batch (the five talking clips, ``--frames`` each, their own sizes,
no chunking) with each worker count, interleaved and repeated, each on a fresh local Ray, and
prints frames per second (the batch's own figure: every frame written divided by the time from
the first task handed out to the last file finished, model loading in the workers included) and
the whole command's wall time (Ray start and stop included). Medians over the repeats.

``joins`` runs each clip once in one pass and once cut into chunks of ``--chunk`` frames with
each ``--warmup``, as PNG frames with the matte, and prints the matte IoU (at 0.5) on the first
frames after each join and the PSNR of the output frames after the warm-up, against one pass.

Everything runs through the real CLI in subprocesses, on the shared test footage.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realtime.devtools.testdata import data_dir  # noqa: E402
from realtime.io.safefiles import write_bytes  # noqa: E402

CLIPS = ("1.mp4", "2.mp4", "3.mp4", "4.mp4", "5.mp4")


def _batch(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    t = time.monotonic()
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "batch", *args], cwd=cwd, env=env,
                       capture_output=True, text=True)
    return r, time.monotonic() - t


def _link_clips(folder: Path, clips) -> None:
    """Talking clips by file name (``4.mp4``), DAVIS frame folders by sequence name (``breakdance``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for c in clips:
        dst = folder / c
        src = data_dir() / "talking" / c if c.endswith(".mp4") else data_dir() / "people" / c / "frames"
        if not dst.exists():
            os.symlink(src, dst)


def throughput(args) -> dict:
    results: dict[int, list[tuple[float, float]]] = {w: [] for w in args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _link_clips(root / "in", CLIPS)
        for rep in range(args.repeat):
            for w in args.workers:
                out = root / f"out-{w}-{rep}"
                r, wall = _batch(["--input", "in", "--output", f"{out.name}/", "--workers", str(w), "--frames",
                                  str(args.frames), "--chunk-frames", "0"], root)
                m = re.search(r"\((\d+) frames in ([\d.]+) s, ([\d.]+) fps\)", r.stderr)
                if r.returncode != 0 or not m:
                    sys.exit(f"batch with {w} workers failed ({r.returncode}):\n{r.stderr[-3000:]}")
                fps = float(m.group(3))
                results[w].append((fps, wall))
                print(f"  run {rep + 1}: {w} worker(s): {m.group(1)} frames, {fps:.1f} fps, command {wall:.1f} s",
                      flush=True)
    summary = {}
    base = statistics.median(f for f, _ in results[args.workers[0]])
    print(f"\n{len(CLIPS)} clips x {args.frames} frames, medians of {args.repeat}:")
    print("| workers | frames/s | vs 1 worker | command wall s |")
    print("|---:|---:|---:|---:|")
    for w, runs in results.items():
        fps = statistics.median(f for f, _ in runs)
        wall = statistics.median(t for _, t in runs)
        summary[w] = {"fps": fps, "wall_s": wall, "runs": runs}
        print(f"| {w} | {fps:.1f} | {fps / base:.2f} | {wall:.1f} |")
    return summary


def _pngs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def joins(args) -> dict:
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _link_clips(root / "in", args.clips)
        common = ["--output-kind", "png", "--save-matte", "--quiet"]
        if args.frames:
            common += ["--frames", str(args.frames)]
        one, _ = _batch(["--input", *[f"in/{c}" for c in args.clips], "--output", "one/", "--chunk-frames", "0",
                         *common], root)
        if one.returncode != 0:
            sys.exit(one.stderr[-3000:])
        for warm in args.warmup:
            out = f"w{warm}"
            r, _ = _batch(["--input", *[f"in/{c}" for c in args.clips], "--output", f"{out}/", "--chunk-frames",
                           str(args.chunk), "--warmup-frames", str(warm), *common], root)
            if r.returncode != 0:
                sys.exit(r.stderr[-3000:])
            for clip in args.clips:
                stem = Path(clip).stem
                a, b = root / "one" / "in" / stem, root / out / "in" / stem
                names = [p.name for p in _pngs(a)]
                assert names == [p.name for p in _pngs(b)], (a, b)
                n = len(names)
                spans = max(2, round(n / args.chunk)) if n > 1.5 * args.chunk else 1
                starts = [round(k * n / spans) for k in range(1, spans)]
                ious, psnrs = [], []
                for i, name in enumerate(names):
                    ma = cv2.imread(str(a.with_name(stem + ".matte") / name), 0) >= 128
                    mb = cv2.imread(str(b.with_name(stem + ".matte") / name), 0) >= 128
                    u = (ma | mb).sum()
                    ious.append(float((ma & mb).sum() / u) if u else 1.0)
                    fa = cv2.imread(str(a / name)).astype(np.float64)
                    fb = cv2.imread(str(b / name)).astype(np.float64)
                    mse = float(((fa - fb) ** 2).mean())
                    psnrs.append(99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse))
                at_joins = [min(ious[s:s + 5]) for s in starts]
                row = {"frames": n, "joins": starts, "iou_at_joins_min": min(at_joins) if at_joins else 1.0,
                       "iou_min": min(ious), "psnr_min": min(psnrs), "psnr_median": statistics.median(psnrs)}
                report[f"{clip} warmup {warm}"] = row
                print(f"{clip}: {n} frames, chunks of {args.chunk}, warm-up {warm}: joins at {starts}; matte IoU "
                      f"at the joins (5 frames each) min {row['iou_at_joins_min']:.4f}, over all frames min "
                      f"{row['iou_min']:.4f}; output PSNR min {row['psnr_min']:.1f} dB, median "
                      f"{row['psnr_median']:.1f} dB", flush=True)
    return report


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--workers", type=int, nargs="+", default=[1, 2, os.cpu_count() or 2])
    t.add_argument("--repeat", type=int, default=2)
    t.add_argument("--frames", type=int, default=60)
    j = sub.add_parser("joins")
    j.add_argument("--clips", nargs="+", default=["1.mp4", "4.mp4"])
    j.add_argument("--chunk", type=int, default=60)
    j.add_argument("--warmup", type=int, nargs="+", default=[0, 10, 30])
    j.add_argument("--frames", type=int)
    for s in (t, j):
        s.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args()
    out = throughput(args) if args.cmd == "throughput" else joins(args)
    if args.json:
        write_bytes(args.json, json.dumps(out, indent=1, default=str).encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
