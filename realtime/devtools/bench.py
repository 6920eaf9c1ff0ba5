"""``python run.py bench``: the real pipeline on real frames, against the field's common recipe.

For each size: the portrait pipeline (real models, depth on every frame, no quality scaling)
through the streaming loop into a null sink, and in the same run, interleaved in blocks so
machine drift hits both alike, the **baseline**: MediaPipe selfie mask of the full frame,
``cv2.GaussianBlur`` of the whole frame (sigma 12) and a float alpha composite. Reported: per
stage median/p95, end-to-end fps, processing per frame, the ratio pipeline/baseline, capture-
to-sink latency with a live source at 30 fps, CPU use in cores and peak RSS; then the stage
micro-benchmarks of :mod:`realtime.devtools.benches`. ``--soak N`` runs N frames and reports memory and
thread growth; ``--startup`` times launch to first output frame, cold and warm.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from realtime.core.config import load_preset
from realtime.core.errors import ConfigError, SourceError
from realtime.io.safefiles import write_bytes
from realtime.app.loop import run_stream
from realtime.pipeline import STAGES, Pipeline
from realtime.io.fit import fit_frame
from realtime.io.sinks import NullSink
from realtime.io.memory import ArrayReader, ArraySource
from realtime.io.sources import IMAGE_EXTENSIONS, LiveSource, parse_size
from realtime.app.status import Stats
from realtime.devtools.recipe import Baseline, fit_frame as _fit
from realtime.devtools.testdata import data_dir, read_video

DEFAULT_SIZES = ("640x480", "1280x720", "1920x1080")
FRAME_CACHE = 40  # real frames held decoded per size (cycled): variety enough, memory bounded
MICRO = ("matte", "depth", "temporal", "render")
REPO = Path(__file__).resolve().parents[2]


def load_frames(size: tuple[int, int], count: int = 120, source: str | None = None) -> list[np.ndarray]:
    """Real frames at ``size``: from ``source`` (video or folder) or the talking-head clips."""
    raw: list[np.ndarray] = []
    if source:
        p = Path(source)
        if p.is_dir():
            for f in sorted(x for x in p.iterdir() if x.suffix.lower() in IMAGE_EXTENSIONS)[:count]:
                img = cv2.imread(str(f), cv2.IMREAD_COLOR)
                if img is not None:
                    raw.append(img)
        else:
            raw = read_video(p, count)
    else:
        clips = sorted((data_dir() / "talking").glob("*.mp4"))
        if not clips:
            raise SourceError(f"no benchmark frames: {data_dir() / 'talking'} holds no clips; "
                              "set REALTIME_DATA_DIR or pass --input VIDEO|DIR")
        per = max(1, count // len(clips))
        for c in clips:
            raw += read_video(c, per)
    if not raw:
        raise SourceError(f"no readable frames in {source}")
    return [fit_frame(f, size, "crop") for f in raw[:count]]  # never squash a face


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


def _pct(xs, q) -> float:
    return float(np.percentile(xs, q)) if len(xs) else float("nan")


def bench_size(preset_name: str, size: tuple[int, int], n_frames: int, block: int = 30,
               frames: list[np.ndarray] | None = None, source: str | None = None,
               latency_frames: int = 150) -> dict:
    frames = frames or load_frames(size, FRAME_CACHE, source)
    preset = load_preset(preset_name)
    stats = Stats(keep_all=True)
    base_ms: list[float] = []
    pipe_wall = 0.0
    pipe_cpu = 0.0
    base = Baseline()
    try:
        with Pipeline(preset) as pipe:
            pipe.warmup(size)
            for f in frames[:5]:
                base(f)
            done = 0
            while done < n_frames:
                k = min(block, n_frames - done)
                # pipeline block through the real loop (watchdog, null sink)
                src = ArraySource(frames, count=k, start=done)
                t0, c0 = time.perf_counter(), _cpu_seconds()
                run_stream(pipe, src, [NullSink()], stats=stats)
                pipe_wall += time.perf_counter() - t0
                pipe_cpu += _cpu_seconds() - c0
                # baseline block on the same frames
                for i in range(k):
                    f = frames[(done + i) % len(frames)]
                    t = time.perf_counter()
                    base(f)
                    base_ms.append((time.perf_counter() - t) * 1000.0)
                done += k
            # capture-to-sink latency with a live source at the camera's rate
            lat = Stats(keep_all=True)
            pipe.reset()
            with LiveSource(ArrayReader(frames, fps=30.0)) as live:
                run_stream(pipe, live, [NullSink()], stats=lat, max_frames=latency_frames)
                dropped = live.dropped
    finally:
        base.close()
    per_frame = stats.all_latency  # hand-over to sink done: processing incl. loop overhead
    pipe_med, base_med = float(np.median(per_frame)), float(np.median(base_ms))
    return {
        "size": f"{size[0]}x{size[1]}",
        "frames": len(per_frame),
        "fps": len(per_frame) / pipe_wall if pipe_wall else 0.0,
        "ms_per_frame_median": pipe_med,
        "ms_per_frame_p95": _pct(per_frame, 95),
        "baseline_ms_median": base_med,
        "baseline_ms_p95": _pct(base_ms, 95),
        "ratio_pipeline_baseline": pipe_med / base_med if base_med else float("nan"),
        "stages": {k: {"median_ms": float(np.median(v)), "p95_ms": _pct(v, 95)}
                   for k, v in stats.all_stages.items() if k in STAGES},
        "cpu_cores": pipe_cpu / pipe_wall if pipe_wall else 0.0,
        "latency_ms_p50": _pct(lat.all_latency, 50),
        "latency_ms_p95": _pct(lat.all_latency, 95),
        "latency_above_interval_p95": _pct(lat.all_latency, 95) - 1000.0 / 30.0,
        "live_fps": lat.fps,
        "live_dropped": dropped,
        "peak_rss_mb": child_rss(preset_name, frames, n_frames)["peak_rss_mb"],  # of run.py, not this process
    }


# The child's own high-water mark, read in the child at exit: ``wait4``'s ru_maxrss would also
# count the pages the forked copy of this (large) benchmark process held before ``exec``.
_HWM_LAUNCHER = """
import atexit, os, runpy, sys
report = sys.argv[1]
def _hwm():
    with open('/proc/self/status') as f:
        kb = next((l.split()[1] for l in f if l.startswith('VmHWM:')), None)
    if kb:
        with open(report, 'w') as out:
            out.write(kb)
