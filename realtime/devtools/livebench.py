"""``python run.py bench --live``: CPU per frame at a camera's 30 fps, against the common recipe.

What a call's user pays is CPU per frame at the camera's rate (battery, fan, room for the call
app), not the peak rate. For each size the same real frames (one talking-head clip, played
forward then backward so the loop has no cut) are fed as a live 30 fps source to:

- the portrait pipeline through the real streaming loop into a null sink, with automatic
  quality scaling as ``run.py --live`` has it;
- the common recipe: MediaPipe selfie mask of the full frame, ``cv2.GaussianBlur`` sigma 12,
  float alpha composite (:class:`realtime.devtools.bench.Baseline`).

Each runs in a fresh child process (no threads or caches of the other one in it), in
alternating rounds (which one goes first alternates too) so machine drift hits both alike; a child reports the process CPU time
(every thread: ours, MediaPipe's, onnxruntime's, OpenMP's) over the paced run only, startup
and warm-up excluded. Quality: the pipeline's output and matte against a run with every
cost optimisation off (:func:`realtime.pipeline.all_optimisations_off`) on the same frames,
frame by frame, on the clip at this size and on the DAVIS sequences.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
LIVE_SIZES = ("1280x720", "1920x1080")
CLIP = "4.mp4"  # the longest talking clip, 30 fps, a still camera


def clip_frames(size: tuple[int, int], count: int, clip: str = CLIP) -> list[np.ndarray]:
    """``count`` frames of one talking clip at ``size`` (centre crop + resize), ping-pong looped."""
    from realtime.devtools.recipe import fit_frame as _fit
    from realtime.devtools.testdata import data_dir, read_video

    raw = read_video(data_dir() / "talking" / clip, count)
    frames = [_fit(f, size) for f in raw]
    if len(frames) < count:
        frames = frames + frames[-2:0:-1]
    return frames[:count]


# -- per-thread CPU, to see where time goes that no stage timing shows --------------------------

def thread_cpu() -> dict[str, float]:
    """CPU seconds per thread of this process, keyed by name (Python's name where known)."""
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
            with open(f"/proc/self/task/{tid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        secs = (int(fields[11]) + int(fields[12])) / tick
        name = names.get(int(tid), comm)
        out[f"{name}#{tid}"] = secs
    return out


class ThreadSampler:
    """Samples :func:`thread_cpu` every ``interval`` s in its own thread, so threads that end
    during the run (the loop's watchdog worker) are counted with their last reading."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.start_values = thread_cpu()
        self.last = dict(self.start_values)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.last.update(thread_cpu())

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self.last.update(thread_cpu())
        return _thread_delta(self.start_values, self.last)


def _thread_delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Per thread group (name without the id) CPU seconds spent between two samples."""
    groups: dict[str, float] = {}
    for k, v in b.items():
        g = k.rsplit("#", 1)[0]
        groups[g] = groups.get(g, 0.0) + v - a.get(k, 0.0)
    return dict(sorted(groups.items(), key=lambda kv: -kv[1]))


# -- children ---------------------------------------------------------------------------------

def _paced(kind: str, size: tuple[int, int], n_frames: int, preset_name: str, auto_quality: bool,
           optimised: bool) -> dict:
    from realtime.app.loop import run_stream
    from realtime.app.status import Stats
    from realtime.devtools.recipe import Baseline
    from realtime.io.sinks import NullSink
    from realtime.io.memory import ArrayReader
    from realtime.io.sources import LiveSource

    frames = clip_frames(size, 200)
    warm = 30
    if kind == "pipeline":
        from realtime.core.config import load_preset
        from realtime.pipeline import Pipeline, all_optimisations_off

        preset = load_preset(preset_name)
        if not optimised:
            preset = all_optimisations_off(preset)
        pipe = Pipeline(preset)
        pipe.warmup(size)
        governor = None
        if auto_quality:
            from realtime.app.scaling import QualityGovernor

            governor = QualityGovernor(pipe.apply, pipe.preset, 30.0)
        stats = Stats(keep_all=True)
        try:
            # one paced stream, warm-up and measurement: the thread policy's first window (a
            # camera's first second) is start-up, as in a call
            pipe.pace(30.0)
            with LiveSource(ArrayReader(frames, fps=30.0)) as live:
                run_stream(pipe, live, [NullSink()], max_frames=warm, governor=governor)
                t0, c0, th0 = time.perf_counter(), time.process_time(), ThreadSampler()
                one = [0]  # frames whose kernels ran on one thread (realtime.core.threads.PacedThreads)

                def count(sf, result) -> None:
                    one[0] += result is not None and result.kernel_threads == 1

                report = run_stream(pipe, live, [NullSink()], stats=stats, max_frames=n_frames, governor=governor,
                                    on_result=count)
                wall, cpu, th1 = time.perf_counter() - t0, time.process_time() - c0, th0.stop()
                dropped = report.dropped
        finally:
            pipe.close()
        extra = {"quality_level": governor.level if governor else 0, "one_thread_frames": one[0],
                 "latency_ms_p50": float(np.percentile(stats.all_latency, 50)),
                 "latency_ms_p95": float(np.percentile(stats.all_latency, 95)),
                 "stages_ms": {k: float(np.median(v)) for k, v in stats.all_stages.items()}}
        done = report.frames
    else:
        base = Baseline()
        try:
            with LiveSource(ArrayReader(frames, fps=30.0)) as live:
                sink = NullSink()

                def loop(count: int) -> int:
                    live.dropped = 0
                    n = 0
                    while n < count:
                        sf = live.read(timeout=1.0)
                        if sf is None:
                            continue
                        base(sf.frame)
                        sink.written += 1
                        n += 1
                    return n

                loop(warm)
                t0, c0, th0 = time.perf_counter(), time.process_time(), ThreadSampler()
                done = loop(n_frames)
                wall, cpu, th1 = time.perf_counter() - t0, time.process_time() - c0, th0.stop()
                dropped = live.dropped
        finally:
            base.close()
        extra = {}
    return {"kind": kind, "size": f"{size[0]}x{size[1]}", "frames": done, "wall_s": wall, "cpu_s": cpu,
            "cpu_ms_per_frame": 1000.0 * cpu / max(1, done), "cores": cpu / wall if wall else 0.0,
            "fps": done / wall if wall else 0.0, "dropped": dropped,
            "threads": th1, **extra}


def child_main(argv: list[str]) -> int:
    """Entry of a child process: ``KIND WxH FRAMES PRESET AUTO OPT`` -> one JSON line on stdout."""
    from realtime.io.sources import parse_size

    kind, size, n, preset, auto, opt = argv
    res = _paced(kind, parse_size(size), int(n), preset, auto == "1", opt == "1")
    sys.stdout.write("RESULT " + json.dumps(res) + "\n")
    sys.stdout.flush()
    return 0


def run_child(kind: str, size: tuple[int, int], n_frames: int, preset: str = "portrait",
              auto_quality: bool = False, optimised: bool = True) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-c", "import sys; from realtime.devtools.livebench import child_main; "
           "sys.exit(child_main(sys.argv[1:]))", kind, f"{size[0]}x{size[1]}", str(n_frames), preset,
           "1" if auto_quality else "0", "1" if optimised else "0"]
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"live bench child {kind} {size} failed (exit {p.returncode}): {p.stderr[-2000:]}")


