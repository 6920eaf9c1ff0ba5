"""Matte quality on every set we have, one command: IoU, boundary F, blockiness, stability.

Prints markdown tables (pasted into docs/matte.md). Each set is run the way a user meets it:

- **portraits**: ``../shared/data/portraits/`` (75 photos, machine-made masks), each photo on its
  own: ``reset()``, one ``process()`` call (the acceptance path for stills);
- **people**: the DAVIS sequences (854x480, hand-annotated masks), every frame in order;
- **crops**: head-and-shoulders views cut from the DAVIS frames with their real masks (below),
  each on its own like a still;
- **talking**: 15 frames of the talking-head clips against a GrabCut pseudo ground truth (below),
  each on its own, and the stability of the matte on the first 40 frames of clips 1, 4 and 5 at
  1280x720 in order (mean |alpha change| per frame, %; the clips are nearly still).

Columns: mean IoU at alpha 0.5, mean boundary F (DAVIS, tolerance 0.8% of the diagonal), the
background plate (:func:`realtime.devtools.metrics.background_plate`: mean alpha in % on the
ground truth's background more than 3% of the diagonal from the person) and
blockiness (:func:`realtime.devtools.metrics.blockiness`: the matte's second differences on the
refinement's coefficient grid over those half a period away, in the uncertain band; 1 = no
grid showing). ``--raw`` adds the reference: MediaPipe on the whole frame, upsampled bilinearly
(the model the preset picks for the frame's shape). ``--set KEY=VALUE`` changes a
``[segmentation]`` knob: the table then shows the preset (before) and the change (after) side by
side, and the verdict of the rule changes are kept by: the mean over the sets improves (IoU and
boundary F) and no set loses more than 0.005 IoU; then, per set, how many pictures gain and lose
(a mean one clip or a few photos move is weak evidence). ``--pipeline`` runs the whole
``Pipeline(load_preset(...))`` (stabiliser included, the acceptance path) instead of the
segmentation stage alone::

    python tools/eval_matte.py                          # every set, the segmentation stage
    python tools/eval_matte.py --pipeline --raw         # the acceptance path, with the reference
    python tools/eval_matte.py --sets portraits crops --set crop_margin=0.1
    python tools/eval_matte.py --limit 20               # first 20 photos / frames of each set

The talking set's 15 head-and-shoulders frames are of the ``talking/`` clips (frames 10, 60, 110 of
each), which have no ground truth: a pseudo ground truth is made by OpenCV's GrabCut at full
resolution (6 iterations), initialised from the square model's raw confidence (sure where it is
beyond 0.05 / 0.95 after a 15-pixel erosion). GrabCut follows colour edges as the filter does
and starts from the model, so it is biased both ways: a sanity check, no acceptance measure. The
square model sees the native square frames, the landscape model the frames stretched to
1280x720 (and the pseudo ground truth stretched with them).

The crops are webcam-style head-and-shoulders views with REAL ground truth, cut from the
people sequences (DAVIS masks): in each frame the annotated person's face is found by MediaPipe's
short-range face detector (:class:`realtime.stages.focus.MediaPipeFaceDetector`, score >= 0.5) run on
240x240 tiles (stride 120 down, 122 across, so a 40-pixel face is big enough for its 128x128
input); a face counts when at least half its box is ground-truth person, and the best-scoring
one is kept (frames without one, e.g. breakdance upside down, are skipped). The crop window is
:data:`CROP_FACE_WIDTHS` (5) face widths wide, 16:9 for the landscape model and 4:3 for the
square one, centred on the face horizontally with the face's top :data:`CROP_HEADROOM` (0.15)
of the window height below its top edge, shifted (never shrunk) to stay inside the frame; a
window that would not fit in the frame is shrunk to it. Frames whose window holds less than 10%
person are skipped. The window is resized to 1280x720 (16:9) or 640x480 (4:3), frames with
INTER_LINEAR (a 200-pixel window is enlarged about 5x: soft, like a webcam's optics) and masks
by INTER_LINEAR of the 0/1 mask thresholded at 0.5 (a smooth outline rather than the 5-pixel
steps of INTER_NEAREST).
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

from realtime import Pipeline, load_preset  # noqa: E402
from realtime.devtools import testdata
from realtime.core.config import MatteQuality, MatteRefine, SegModel  # noqa: E402
from realtime.devtools.metrics import background_plate, blockiness, boundary_f, iou  # noqa: E402
from realtime.devtools.settings import parse_settings  # noqa: E402
from realtime.stages.segmentation import Segmenter  # noqa: E402


testdata.use_shared_models()
DATA = testdata.data_dir()
FRAME_MS = 33



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
    with Segmenter(dataclasses.replace(base, model=SegModel.SQUARE, crop=False, quality=MatteQuality.FAST)) as seg:
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


CROP_FACE_WIDTHS = 5.0
CROP_HEADROOM = 0.15
CROP_MIN_PERSON = 0.10
CROP_SIZES = {"landscape": (1280, 720), "square": (640, 480)}


def find_faces(frames: list[np.ndarray], masks: list[np.ndarray]) -> list[tuple[int, int, int, int] | None]:
    """Per frame the annotated person's face box ``(x0, y0, x1, y1)`` in pixels, or None (see the
    module docstring)."""
    from realtime.stages.focus import MediaPipeFaceDetector

    tile, step_y, step_x = 240, 120, 122
    out: list[tuple[int, int, int, int] | None] = []
    det = MediaPipeFaceDetector(min_confidence=0.5)
    try:
        for frame, gt in zip(frames, masks):
            h, w = gt.shape
            best, best_score = None, -1.0
            for ty in range(0, max(h - tile, 0) + 1, step_y):
                for tx in range(0, max(w - tile, 0) + 1, step_x):
                    rgb = np.ascontiguousarray(frame[ty:ty + tile, tx:tx + tile, ::-1])
                    th, tw = rgb.shape[:2]
                    for x0, y0, x1, y1, score in det.detect(rgb):
                        bx0, by0 = int(round(tx + x0 * tw)), int(round(ty + y0 * th))
                        bx1, by1 = int(round(tx + x1 * tw)), int(round(ty + y1 * th))
                        cx0, cy0, cx1, cy1 = max(bx0, 0), max(by0, 0), min(bx1, w), min(by1, h)
                        if cx1 <= cx0 or cy1 <= cy0:
                            continue
                        inside = float(gt[cy0:cy1, cx0:cx1].sum()) / ((bx1 - bx0) * (by1 - by0))
                        if inside >= 0.5 and score > best_score:
                            best, best_score = (bx0, by0, bx1, by1), score
            out.append(best)
    finally:
        det.close()
    return out


def crop_window(face: tuple[int, int, int, int], frame_size: tuple[int, int], aspect: float) -> tuple[int, int, int, int]:
    """``(x0, y0, width, height)`` of the head-and-shoulders window around a face box."""
    w, h = frame_size
    fx0, fy0, fx1, _ = face
    cw = CROP_FACE_WIDTHS * (fx1 - fx0)
    cw = int(round(min(cw, w, h * aspect)))
    ch = int(round(cw / aspect))
    x0 = int(round((fx0 + fx1) / 2 - cw / 2))
    y0 = int(round(fy0 - CROP_HEADROOM * ch))
    return min(max(x0, 0), w - cw), min(max(y0, 0), h - ch), cw, ch


def head_crops(folders: list[Path], model: str) -> list[tuple[str, list[np.ndarray], list[np.ndarray]]]:
    """Per sequence: the head-and-shoulders crops and their ground truth (module docstring)."""
    size = CROP_SIZES[model]
    aspect = size[0] / size[1]
    out = []
    for folder in folders:
        frames, masks = testdata.people_sequence(folder)
        faces = _FACES.get(str(folder))
        if faces is None:
            faces = _FACES[str(folder)] = find_faces(frames, masks)
        cf, cm = [], []
        for frame, gt, face in zip(frames, masks, faces):
            if face is None:
                continue
            x0, y0, cw, ch = crop_window(face, gt.shape[::-1], aspect)
            g = gt[y0:y0 + ch, x0:x0 + cw]
            if g.mean() < CROP_MIN_PERSON:
                continue
            cf.append(np.ascontiguousarray(cv2.resize(frame[y0:y0 + ch, x0:x0 + cw], size,
                                                      interpolation=cv2.INTER_LINEAR)))
            cm.append((cv2.resize(g, size, interpolation=cv2.INTER_LINEAR) >= 0.5).astype(np.float32))
        if cf:
            out.append((Path(folder).name, cf, cm))
    return out


_FACES: dict[str, list] = {}  # face boxes per sequence, found once per run


def portraits(limit: int | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The portrait photos and their masks (0/1 float32)."""
    folder = DATA / "portraits"
    files = sorted((folder / "images").glob("*.jpg"))[:limit]
    frames = [np.ascontiguousarray(cv2.imread(str(f), cv2.IMREAD_COLOR)) for f in files]
    masks = [(cv2.imread(str(folder / "masks" / f"{f.stem}.png"), cv2.IMREAD_GRAYSCALE) >= 128).astype(np.float32)
             for f in files]
    return frames, masks


