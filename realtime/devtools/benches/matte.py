"""Micro-benchmark of segmentation + matte refinement at the frames' size.

Timed, interleaved (A B A B) so machine drift hits both alike:

- **segmentation+refine**: ``Segmenter.process`` with the default preset (area downscale to the
  model's input, MediaPipe, guided refinement to full resolution), with Numba's default threads;
- **segmentation+bilinear** (baseline): the same with ``refine = "bilinear"``;
- the same pair with ONE Numba thread, as the pipeline runs segmentation while the depth model
  holds the other core.

Also, on the same frames: the model alone (MediaPipe on the prepared input), the refinement
alone (coefficients on the guide grid + full-resolution pass; with the default finer guide the
refiner area-averages the frame itself) against a bilinear ``cv2.resize`` of the confidence, and
its two parts (the coefficients part alone, having no frame, enlarges the model-size RGB to the
guide grid instead: close in cost, not the same pixels). The issue's budget: segmentation plus refinement <= 6 ms
median per 1280x720 frame on 2 cores.
"""

from __future__ import annotations

import dataclasses

import cv2
import numba
import numpy as np

from realtime.core.config import MatteRefine, load_preset
from realtime.stages.segmentation import Segmenter
from realtime.devtools.benches import Measurement, interleaved

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
    threads = numba.get_num_threads()
    try:
        def seg_refine(i: int) -> None:
            ts[0] += FRAME_MS
            guided.process(frames[i % n], ts[0])

        def seg_bilinear(i: int) -> None:
            bilinear.process(frames[i % n], ts[0])

        t_ref, t_bil = interleaved(seg_refine, seg_bilinear, repeats, warmup=5)
        numba.set_num_threads(1)
        try:
            t_ref1, t_bil1 = interleaved(seg_refine, seg_bilinear, repeats, warmup=5)
        finally:
            numba.set_num_threads(threads)

        # the model and the refinement alone, on the model inputs and outputs of the frames
        # (computed untimed)
        rgb, confs = [], []
        for i, f in enumerate(frames):
            guided.process(f, ts[0] + (i + 1) * FRAME_MS)
            rgb.append(guided._rgb.copy())
            confs.append(np.array(guided.confidence))
        ts[0] += (n + 1) * FRAME_MS
        refiner = guided._refiner
        backend = guided._backend
        out = np.empty((h, w), np.float32)
        up = np.empty((h, w), np.float32)

        def model_only(i: int) -> None:
            ts[0] += FRAME_MS
            backend.segment(rgb[i % n], ts[0])

        def downscale_only(i: int) -> None:
            guided._down.run(frames[i % n], guided._rgb) if guided._down else None

        t_model, t_down = interleaved(model_only, downscale_only, repeats, warmup=5)

        def refine_only(i: int) -> None:
            refiner.run(rgb[i % n], confs[i % n], frames[i % n], out)

        def bilinear_only(i: int) -> None:
            cv2.resize(confs[i % n], (w, h), dst=up, interpolation=cv2.INTER_LINEAR)
            np.clip(up, 0.0, 1.0, out=up)

        t_only, t_up = interleaved(refine_only, bilinear_only, repeats, warmup=5)

        def coeffs_only(i: int) -> None:
            refiner.coefficients(rgb[i % n], confs[i % n])

        def apply_only(i: int) -> None:
            refiner.apply(frames[i % n], out)

        t_coef, t_apply = interleaved(coeffs_only, apply_only, repeats, warmup=5)
    finally:
        guided.close()
        bilinear.close()
    med = lambda t: float(np.median(t))  # noqa: E731
    return [
        Measurement("segmentation+refine", (w, h), t_ref, "segmentation+bilinear", t_bil,
                    extra={"budget_ms": 6.0, "numba_threads": float(threads), "model_only_ms": med(t_model),
                           "downscale_ms": med(t_down)}),
        Measurement("segmentation+refine 1 thread", (w, h), t_ref1, "segmentation+bilinear 1 thread", t_bil1,
                    extra={"budget_ms": 6.0}),
        Measurement("matte refine only", (w, h), t_only, "cv2 bilinear upsample", t_up,
                    extra={"coefficients_ms": med(t_coef), "full_res_pass_ms": med(t_apply)}),
    ]