# -- quality against the all-off run -----------------------------------------------------------

def psnr(a: np.ndarray, b: np.ndarray) -> float:
    d = a.astype(np.float32) - b.astype(np.float32)
    mse = float(np.mean(d * d))
    return float("inf") if mse == 0.0 else 10.0 * np.log10(255.0 ** 2 / mse)


def iou(a: np.ndarray, b: np.ndarray, t: float = 0.5) -> float:
    x, y = a > t, b > t
    u = np.count_nonzero(x | y)
    return 1.0 if u == 0 else np.count_nonzero(x & y) / u


def compare_runs(frames: list[np.ndarray], preset_name: str = "portrait", fps: float = 30.0) -> dict:
    """The pipeline with its optimisations against every optimisation off, on the same frames in
    order (frame by frame, no pacing): mean and worst PSNR of the output, mean and worst IoU of
    the matte."""
    from realtime.core.config import load_preset
    from realtime.pipeline import Pipeline, all_optimisations_off

    preset = load_preset(preset_name)
    size = frames[0].shape[1::-1]
    ps, ious = [], []
    with Pipeline(preset) as on, Pipeline(all_optimisations_off(preset)) as off:
        on.warmup(size)
        off.warmup(size)
        for i, f in enumerate(frames):
            ts = int(round(i * 1000.0 / fps))
            a = on.process(f, ts)
            b = off.process(f, ts)
            ps.append(min(psnr(a.frame, b.frame), 99.0))
            ious.append(iou(a.matte, b.matte))
    return {"frames": len(frames), "psnr_mean": float(np.mean(ps)), "psnr_min": float(np.min(ps)),
            "iou_mean": float(np.mean(ious)), "iou_min": float(np.min(ious))}


def quality(size: tuple[int, int], preset_name: str, n_frames: int = 120) -> dict:
    from realtime.devtools.recipe import fit_frame as _fit
    from realtime.devtools.testdata import data_dir, people_sequence

    out = {"talking": compare_runs(clip_frames(size, n_frames), preset_name)}
    for seq in ("breakdance", "dance-twirl"):
        if (data_dir() / "people" / seq).is_dir():
            frames, _ = people_sequence(seq)
            out[seq] = compare_runs([_fit(f, size) for f in frames], preset_name)
    return out


# -- the section of the bench -------------------------------------------------------------------

