"""Matte quality: the model's raw confidence upsampled bilinearly vs the refined matte.

Prints a markdown table (pasted into docs/matte.md): per sequence and model, mean IoU at alpha
0.5 and mean boundary F (DAVIS, tolerance 0.8% of the diagonal), for

- **raw**: the model's confidence upsampled bilinearly to the frame (``refine = "bilinear"``);
- **refined**: the :class:`realtime.stages.segmentation.Segmenter` output with the preset's refinement.

Both come from the same model run per frame (the raw mask is ``Segmenter.confidence``
upsampled), so the difference is the refinement alone::

    python tools/eval_matte.py                          # people/* sequences, both models
    python tools/eval_matte.py --people DIR [DIR ...]   # other sequences (DIR/frames/*.jpg, DIR/masks/*.png)
    python tools/eval_matte.py --model landscape --set refine_radius_px=24 --set refine_eps=1e-3
    python tools/eval_matte.py --talking                # also head-and-shoulders, pseudo ground truth
    python tools/eval_matte.py --crops                  # also head-and-shoulders crops, real ground truth

``--talking`` adds 15 head-and-shoulders frames of the ``talking/`` clips (frames 10, 60, 110 of
each), which have no ground truth: a pseudo ground truth is made by OpenCV's GrabCut at full
resolution (6 iterations), initialised from the square model's raw confidence (sure where it is
beyond 0.05 / 0.95 after a 15-pixel erosion). GrabCut follows colour edges as the filter does
and starts from the model, so it is biased both ways: a sanity check, no acceptance measure. The
square model sees the native square frames, the landscape model the frames stretched to
1280x720 (and the pseudo ground truth stretched with them).

``--crops`` adds webcam-style head-and-shoulders views with REAL ground truth, cut from the
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

from realtime import load_preset  # noqa: E402
from realtime.devtools import testdata
from realtime.core.config import SegModel  # noqa: E402
from realtime.devtools.metrics import boundary_f, iou  # noqa: E402
from realtime.stages.segmentation import Segmenter  # noqa: E402


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
    ap.add_argument("--crops", action="store_true",
                    help="also head-and-shoulders crops of the people sequences, real ground truth")
    ap.add_argument("--only-crops", action="store_true", help="the crops (and --talking) without the full sequences")
    args = ap.parse_args(argv)

    folders = args.people or sorted(p for p in (DATA / "people").iterdir() if (p / "masks").is_dir())
    model_names = ("landscape", "square") if args.model == "both" else (args.model,)
    preset = load_preset(args.preset)
    base = preset.replace({"segmentation": _parse_set(args.set)}).segmentation if args.set else preset.segmentation
    s = base
    print(f"refinement: {s.refine.value}, radius {s.refine_radius_px} px at 720p, eps {s.refine_eps:g}, "
          f"detail {s.refine_detail:g}, protect {s.refine_protect:g}, guide scale {s.refine_guide_scale:g}, "
          f"contrast {s.refine_contrast:g}\n")
    print("| sequence | model | frames | IoU raw | IoU refined | boundary F raw | boundary F refined |")
    print("|---|---|---:|---:|---:|---:|---:|")
    def row(name: str, m: str, r: dict[str, float]) -> None:
        print(f"| {name} | {m} | {r['n']} | {r['raw_iou']:.4f} | {r['ref_iou']:.4f} "
              f"| {r['raw_bf']:.4f} | {r['ref_bf']:.4f} |", flush=True)

    for folder in folders if not args.only_crops else ():
        frames, masks = testdata.people_sequence(folder, args.limit)
        for m in model_names:
            row(folder.name, m, evaluate(frames, masks, dataclasses.replace(base, model=SegModel(m))))
    if args.crops or args.only_crops:
        for m in model_names:
            for name, frames, masks in head_crops(folders, m):
                w, h = CROP_SIZES[m]
                row(f"{name} head crops {w}x{h}", m, evaluate(frames, masks, dataclasses.replace(base, model=SegModel(m))))
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