def load_sets(names: list[str], limit: int | None) -> list[tuple[str, bool, list[np.ndarray], list[np.ndarray] | None]]:
    """``(name, in_order, frames, masks)`` per set; ``in_order`` sets are streams (else stills),
    masks None for the stability set."""
    folders = sorted(p for p in (DATA / "people").iterdir() if (p / "masks").is_dir())
    out = []
    if "portraits" in names:
        out.append(("portraits", False, *portraits(limit)))
    if "people" in names:
        for folder in folders:
            out.append((f"people {folder.name}", True, *testdata.people_sequence(folder, limit)))
    if "crops" in names:
        for model in ("landscape", "square"):
            w, h = CROP_SIZES[model]
            for name, frames, masks in head_crops(folders, model):
                out.append((f"crops {name} {w}x{h}", False, frames[:limit], masks[:limit]))
    if "talking" in names:
        base = load_preset("portrait").segmentation
        frames, masks = talking_pseudo_gt(base)
        out.append(("talking pseudo GT", False, frames[:limit], masks[:limit]))
        for clip in STABILITY_CLIPS:
            clip_frames = testdata.read_video(DATA / "talking" / clip, STABILITY_FRAMES)
            clip_frames = [np.ascontiguousarray(cv2.resize(f, (1280, 720), interpolation=cv2.INTER_AREA))
                           for f in clip_frames]
            out.append((f"talking {clip} stability", True, clip_frames, None))
    return out