def bench_live(sizes: list[tuple[int, int]], n_frames: int = 300, rounds: int = 2, preset: str = "portrait",
               with_quality: bool = True, auto_quality: bool = False, say=print) -> list[dict]:
    rows = []
    for size in sizes:
        pipe_runs, base_runs = [], []
        for r in range(rounds):
            # the order alternates (pipeline first, then the recipe first): a machine that drifts
            # during a round weighs on both sides alike over two rounds
            order = ("pipeline", "recipe") if r % 2 == 0 else ("recipe", "pipeline")
            say(f"  live {size[0]}x{size[1]} round {r + 1}/{rounds}: {', '.join(order)}...")
            for kind in order:
                if kind == "pipeline":
                    pipe_runs.append(run_child(kind, size, n_frames, preset, auto_quality))
                else:
                    base_runs.append(run_child(kind, size, n_frames, preset))
        pc = float(np.median([x["cpu_ms_per_frame"] for x in pipe_runs]))
        bc = float(np.median([x["cpu_ms_per_frame"] for x in base_runs]))
        row = {"size": f"{size[0]}x{size[1]}", "pipeline_cpu_ms": pc, "recipe_cpu_ms": bc,
               "ratio": pc / bc if bc else float("nan"),
               "pipeline_cores": float(np.median([x["cores"] for x in pipe_runs])),
               "recipe_cores": float(np.median([x["cores"] for x in base_runs])),
               "pipeline_fps": float(np.median([x["fps"] for x in pipe_runs])),
               "recipe_fps": float(np.median([x["fps"] for x in base_runs])),
               "pipeline_dropped": int(sum(x["dropped"] for x in pipe_runs)),
               "recipe_dropped": int(sum(x["dropped"] for x in base_runs)),
               "pipeline_quality_level_max": max(x["quality_level"] for x in pipe_runs),
               "pipeline_latency_ms_p95": float(np.median([x["latency_ms_p95"] for x in pipe_runs])),
               "frames_per_run": n_frames, "rounds": rounds, "runs": {"pipeline": pipe_runs, "recipe": base_runs}}
        if with_quality:
            say(f"  live {size[0]}x{size[1]}: quality against every optimisation off...")
            row["quality"] = quality(size, preset)
        rows.append(row)
    return rows


def live_table(rows: list[dict]) -> str:
    lines = ["| size | portrait-cam CPU ms/frame | cores | fps | dropped | recipe CPU ms/frame | cores | fps | "
             "dropped | ratio | quality vs all-off: PSNR dB mean (min) / matte IoU mean (min) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        q = r.get("quality", {})
        qs = "; ".join(f"{k} {v['psnr_mean']:.1f} ({v['psnr_min']:.1f}) / {v['iou_mean']:.4f} ({v['iou_min']:.4f})"
                       for k, v in q.items())
        lines.append(f"| {r['size']} | {r['pipeline_cpu_ms']:.1f} | {r['pipeline_cores']:.2f} | "
                     f"{r['pipeline_fps']:.1f} | {r['pipeline_dropped']} | {r['recipe_cpu_ms']:.1f} | "
                     f"{r['recipe_cores']:.2f} | {r['recipe_fps']:.1f} | {r['recipe_dropped']} | {r['ratio']:.2f} | "
                     f"{qs} |")
    return "\n".join(lines)


def round_table(rows: list[dict]) -> str:
    """Each round's pair side by side (ours / the recipe's CPU ms per frame, their ratio): the two
    of a round run back to back, so a machine that drifts during the run shows here."""
    lines = []
    for r in rows:
        pairs = zip(r["runs"]["pipeline"], r["runs"]["recipe"])
        lines.append(f"{r['size']}: " + ", ".join(
            f"{a['cpu_ms_per_frame']:.1f} / {b['cpu_ms_per_frame']:.1f} ({a['cpu_ms_per_frame'] / b['cpu_ms_per_frame']:.2f})"
            if b["cpu_ms_per_frame"] else f"{a['cpu_ms_per_frame']:.1f} / - (-)" for a, b in pairs))
    return "\n".join(lines)


def thread_table(rows: list[dict]) -> str:
    """Where the CPU went, per thread group (median over rounds, ms per frame)."""
    lines = []
    for r in rows:
        for kind in ("pipeline", "recipe"):
            runs = r["runs"][kind]
            groups = sorted({g for x in runs for g in x["threads"]})
            per = {g: float(np.median([1000.0 * x["threads"].get(g, 0.0) / max(1, x["frames"]) for x in runs]))
                   for g in groups}
            top = sorted(per.items(), key=lambda kv: -kv[1])[:8]
            one = "" if kind == "recipe" else (
                " (kernels on one thread for " + ", ".join(f"{x.get('one_thread_frames', 0)}" for x in runs)
                + f" of {runs[0]['frames']} frames)")
            lines.append(f"{r['size']} {kind}: " + ", ".join(f"{g} {v:.1f}" for g, v in top if v >= 0.05) + one)
    return "\n".join(lines)
