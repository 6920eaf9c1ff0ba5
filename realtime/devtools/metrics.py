"""Quality metrics for mattes and depth, shared by the evaluation scripts, benchmarks and tests.

- IoU at alpha 0.5;
- boundary F-measure as in DAVIS (boundaries matched within a tolerance of a fraction of the
  image diagonal, default 0.8%);
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
