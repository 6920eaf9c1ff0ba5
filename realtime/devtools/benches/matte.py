"""Micro-benchmark of the segmentation stage at the frames' size (``python run.py bench``).

Timed, interleaved (A B A B) so machine drift hits both alike, on the bench's frames:

- **segmentation fast** (the preset: the model on the people's window, guided refinement) against
  **segmentation whole frame** (``crop = false``: the model on the whole frame, as before the
  window), both with Numba's default threads and with ONE thread (as the pipeline runs the stage
  while the depth model holds the other core);
- **segmentation high** (``quality = "high"``, what file jobs get: the mirrored window too)
  against fast;
- **landscape model alone** (MediaPipe on a prepared 256x144 input) against the **square model
  alone** (256x256);
- **segmentation first frame** (``reset()`` then one frame: a still, with the first frame's
  extra views) against the same with ``first_frame_views = false`` (one view);
- the **refinement alone** (whole frame: coefficients + full-resolution pass) against a bilinear
  ``cv2.resize`` of the confidence.

``extra`` records which model the window picked and the window's share of the frame.
"""

from __future__ import annotations

import dataclasses

import cv2
import numba
import numpy as np

from realtime.core.config import MatteQuality, load_preset
from realtime.devtools.benches import Measurement, interleaved
from realtime.stages.segmentation import MediaPipeSegmenter, Segmenter

FRAME_MS = 33


def run(frames: list[np.ndarray], repeats: int) -> list[Measurement]:
    import shaders

    shaders.warmup()
    h, w = frames[0].shape[:2]
    n = len(frames)
    cfg = load_preset("portrait").segmentation
    fast = Segmenter(dataclasses.replace(cfg, quality=MatteQuality.FAST))
    whole = Segmenter(dataclasses.replace(cfg, crop=False, quality=MatteQuality.FAST))
    high = Segmenter(dataclasses.replace(cfg, quality=MatteQuality.HIGH))
    one_view = Segmenter(dataclasses.replace(cfg, quality=MatteQuality.FAST, first_frame_views=False))
    models = {name: MediaPipeSegmenter(name) for name in ("selfie_landscape", "selfie_square")}
    ts = [0]
    threads = numba.get_num_threads()
    try:
        def step(seg: Segmenter):
            def call(i: int) -> None:
                ts[0] += FRAME_MS
                seg.process(frames[i % n], ts[0])
            return call

        t_fast, t_whole = interleaved(step(fast), step(whole), repeats, warmup=5)
        x0, y0, x1, y1 = fast.crop
        window = {"window_share": (x1 - x0) * (y1 - y0) / float(w * h),
                  "window_square_model": float(fast.model_name == "selfie_square")}
        numba.set_num_threads(1)
        try:
            t_fast1, t_whole1 = interleaved(step(fast), step(whole), repeats, warmup=5)
        finally:
            numba.set_num_threads(threads)
        t_high, t_fast2 = interleaved(step(high), step(fast), max(10, repeats // 2), warmup=3)

        inputs = {name: cv2.resize(frames[0], m.input_size, interpolation=cv2.INTER_AREA)[:, :, ::-1].copy()
                  for name, m in models.items()}

        def model(name: str):
            def call(i: int) -> None:
                ts[0] += FRAME_MS
                models[name].segment(inputs[name], ts[0])
            return call

        t_land, t_square = interleaved(model("selfie_landscape"), model("selfie_square"), repeats, warmup=5)

        def still(seg: Segmenter):
            def call(i: int) -> None:  # a still / the first frame after reset(): its extra views
                seg.reset()
                ts[0] += FRAME_MS
                seg.process(frames[i % n], ts[0])
            return call

        t_first, t_first1 = interleaved(still(fast), still(one_view), max(5, repeats // 4), warmup=2)

        # the whole-frame refinement alone, on the last model input and output (computed untimed)
        whole.process(frames[0], ts[0] + FRAME_MS)
        ts[0] += FRAME_MS
        conf = np.array(whole.confidence)
        mh, mw = conf.shape
        rgb = whole._rgb_of(conf).copy()
        refiner = whole._refiner((mw, mh), (w, h))
        out = np.empty((h, w), np.float32)
        up = np.empty((h, w), np.float32)

        def refine_only(i: int) -> None:
            refiner.run(rgb, conf, frames[i % n], out)

        def bilinear_only(i: int) -> None:
            cv2.resize(conf, (w, h), dst=up, interpolation=cv2.INTER_LINEAR)
            np.clip(up, 0.0, 1.0, out=up)

        t_only, t_up = interleaved(refine_only, bilinear_only, repeats, warmup=5)
    finally:
        for s in (fast, whole, high, one_view):
            s.close()
        for m in models.values():
            m.close()
    return [
        Measurement("segmentation fast", (w, h), t_fast, "segmentation whole frame", t_whole,
                    extra={"numba_threads": float(threads), **window}),
        Measurement("segmentation fast 1 thread", (w, h), t_fast1, "segmentation whole frame 1 thread", t_whole1),
        Measurement("segmentation high", (w, h), t_high, "segmentation fast", t_fast2),
        Measurement("landscape model alone", (w, h), t_land, "square model alone", t_square),
        Measurement("segmentation first frame", (w, h), t_first, "segmentation first frame one view", t_first1),
        Measurement("matte refine only", (w, h), t_only, "cv2 bilinear upsample", t_up),
    ]