STABILITY_CLIPS = ("1.mp4", "4.mp4", "5.mp4")
STABILITY_FRAMES = 40


class _Runner:
    """Mattes of one configuration: the segmentation stage alone, or the whole pipeline."""

    def __init__(self, preset, pipeline: bool) -> None:
        self.pipe = Pipeline(preset) if pipeline else None
        self.seg = self.pipe.segmenter if pipeline else Segmenter(preset.segmentation)

    def reset(self) -> None:
        (self.pipe or self.seg).reset()

    def process(self, frame: np.ndarray, ts: int) -> np.ndarray:
        if self.pipe is not None:
            return self.pipe.process(frame, ts).matte
        return self.seg.process(frame, ts)

    def close(self) -> None:
        (self.pipe or self.seg).close()


def score(preset, frames, masks, in_order: bool, pipeline: bool) -> dict[str, float]:
    """Mean IoU, boundary F and blockiness (or the stability: mean |alpha change| per frame, %)."""
    run = _Runner(preset, pipeline)
    ious, bfs, plates, blocks, changes, prev = [], [], [], [], [], None
    try:
        for i, frame in enumerate(frames):
            if not in_order:
                run.reset()
            matte = np.array(run.process(frame, i * FRAME_MS))
            if masks is not None:
                ious.append(iou(matte, masks[i]))
                bfs.append(boundary_f(matte, masks[i]))
                plates.append(background_plate(matte, masks[i]))
            b = blockiness(matte, run.seg.grid) if run.seg.grid is not None else float("nan")
            if np.isfinite(b):
                blocks.append(b)
            if in_order and prev is not None:
                changes.append(float(np.abs(matte - prev).mean()) * 100.0)
            prev = matte
    finally:
        run.close()
    nan = float("nan")
    return {"n": len(frames), "iou": float(np.mean(ious)) if ious else nan, "bf": float(np.mean(bfs)) if bfs else nan,
            "ious": ious, "bfs": bfs,
            "plate": float(np.mean(plates)) if plates else nan,
            "block": float(np.mean(blocks)) if blocks else nan, "change": float(np.mean(changes)) if changes else nan}


def raw_preset(preset):
    """MediaPipe on the whole frame, upsampled bilinearly: the reference."""
    return preset.replace({"segmentation": {"crop": False, "refine": MatteRefine.BILINEAR.value,
                                            "quality": MatteQuality.FAST.value},
                           "depth": {"fade_behind": False}})


def _parse_set(items: list[str]) -> dict[str, dict[str, object]]:
    """``KEY=VALUE`` items: ``[segmentation]`` knobs by their name, others as ``SECTION.KEY``."""
    return parse_settings(items, "segmentation")


def _fmt(x: float) -> str:
    return "" if not np.isfinite(x) else f"{x:.4f}"