atexit.register(_hwm)
sys.argv = sys.argv[2:]
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))  # as 'python run.py' would
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def child_rss(preset_name: str, frames: list[np.ndarray], n_frames: int = 300) -> dict:
    """Peak RSS of the real command (``run.py`` on a video of these frames into the null sink):
    what a user's process holds, without the benchmark's own frame cache."""
    h, w = frames[0].shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "bench.mp4"
        wr = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
        for i in range(n_frames):
            wr.write(frames[i % len(frames)])
        wr.release()
        report = Path(tmp) / "vmhwm"
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-c", _HWM_LAUNCHER, str(report), str(REPO / "run.py"),
                              "--input", str(video), "--output", "null", "--preset", preset_name, "--quiet"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        try:
            peak = int(report.read_text()) / 1024.0
        except (OSError, ValueError):  # no /proc (not Linux): an upper bound
            peak = usage.ru_maxrss / 1024.0
    return {"peak_rss_mb": peak, "exit_code": p.returncode, "frames": n_frames,
            "seconds": time.perf_counter() - t0}


def run_micro(size: tuple[int, int], frames: list[np.ndarray], repeats: int) -> list[dict]:
    rows = []
    for name in MICRO:
        try:
            mod = importlib.import_module(f"realtime.devtools.benches.{name}")
        except ModuleNotFoundError:
            continue
        for m in mod.run(frames[:20], repeats):
            rows.append(m.as_dict())
    return rows


