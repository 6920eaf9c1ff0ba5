"""Quality metrics for mattes and depth, shared by the evaluation scripts, benchmarks and tests.

- IoU at alpha 0.5;
- boundary F-measure as in DAVIS (boundaries matched within a tolerance of a fraction of the
  image diagonal, default 0.8%);
- the background plate: mean alpha on the background away from the person;
- dtSSD, the temporal-coherence error of Robust Video Matting's evaluation (x 100);
- AbsRel / delta1 of a disparity map after least-squares scale-and-shift alignment.
"""

from __future__ import annotations

import cv2
import numpy as np


def iou(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """Intersection over union of ``pred >= threshold`` and ``gt >= threshold`` (1.0 if both empty)."""
    p = pred >= threshold
    g = gt >= threshold
    union = np.count_nonzero(p | g)
    if union == 0:
        return 1.0
    return np.count_nonzero(p & g) / union


def boundary(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary of a boolean mask (pixels whose right/lower/diagonal neighbour differs)."""
    m = mask.astype(bool)
    b = np.zeros_like(m)
    b[:, :-1] |= m[:, :-1] != m[:, 1:]
    b[:-1, :] |= m[:-1, :] != m[1:, :]
    b[:-1, :-1] |= m[:-1, :-1] != m[1:, 1:]
    return b


def boundary_f(pred: np.ndarray, gt: np.ndarray, tolerance: float = 0.008, threshold: float = 0.5) -> float:
    """DAVIS boundary F-measure; ``tolerance`` is a fraction of the image diagonal."""
    h, w = gt.shape
    radius = max(1, int(np.ceil(tolerance * np.hypot(h, w))))
    pb = boundary(pred >= threshold)
    gb = boundary(gt >= threshold)
    n_p, n_g = np.count_nonzero(pb), np.count_nonzero(gb)
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    gd = cv2.dilate(gb.astype(np.uint8), disk).astype(bool)
    pd = cv2.dilate(pb.astype(np.uint8), disk).astype(bool)
    precision = np.count_nonzero(pb & gd) / n_p
    recall = np.count_nonzero(gb & pd) / n_g
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def background_plate(pred: np.ndarray, gt: np.ndarray, distance: float = 0.03) -> float:
    """Mean alpha (%) on the ground truth's background farther than ``distance`` (a fraction of
    the image diagonal) from the person: background kept semi-transparent, away from the edges
    the boundary measures look at. 0 when there is no such background."""
    h, w = gt.shape
    far = cv2.distanceTransform((gt < 0.5).astype(np.uint8), cv2.DIST_L2, 3) > distance * np.hypot(h, w)
    return float(pred[far].mean()) * 100.0 if far.any() else 0.0


def dtssd(pred_t: np.ndarray, pred_prev: np.ndarray, gt_t: np.ndarray, gt_prev: np.ndarray) -> float:
    """Temporal coherence error (Robust Video Matting's evaluation), alphas in [0, 1], x 100."""
    d = (pred_t.astype(np.float64) - pred_prev) - (gt_t.astype(np.float64) - gt_prev)
    return float(np.sqrt(np.sum(d * d) / gt_t.size) * 100.0)


def align_scale_shift(pred: np.ndarray, target: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``s * pred + t`` with (s, t) minimising the squared error to ``target`` on ``valid``."""
    x = pred[valid].astype(np.float64)
    y = target[valid].astype(np.float64)
    a = np.stack([x, np.ones_like(x)], axis=1)
    (s, t), *_ = np.linalg.lstsq(a, y, rcond=None)
    return s * pred.astype(np.float64) + t


def depth_errors(disparity: np.ndarray, depth_m: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float]:
    """AbsRel and delta1 of ``disparity`` against metric depth, after scale-and-shift alignment in disparity."""
    if valid is None:
        valid = depth_m > 0
    target = np.zeros_like(depth_m, dtype=np.float64)
    target[valid] = 1.0 / depth_m[valid]
    aligned = align_scale_shift(disparity, target, valid)
    aligned = np.maximum(aligned, 1.0 / 80.0)  # keep predicted depth finite and below 80 m
    pred_depth = 1.0 / aligned[valid]
    gt = depth_m[valid].astype(np.float64)
    absrel = float(np.mean(np.abs(pred_depth - gt) / gt))
    ratio = np.maximum(pred_depth / gt, gt / pred_depth)
    return {"absrel": absrel, "delta1": float(np.mean(ratio < 1.25))}


def blockiness(matte: np.ndarray, grid: tuple[float, float, float, float], band: tuple[float, float] = (0.02, 0.98)) -> float:
    """How much a matte steps at a sampling grid: the mean |second difference| of the matte on
    the pixel columns (rows) nearest the grid's lines over its mean on all columns (rows),
    inside the uncertain band, along x and y averaged. ``grid = (x0, y0, step_x, step_y)``:
    sample ``j`` sits at frame column ``x0 + (j + 0.5) step_x - 0.5`` (pixel centres aligned,
    as ``cv2.resize``). 1 = no sign of the grid; a bilinear upsampling (kinks only at the
    samples) scores about ``step / 2``. NaN when the band is empty or the grid is finer than 3
    pixels."""
    m = matte.astype(np.float32, copy=False)
    x0, y0, sx, sy = grid
    ratios = []
    for axis, origin, step in ((1, x0, sx), (0, y0, sy)):
        if step < 3.0:
            continue
        mm = m if axis == 1 else m.T
        d2 = np.abs(mm[:, :-2] - 2.0 * mm[:, 1:-1] + mm[:, 2:])
        centre = mm[:, 1:-1]
        inband = (centre > band[0]) & (centre < band[1])
        x = np.arange(1, mm.shape[1] - 1, dtype=np.float64)
        phase = np.mod((x - origin + 0.5) / step - 0.5, 1.0)
        dist = np.minimum(phase, 1.0 - phase) * step
        on = (dist <= 0.5 + 1e-6)[None, :] & inband
        if np.count_nonzero(on) < 20:
            continue
        e_all = d2[inband].mean()
        if e_all > 0:
            ratios.append(d2[on].mean() / e_all)
    return float(np.mean(ratios)) if ratios else float("nan")