def verdict(before: list[dict], after: list[dict]) -> str:
    """The rule a change is kept by: the mean IoU and boundary F over the sets with ground truth
    improve (neither drops), and no set loses more than 0.005 IoU."""
    pairs = [(b, a) for b, a in zip(before, after) if np.isfinite(b["iou"])]
    d_iou = float(np.mean([a["iou"] - b["iou"] for b, a in pairs]))
    d_bf = float(np.mean([a["bf"] - b["bf"] for b, a in pairs]))
    worst = min(a["iou"] - b["iou"] for b, a in pairs)
    keep = d_iou >= 0 and d_bf >= 0 and (d_iou > 0 or d_bf > 0) and worst >= -0.005
    return (f"mean over the sets: IoU {d_iou:+.4f}, boundary F {d_bf:+.4f}; worst set IoU {worst:+.4f} "
            f"-> {'KEEP' if keep else 'REJECT'}")


def tally(before: dict, after: dict, tol: float = 1e-4) -> str:
    """How many pictures of a set gain and lose (IoU, boundary F) by more than ``tol``: a mean
    moved by a few pictures is weaker evidence than one moved by most of them."""
    cells = []
    for k in ("ious", "bfs"):
        d = np.subtract(after[k], before[k])
        cells.append(f"{int((d > tol).sum())} / {int((d < -tol).sum())}")
    return " | ".join(cells)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    ap.add_argument("--preset", default="portrait")
    ap.add_argument("--limit", type=int, default=None, help="first N photos / frames of each set")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="change a [segmentation] knob (or SECTION.KEY, with --pipeline): before/after columns "
                         "and the keep rule's verdict")
    ap.add_argument("--pipeline", action="store_true", help="the whole Pipeline (the acceptance path), not the stage alone")
    ap.add_argument("--raw", action="store_true", help="also MediaPipe on the whole frame, bilinear (the reference)")
    args = ap.parse_args(argv)

    preset = load_preset(args.preset)
    configs = [("raw", raw_preset(preset))] if args.raw else []
    configs.append(("before" if args.set else "matte", preset))
    if args.set:
        changes = _parse_set(args.set)
        if set(changes) - {"segmentation"} and not args.pipeline:
            ap.error(f"--set {' '.join(args.set)} changes a stage after segmentation: add --pipeline")
        configs.append(("after", preset.replace(changes)))
    s = configs[-1][1].segmentation
    print(f"{'pipeline' if args.pipeline else 'segmentation stage'}; crop {s.crop} margin {s.crop_margin:g}, "
          f"resize {s.resize.value}, quality {s.quality.value}, refine {s.refine.value} radius {s.refine_radius_px} "
          f"eps {s.refine_eps:g} guide {s.refine_guide_scale:g} contrast {s.refine_contrast:g}"
          + (f"; changed: {' '.join(args.set)}" if args.set else "") + "\n")
    names = [n for n, _ in configs]
    cols = [f"{m} {n}" for m in ("IoU", "BF", "plate %", "blockiness") for n in names]
    print("| set | n | " + " | ".join(cols) + " | stability " + " / ".join(names) + " |")
    print("|---|---:|" + "---:|" * (len(cols) + 1))
    results: dict[str, list[dict]] = {n: [] for n in names}
    set_names = []
    for name, in_order, frames, masks in load_sets(args.sets, args.limit):
        set_names.append(name + (" (in order)" if in_order else ""))
        row = {n: score(p, frames, masks, in_order, args.pipeline) for n, p in configs}
        for n in names:
            results[n].append(row[n])
        cells = [_fmt(row[n][k]) for k in ("iou", "bf", "plate", "block") for n in names]
        stab = " / ".join(_fmt(row[n]["change"]) for n in names) if masks is None else ""
        print(f"| {name} | {row[names[0]]['n']} | " + " | ".join(cells) + f" | {stab} |", flush=True)
    gt = [i for i, r in enumerate(results[names[-1]]) if np.isfinite(r["iou"])]
    mean = lambda n, k: float(np.mean([results[n][i][k] for i in gt]))  # noqa: E731
    print("| mean of the sets | | " + " | ".join(_fmt(mean(n, k)) for k in ("iou", "bf", "plate", "block") for n in names) + " | |")
    if args.set:
        print("\n" + verdict([results["before"][i] for i in gt], [results["after"][i] for i in gt]))
        # frames of a sequence are one clip, not independent pictures: read their counts as one
        print("\n| set | IoU up / down | BF up / down |\n|---|---:|---:|")
        for i in gt:
            print(f"| {set_names[i]} | {tally(results['before'][i], results['after'][i])} |")
    return 0


SETS = ("portraits", "people", "crops", "talking")

if __name__ == "__main__":
    sys.exit(main())
