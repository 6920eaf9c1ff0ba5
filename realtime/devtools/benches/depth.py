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
- **model, last layer split off** (the default, see realtime/stages/depth/graph.py) against **model,
  whole graph in onnxruntime**, and the synchronous stage with each: wall clock (2 threads) and
  CPU time with one thread everywhere (``time.thread_time``: hardly moved by other processes
  sharing the cores, so the steadiest A/B on a busy machine); and the default synchronous stage
  against the model as it ran before (whole graph, no spinning).
- **depth overlapped (pipeline)**: what the pipeline does (realtime/pipeline.py): ``prefetch``
  starts the model on the frame in its thread, the real segmenter runs on the same frame with
  Numba on one thread, then ``process`` waits for that frame's result and fuses it. Timed: the
  caller's ``process`` (wait + fusion), with the split model against the whole one.
- **depth synchronous, spinning within runs** (``depth.spin``, the default: onnxruntime's second
  thread spins up to 10 us for the next step instead of sleeping) against no spinning.
- **focus (face every n)**: ``FocusTracker.process`` in face mode, against **focus (person
  median)**.

Mattes come from the real segmenter, computed untimed before the timing starts.
"""

from __future__ import annotations

import dataclasses
import time

import cv2
import numba
import numpy as np

from realtime.core.config import DepthBackend, FocusMode, load_preset
from realtime.stages.depth import DepthEstimator, OnnxDepth, OpenCVDepth, model_spins, model_threads
from realtime.stages.focus import FocusTracker
from realtime.core.models import resolve
from realtime.core.threads import one_numba_thread
from realtime.stages.segmentation import Segmenter
from realtime.devtools.benches import Measurement, alternated, interleaved, timed

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

    # the model on every frame: these measure the model and what runs around it (the still check
    # would skip it on the repeated frames and leave the comparisons below measuring nothing)
    sync = dataclasses.replace(preset.depth, asynchronous=False, still_interval=1)

    # -- the stage, model every frame, against the model alone ------------------------------
    with DepthEstimator(sync) as dep:
        dep.process(frames[0], tick(), mattes[0])
        x = dep._grids.current.slot.x.copy()  # a packed input of the right size for the model-only baseline
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
        grid = dep._grids.current
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
    ort_backend = OnnxDepth(path, threads=model_threads(sync), spin=model_spins(sync))
    cv_backend = OpenCVDepth(path)
    try:
        t_ort, t_cv = interleaved(lambda i: ort_backend.infer(x), lambda i: cv_backend.infer(x), repeats, warmup=5)
    finally:
        ort_backend.close()
        cv_backend.close()
    out.append(Measurement(f"model {DepthBackend.ONNXRUNTIME.value}", (w, h), t_ort,
                           f"model {DepthBackend.OPENCV.value}", t_cv))

    # -- the model's last layer split off (default) against the whole graph ----------------
    threads, spin = model_threads(sync), model_spins(sync)
    split = OnnxDepth(path, threads=threads, spin=spin)
    whole = OnnxDepth(path, threads=threads, spin=spin, split=False)
    try:
        t_split, t_whole = interleaved(lambda i: split.infer(x), lambda i: whole.infer(x), repeats, warmup=5)
        out.append(Measurement("model, last layer split off", (w, h), t_split, "model, whole graph", t_whole,
                               extra={"split": float(split.split)}))
        with DepthEstimator(sync, backend=split) as a, DepthEstimator(sync, backend=whole) as b:
            t_a, t_b = interleaved(lambda i: a.process(frames[i % n], tick(), mattes[i % n]),
                                   lambda i: b.process(frames[i % n], tick(), mattes[i % n]), repeats, warmup=5)
        out.append(Measurement("depth synchronous, model split", (w, h), t_a, "depth synchronous, model whole", t_b))
    finally:
        split.close()
        whole.close()
    # the default against the model as it ran before both changes (whole graph, no spinning)
    old = OnnxDepth(path, threads=threads, spin=False, split=False)
    with DepthEstimator(sync) as a, DepthEstimator(sync, backend=old) as b:
        t_a, t_b = interleaved(lambda i: a.process(frames[i % n], tick(), mattes[i % n]),
                               lambda i: b.process(frames[i % n], tick(), mattes[i % n]), repeats, warmup=5)
    out.append(Measurement("depth synchronous (default)", (w, h), t_a,
                           "same, model whole and not spinning", t_b))
    out.append(_cpu_time_split(path, sync, frames, mattes, tick, repeats))

    # -- overlapped, as the pipeline runs it ---------------------------------------------------
    out.append(_overlapped(path, preset, frames, tick, repeats))

    # -- brief spinning while a synchronous run is in progress (default) against none ------
    with DepthEstimator(dataclasses.replace(sync, spin=True)) as a, \
            DepthEstimator(dataclasses.replace(sync, spin=False)) as b:
        t_a, t_b = interleaved(lambda i: a.process(frames[i % n], tick(), mattes[i % n]),
                               lambda i: b.process(frames[i % n], tick(), mattes[i % n]), repeats, warmup=5)
    out.append(Measurement("depth synchronous, spinning within runs", (w, h), t_a,
                           "depth synchronous, no spinning", t_b))

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


def _cpu_time_split(path: str, sync, frames, mattes, tick, repeats: int) -> Measurement:
    """The synchronous stage with one thread everywhere, CPU time of the calling thread: split against whole."""
    n = len(frames)
    h, w = frames[0].shape[:2]
    one = dataclasses.replace(sync, threads=1)
    split, whole = OnnxDepth(path, threads=1), OnnxDepth(path, threads=1, split=False)
    prev_numba, prev_cv = numba.get_num_threads(), cv2.getNumThreads()
    numba.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        with DepthEstimator(one, backend=split) as a, DepthEstimator(one, backend=whole) as b:
            def cpu(dep):
                def call(i: int) -> float:
                    t = time.thread_time()
                    dep.process(frames[i % n], tick(), mattes[i % n])
                    return (time.thread_time() - t) * 1000.0
                return call

            ta, tb = alternated(cpu(a), cpu(b), repeats)
    finally:
        numba.set_num_threads(prev_numba)
        cv2.setNumThreads(prev_cv)
        split.close()
        whole.close()
    return Measurement("depth synchronous, model split (CPU time, 1 thread)", (w, h), ta,
                       "model whole (CPU time, 1 thread)", tb)


def _overlapped(path: str, preset, frames, tick, repeats: int) -> Measurement:
    """The pipeline's schedule: prefetch, segment the same frame (Numba on one thread), then process.

    Timed: ``process`` (waiting for this frame's model result, then fusion), the caller's cost
    of depth per frame; split model against the whole one, interleaved.
    """
    n = len(frames)
    h, w = frames[0].shape[:2]
    # the model on every frame (a still background would let the still check skip it)
    cfg = dataclasses.replace(preset.depth, asynchronous=True, overlap=True, still_interval=1)
    threads = model_threads(cfg)
    split, whole = OnnxDepth(path, threads=threads), OnnxDepth(path, threads=threads, split=False)
    try:
        with Segmenter(preset.segmentation) as seg, DepthEstimator(cfg, backend=split) as a, \
                DepthEstimator(cfg, backend=whole) as b:
            def frame(dep):
                def call(i: int) -> float:
                    f = frames[i % n]
                    ts = tick()
                    if not dep.prefetch(f):
                        raise RuntimeError("the overlapped benchmark needs depth.overlap on")
                    with one_numba_thread():  # as the pipeline does
                        matte = seg.process(f, ts)
                    t = time.perf_counter()
                    dep.process(f, ts, matte)
                    return (time.perf_counter() - t) * 1000.0
                return call

            ta, tb = alternated(frame(a), frame(b), repeats)
    finally:
        split.close()
        whole.close()
    return Measurement("depth overlapped (pipeline), caller, model split", (w, h), ta,
                       "same, model whole", tb)


def main(argv: list[str] | None = None) -> int:
    """``python -m realtime.devtools.benches.depth [--repeats N] [--size WxH]``: this benchmark alone."""
    import argparse

    from realtime.devtools.bench import load_frames
    from realtime.io.sources import parse_size

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--repeats", type=int, default=60)
    p.add_argument("--size", default="1280x720")
    args = p.parse_args(argv)
    frames = load_frames(parse_size(args.size), 20)
    for m in run(frames, args.repeats):
        d = m.as_dict()
        base = f"  | {d['baseline']} {d['baseline_median_ms']:.2f} ms, ratio {d['ratio']:.3f}" if m.baseline_ms else ""
        print(f"{d['name']:55s} {d['median_ms']:6.2f} ms (p95 {d['p95_ms']:6.2f}){base}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
