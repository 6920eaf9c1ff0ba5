"""Micro-benchmark of segmentation + matte refinement at the frames' size.

Timed, interleaved (A B A B) so machine drift hits both alike:

- **segmentation+refine**: ``Segmenter.process`` with the default preset (resize to the model's
  input, MediaPipe, guided refinement to full resolution);
- **segmentation+bilinear** (baseline): the same with ``refine = "bilinear"``.

Also, on the same frames, the refinement alone (coefficients + full-resolution pass) against a
bilinear ``cv2.resize`` of the confidence, and the share of it spent at full resolution. The
issue's budget: segmentation plus refinement <= 6 ms median per 1280x720 frame on 2 cores.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from ..config import MatteRefine, load_preset
from ..segmentation import Segmenter
from . import Measurement, interleaved

FRAME_MS = 33


def run(frames: list[np.ndarray], repeats: int) -> list[Measurement]:
    import shaders

    shaders.warmup()
    h, w = frames[0].shape[:2]
    n = len(frames)
    cfg = load_preset("portrait").segmentation
    guided = Segmenter(cfg)
    bilinear = Segmenter(dataclasses.replace(cfg, refine=MatteRefine.BILINEAR))
    ts = [0]
    try:
        def seg_refine(i: int) -> None:
            ts[0] += FRAME_MS
            guided.process(frames[i % n], ts[0])

        def seg_bilinear(i: int) -> None:
            bilinear.process(frames[i % n], ts[0])

        t_ref, t_bil = interleaved(seg_refine, seg_bilinear, repeats, warmup=5)

        # the refinement alone, on the model outputs of the frames (computed untimed)
        small, confs = [], []
        for i, f in enumerate(frames):
            guided.process(f, ts[0] + (i + 1) * FRAME_MS)
            small.append(guided._rgb.copy())
            confs.append(np.array(guided.confidence))
        ts[0] += (n + 1) * FRAME_MS
        refiner = guided._refiner
        out = np.empty((h, w), np.float32)
        up = np.empty((h, w), np.float32)

        def refine_only(i: int) -> None:
            refiner.run(small[i % n], confs[i % n], frames[i % n], out)

        def bilinear_only(i: int) -> None:
            cv2.resize(confs[i % n], (w, h), dst=up, interpolation=cv2.INTER_LINEAR)
            np.clip(up, 0.0, 1.0, out=up)

        t_only, t_up = interleaved(refine_only, bilinear_only, repeats, warmup=5)

        def coeffs_only(i: int) -> None:
            refiner.coefficients(small[i % n], confs[i % n])

        def apply_only(i: int) -> None:
            refiner.apply(frames[i % n], out)

        t_coef, t_apply = interleaved(coeffs_only, apply_only, repeats, warmup=5)
    finally:
        guided.close()
        bilinear.close()
    return [
        Measurement("segmentation+refine", (w, h), t_ref, "segmentation+bilinear", t_bil,
                    extra={"budget_ms": 6.0}),
        Measurement("matte refine only", (w, h), t_only, "cv2 bilinear upsample", t_up,
                    extra={"coefficients_ms": float(np.median(t_coef)), "full_res_pass_ms": float(np.median(t_apply))}),
    ]