def soak(preset_name: str, n_frames: int, size: tuple[int, int] = (1280, 720), source: str | None = None) -> dict:
    """Run ``n_frames`` through the loop; RSS and threads sampled after warm-up and at the end."""
    frames = load_frames(size, FRAME_CACHE, source)
    with Pipeline(load_preset(preset_name)) as pipe:
        pipe.warmup(size)
        warm = max(100, n_frames // 20)
        run_stream(pipe, ArraySource(frames, count=warm), [NullSink()])
        rss0, threads0 = current_rss_mb(), threading.active_count()
        samples = [rss0]
        done = warm
        t0 = time.perf_counter()
        while done < n_frames:
            k = min(1000, n_frames - done)
            run_stream(pipe, ArraySource(frames, count=k, start=done), [NullSink()])
            samples.append(current_rss_mb())
            done += k
        secs = time.perf_counter() - t0
        threads_end = threading.active_count()  # with the pipeline still open, like at the start
    return {"frames": n_frames, "size": f"{size[0]}x{size[1]}", "rss_start_mb": rss0, "rss_end_mb": samples[-1],
            "rss_growth_mb": samples[-1] - rss0, "rss_max_mb": max(samples), "threads_start": threads0,
            "threads_end": threads_end, "seconds": secs, "peak_rss_mb": peak_rss_mb()}


def startup(preset_name: str) -> dict:
    """Launch to first output frame of ``run.py`` on one real image played as a live source: cold
    (a fresh Numba cache: the quick portrait first, then the lens) and warm. The cold run goes on
    until the lens renders (its time and the whole run's CPU, compile children included, are
    reported too), so the warm runs find every kernel cached."""
    frame = load_frames((1280, 720), 1)[0]
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        img = Path(tmp) / "frame.png"
        cv2.imwrite(str(img), frame)
        env = {**os.environ, "NUMBA_CACHE_DIR": str(Path(tmp) / "numba")}
        for label in ("cold", "warm", "warm2"):
            cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            p = subprocess.Popen([sys.executable, str(REPO / "run.py"), "--input", str(img), "--live",
                                  "--output", "null", "--preset", preset_name, "--quiet", "--first-frame-marker"],
                                 stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp)
            seen: dict[str, float] = {}
            try:
                for line in p.stderr:
                    for mark in ("first-frame", "lens-frame"):
                        if line.startswith(mark) and mark not in seen:
                            seen[mark] = time.perf_counter() - t0
                    if "lens-frame" in seen:
                        p.send_signal(signal.SIGINT)  # a live source: stopped once the lens is on
                        break
                p.communicate(timeout=60)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            out[label] = {**seen, "cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)}
    warm = [out[k]["first-frame"] for k in ("warm", "warm2") if "first-frame" in out[k]]
    return {"first_frame_s_cold": out["cold"].get("first-frame"), "lens_s_cold": out["cold"].get("lens-frame"),
            "cpu_s_cold": out["cold"]["cpu_s"], "first_frame_s_warm": min(warm) if warm else None,
            "load_average": os.getloadavg()}


def _table(rows: list[dict]) -> str:
    lines = ["| size | fps | ms/frame p50 / p95 | baseline ms p50 | ratio | latency p50 / p95 ms | CPU cores | "
             "peak RSS MB of run.py | " + " | ".join(f"{s} p50/p95" for s in STAGES) + " |",
             "|" + "---|" * (8 + len(STAGES))]
    for r in rows:
        st = " | ".join(f"{r['stages'].get(s, {}).get('median_ms', float('nan')):.1f} / "
                        f"{r['stages'].get(s, {}).get('p95_ms', float('nan')):.1f}" for s in STAGES)
        lines.append(f"| {r['size']} | {r['fps']:.1f} | {r['ms_per_frame_median']:.1f} / {r['ms_per_frame_p95']:.1f} | "
                     f"{r['baseline_ms_median']:.1f} | {r['ratio_pipeline_baseline']:.2f} | "
                     f"{r['latency_ms_p50']:.0f} / {r['latency_ms_p95']:.0f} | {r['cpu_cores']:.2f} | "
                     f"{r['peak_rss_mb']:.0f} | {st} |")
    return "\n".join(lines)


def _micro_table(rows: list[dict]) -> str:
    lines = ["| stage | size | median ms | p95 ms | baseline | baseline ms | ratio |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r.get("ratio") is not None else ""
        bm = f"{r['baseline_median_ms']:.2f}" if "baseline_median_ms" in r else ""
        lines.append(f"| {r['name']} | {r['size']} | {r['median_ms']:.2f} | {r['p95_ms']:.2f} | "
                     f"{r.get('baseline', '')} | {bm} | {ratio} |")
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="run.py bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", action="append", metavar="WxH", help="frame size (repeatable; default 640x480 1280x720 1920x1080)")
    p.add_argument("--frames", type=int, default=300,
                   help="bounds the whole run: frames per size for the pipeline, the baseline, the live latency and "
                        "the run.py memory check; at most this many repeats per micro-benchmark (default 300)")
    p.add_argument("--preset", default="portrait")
    p.add_argument("--input", metavar="VIDEO|DIR", help="frames to use instead of the talking-head clips")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--no-micro", action="store_true", help="skip the stage micro-benchmarks")
    p.add_argument("--micro-repeats", type=int, default=60)
    p.add_argument("--soak", type=int, metavar="N", default=0,
                   help="also run N frames at 1280x720 in this process for the memory/thread growth check "
                        "(e.g. --soak 3000; off by default)")
    p.add_argument("--startup", action="store_true", help="also time launch to first output frame (cold and warm)")
    p.add_argument("--live", action="store_true",
                   help="only the live section: CPU per frame at a paced 30 fps against the common recipe, "
                        "each in its own process, alternating rounds, and quality against every optimisation off "
                        "(default sizes 1280x720 1920x1080)")
    p.add_argument("--rounds", type=int, default=2, help="--live: rounds per size (default 2)")
    p.add_argument("--no-quality", action="store_true", help="--live: skip the quality comparison")
    p.add_argument("--auto-quality", choices=("on", "off"), default="off",
                   help="--live: let the pipeline step quality down when behind (default off: the full work "
                        "of the preset on every frame, whatever the machine's load)")
    args = p.parse_args(argv)
    try:
        sizes = [parse_size(s) for s in (args.size or DEFAULT_SIZES)]
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if args.frames < 30:
        raise ConfigError("--frames must be at least 30 (medians over too few frames mislead)")
    if args.json:
        # checked before minutes of measuring, not after: the file itself is written at the end
        folder = Path(args.json).parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"--json {args.json}: the folder {folder} does not exist or is not writable; "
                              "create it or name a file in a writable folder")
        if Path(args.json).is_dir():
            raise ConfigError(f"--json {args.json} is a folder; name a file, e.g. {Path(args.json) / 'bench.json'}")
    if args.live:
        return _main_live(args)
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "preset": args.preset, "sizes": [], "micro": []}
    print(f"portrait-cam bench, {result['date']}, {result['machine']}", flush=True)
    for size in sizes:
        frames = load_frames(size, FRAME_CACHE, args.input)
        print(f"  {size[0]}x{size[1]}: {args.frames} frames pipeline + baseline...", flush=True)
        row = bench_size(args.preset, size, args.frames, frames=frames, latency_frames=min(150, args.frames))
        result["sizes"].append(row)
        print(f"    {row['fps']:.1f} fps, {row['ms_per_frame_median']:.1f} ms/frame, ratio pipeline/baseline "
              f"{row['ratio_pipeline_baseline']:.2f}", flush=True)
        if not args.no_micro:
            result["micro"] += run_micro(size, frames, min(args.micro_repeats, args.frames))
        del frames
    if args.soak:
        print(f"  soak: {args.soak} frames at 1280x720...", flush=True)
        result["soak"] = soak(args.preset, args.soak, source=args.input)
    if args.startup:
        print("  startup: cold and warm...", flush=True)
        result["startup"] = startup(args.preset)
    result["bench_process_peak_rss_mb"] = peak_rss_mb()
    print()
    print(_table(result["sizes"]))
    print(f"peak RSS of run.py: a separate 'python run.py --input VIDEO --output null' process, what a user's "
          f"command holds. This bench process (frame cache, pipeline, baseline): peak "
          f"{result['bench_process_peak_rss_mb']:.0f} MB.")
    if result["micro"]:
        print()
        print(_micro_table(result["micro"]))
    if "soak" in result:
        s = result["soak"]
        print(f"\nsoak (in this bench process): {s['frames']} frames at {s['size']} in {s['seconds']:.0f} s: "
              f"RSS {s['rss_start_mb']:.0f} -> "
              f"{s['rss_end_mb']:.0f} MB (growth {s['rss_growth_mb']:+.1f} MB), threads {s['threads_start']} -> "
              f"{s['threads_end']}")
    if "startup" in result:
        s = result["startup"]
        print(f"\nstartup to first output frame: cold {s['first_frame_s_cold']:.2f} s (the lens from "
              f"{s['lens_s_cold']:.1f} s, {s['cpu_s_cold']:.0f} s of CPU), warm {s['first_frame_s_warm']:.2f} s "
              f"(load average {s['load_average'][0]:.1f})")
    if args.json:
        write_bytes(args.json, json.dumps(result, indent=2).encode("utf-8"))
    return 0


def _main_live(args: argparse.Namespace) -> int:
    from realtime.devtools import livebench

    try:
        sizes = [parse_size(s) for s in (args.size or livebench.LIVE_SIZES)]
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if args.rounds < 1:
        raise ConfigError("--rounds must be at least 1")
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "preset": args.preset}
    print(f"portrait-cam bench --live, {result['date']}, {result['machine']}", flush=True)
    result["live"] = livebench.bench_live(sizes, args.frames, args.rounds, args.preset, not args.no_quality,
                                          auto_quality=args.auto_quality == "on", say=lambda t: print(t, flush=True))
    print()
    print(livebench.live_table(result["live"]))
    print()
    print("Each round, portrait-cam / recipe CPU ms per frame (ratio), run back to back:")
    print(livebench.round_table(result["live"]))
    print()
    print("CPU ms per frame by thread:")
    print(livebench.thread_table(result["live"]))
    if args.json:
        write_bytes(args.json, json.dumps(result, indent=2).encode("utf-8"))
    return 0
