"""Micro-benchmark of the depth stage and the focus tracker at the frames' size.

Timed, interleaved (A B A B) so machine drift hits both alike:

- **depth (model every frame, synchronous)**: ``DepthEstimator.process`` with the model run in
  the caller's thread on every frame (model + temporal filter + range + fusion + matte-guided
  upsampling), against the **model alone** (``backend.infer`` on the same packed input, 2
  threads): the ratio is what packing, fusion and upsampling add. The issue's budget: <= 8 ms
  median per 1280x720 frame.
- **depth fusion of a new result**: everything after the model for a fresh model output
  (temporal filter, range, layers, hole filling, matte-guided upsampling), against a plain
  bilinear ``cv2.resize`` of a low-resolution plane to the frame (the naive upsampling).
- **depth between model runs**: the stage with ``every_n_frames`` large: only the blend of
  the kept layers with the current matte, against the same resize.
- **depth asynchronous (caller)**: the default: the model in its own thread (1 thread), fed
  every frame; what the caller pays per frame. Called back to back the caller is faster than
  the model and waits for it (``async_max_lag``); paced at 30 fps (the rest of each frame
  idle) it pays packing and fusion only.
- **model onnxruntime** against **model cv2.dnn** (the measurement behind the default backend).
- **focus (face every n)**: ``FocusTracker.process`` in face mode, against **focus (person
  median)**.

Mattes come from the real segmenter, computed untimed before the timing starts.
"""

from __future__ import annotations

import dataclasses
import time

import cv2
import numpy as np

from ..config import DepthBackend, FocusMode, load_preset
from ..depth import DepthEstimator, OnnxDepth, OpenCVDepth, model_threads
from ..focus import FocusTracker
from ..models import resolve
from ..segmentation import Segmenter
from . import Measurement, interleaved, timed

FRAME_MS = 33
BUDGET_MS = 8.0


def run(frames: list[np.ndarray], repeats: int) -> list[Measurement]:
    import shaders

    shaders.warmup()
    preset = load_preset("portrait")
    h, w = frames[0].shape[:2]
    n = len(frames)
    with Segmenter(preset.segmentation) as seg:
        mattes = [seg.process(f, (i + 1) * FRAME_MS).copy() for i, f in enumerate(frames)]
    out: list[Measurement] = []
    clock = [0]

    def tick() -> int:
        clock[0] += FRAME_MS
        return clock[0]

    sync = dataclasses.replace(preset.depth, asynchronous=False)

    # -- the stage, model every frame, against the model alone ------------------------------
    with DepthEstimator(sync) as dep:
        dep.process(frames[0], tick(), mattes[0])
        x = dep._grid.slot.x.copy()  # a packed input of the right size for the model-only baseline
        backend = dep._backend

        def stage(i: int) -> None:
            dep.process(frames[i % n], tick(), mattes[i % n])

        def model(i: int) -> None:
            backend.infer(x)

        t_stage, t_model = interleaved(stage, model, repeats, warmup=5)
        out.append(Measurement("depth (model every frame, synchronous)", (w, h), t_stage, "model alone", t_model,
                               extra={"budget_ms": BUDGET_MS}))

    # -- fusion and upsampling alone, against a bilinear resize ----------------------------
    small = np.random.default_rng(0).random((180, 320), dtype=np.float32)
    up = np.empty((h, w), np.float32)

    def resize(i: int) -> None:
        cv2.resize(small, (w, h), dst=up, interpolation=cv2.INTER_LINEAR)

    with DepthEstimator(sync) as dep:
        dep.process(frames[0], tick(), mattes[0])
        grid = dep._grid
        slots = []
        for i in range(n):  # real model outputs, computed untimed
            dep.process(frames[i], tick(), mattes[i])
            slot = type(grid.slot)(grid.fit)
            for name in ("x", "luma", "matte", "raw"):
                np.copyto(getattr(slot, name), getattr(grid.slot, name))
            slots.append(slot)

        def fusion(i: int) -> None:
            dep._fold(slots[i % n], grid)
            dep._fuse(mattes[i % n], grid, tick())

        t_fuse, t_resize = interleaved(fusion, resize, repeats, warmup=5)
        out.append(Measurement("depth fusion of a new result", (w, h), t_fuse, "bilinear resize", t_resize))

    with DepthEstimator(dataclasses.replace(sync, every_n_frames=30)) as dep:
        dep.process(frames[0], tick(), mattes[0])

        def between(i: int) -> None:
            if dep._frame_no % 30 == 0:  # never let the model run inside the timing
                dep._frame_no += 1
            dep.process(frames[i % n], tick(), mattes[i % n])

        t_between, t_resize = interleaved(between, resize, repeats, warmup=5)
        out.append(Measurement("depth between model runs", (w, h), t_between, "bilinear resize", t_resize))

    # -- asynchronous (the default): the caller's cost ------------------------------------
    with DepthEstimator(dataclasses.replace(preset.depth, asynchronous=True)) as dep:
        t_async = timed(lambda i: dep.process(frames[i % n], tick(), mattes[i % n]), repeats, warmup=5)
        out.append(Measurement("depth asynchronous (caller, back to back)", (w, h), t_async))
        t_paced = []
        for i in range(repeats + 5):
            t0 = time.perf_counter()
            dep.process(frames[i % n], tick(), mattes[i % n])
            t1 = time.perf_counter()
            if i >= 5:
                t_paced.append((t1 - t0) * 1000.0)
            time.sleep(max(0.0, FRAME_MS / 1000.0 - (t1 - t0)))  # the rest of a 30 fps frame
        out.append(Measurement("depth asynchronous (caller, 30 fps)", (w, h), t_paced))

    # -- backends --------------------------------------------------------------------------
    path = str(resolve("tcmonodepth_small", preset.depth.model_path or None))
    ort_backend = OnnxDepth(path, threads=model_threads(sync), spin=sync.spin)
    cv_backend = OpenCVDepth(path)
    try:
        t_ort, t_cv = interleaved(lambda i: ort_backend.infer(x), lambda i: cv_backend.infer(x), repeats, warmup=5)
    finally:
        ort_backend.close()
        cv_backend.close()
    out.append(Measurement(f"model {DepthBackend.ONNXRUNTIME.value}", (w, h), t_ort,
                           f"model {DepthBackend.OPENCV.value}", t_cv))

    # -- focus -----------------------------------------------------------------------------
    with DepthEstimator(preset.depth) as dep:
        disparities = [dep.process(f, tick(), m).copy() for f, m in zip(frames, mattes)]
    with FocusTracker(preset.focus) as face, \
            FocusTracker(dataclasses.replace(preset.focus, mode=FocusMode.PERSON)) as person:
        def focus_face(i: int) -> None:
            face.process(frames[i % n], tick(), mattes[i % n], disparities[i % n])

        def focus_person(i: int) -> None:
            person.process(frames[i % n], tick(), mattes[i % n], disparities[i % n])

        t_face, t_person = interleaved(focus_face, focus_person, repeats, warmup=5)
        out.append(Measurement(f"focus (face every {preset.focus.face_every_n_frames})", (w, h), t_face,
                               "focus (person median)", t_person))
    return out
