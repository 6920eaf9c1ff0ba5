"""``run.py batch``: recorded videos, images and frame folders in bulk, on a Ray cluster.

    python run.py batch --input PATH [PATH...] --output DIR/ [--preset ...] [--save-matte]
                        [--save-depth] [--output-kind mp4|png|rgba|matte] [--address ADDR]

Every input lands under ``DIR/`` at its relative path, with the frames a single file job writes.
Without ``--address`` a local Ray is started for the run, sized to this machine's cores, and
shut down at the end; ``--address auto`` or ``ray://HOST:PORT`` uses a running cluster. Each
worker process holds one pipeline (models loaded once) and takes one file, or one chunk of a long
video, at a time. Outputs are written under temporary names and renamed when complete; a manifest
in ``DIR/`` lets a rerun skip what is done. Ray is an optional extra: nothing else imports it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path

from realtime.app import batch_plan as bp
from realtime.core.errors import ConfigError

PROG = "portrait-cam batch"
RAY_MISSING = ("run.py batch needs Ray, an optional extra: pip install -e '.[batch]' "
               "(or: pip install 'ray>=2.9')")
ENV_TO_WORKERS = ("REALTIME_MODEL_DIR", "REALTIME_CACHE_DIR", "REALTIME_MODEL_URL_BASE", "REALTIME_DATA_DIR",
                  "NUMBA_CACHE_DIR")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"{message} (see 'run.py batch --help')")


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be 0 or more")
    return v


def _size(text: str) -> tuple[int, int]:
    from realtime.io.sources import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="run.py batch", description="Process recorded videos, images and folders (searched "
                "recursively) in bulk on a Ray cluster, each into --output DIR/ at its relative path, with the "
                "frames and quality of a single 'run.py --input X --output DIR/X' job.")
    p.add_argument("--input", "-i", nargs="+", required=True, metavar="PATH",
                   help="videos, images and folders; a folder holding images is one frame sequence, and its "
                        "subfolders and videos are searched too")
    p.add_argument("--output", "-o", required=True, metavar="DIR/", help="output folder (created if missing)")
    p.add_argument("--preset", "-p", default="portrait", metavar="NAME|FILE.toml", help="preset (default: portrait)")
    p.add_argument("--save-matte", action="store_true", help="also write the matte as PNGs into <output>.matte/")
    p.add_argument("--save-depth", action="store_true", help="also write the disparity as PNGs into <output>.depth/")
    p.add_argument("--output-kind", choices=bp.KINDS, metavar="mp4|png|rgba|matte",
                   help="mp4: videos (frame folders too, as <folder>.mp4); png: PNG frame folders; rgba: PNG "
                        "frames with the matte as alpha; matte: the matte as grey video / PNGs "
                        "(default: videos stay mp4, frame folders and images become PNGs)")
    p.add_argument("--address", metavar="ADDR",
                   help="a running Ray cluster: 'auto' (the one on this machine) or ray://HOST:PORT; default: "
                        "start a local Ray for this run, sized to this machine's cores")
    p.add_argument("--workers", type=_positive, metavar="N",
                   help="worker processes (one pipeline each; default: one per CPU of the cluster)")
    p.add_argument("--chunk-frames", type=_positive, default=300, metavar="N",
                   help="cut videos longer than 1.5 N frames into chunks of about N, run in parallel "
                        "(default 300; 0 = never cut)")
    p.add_argument("--warmup-frames", type=_positive, default=30, metavar="N",
                   help="frames run before each chunk but not written, so its temporal state matches one "
                        "pass (default 30)")
    p.add_argument("--size", type=_size, metavar="WxH", help="resize every input to this size")
    p.add_argument("--fit", choices=("crop", "pad"), default="crop",
                   help="with --size: crop (default) or pad pictures of another shape, as for a single job")
    p.add_argument("--stills", action="store_true",
                   help="process every image of a folder on its own, as for a single job (default: numbered "
                        "names are frames of one video, other names stills)")
    p.add_argument("--focus", metavar="F", help="focus override, as for a single job")
    p.add_argument("--quality", choices=("fast", "high"),
                   help="matte quality, as for a single file job (default: what a single file job uses)")
    p.add_argument("--frames", type=_positive, metavar="N", help="at most N frames of each input")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress line")
    return p


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(f"{PROG}: {text}", file=sys.stderr, flush=True)


def _probe(job: bp.Job, frames_limit: int | None, stills: bool) -> bool:
    """Frame count and rate of a job's input (a corrupt file fails here, before any worker);
    True when it is one stream that chunks can split (not stills, each processed on its own)."""
    from realtime.io.sources import open_source

    with open_source(job.input, stills=stills or None) as src:
        n = src.total or 0
        job.fps = src.fps
        sequence = not getattr(src, "stills", False)
    if frames_limit is not None:
        n = min(n, frames_limit) if n else frames_limit
    job.frames = n
    return sequence


def plan(args: argparse.Namespace, preset_hash: str) -> tuple[list[bp.Job], list[bp.Job], list[bp.Job], str]:
    """(jobs to run, jobs already complete, failed jobs, options digest)."""
    out_dir = Path(os.path.abspath(args.output))   # workers of a cluster have another working folder
    cwd = Path(os.getcwd())
    opts = bp.Options(args.preset, args.output_kind, args.save_matte, args.save_depth, args.frames, args.size,
                      args.focus, getattr(args, "quality", None), preset_hash, args.fit, args.stills)
    digest = opts.digest()
    jobs, failed = bp.discover(args.input, out_dir, cwd)
    for j in jobs:
        bp.assign_targets(j, out_dir, opts)
    bp.clash_between_jobs(jobs)
    inputs = bp.InputIndex([j.input for j in jobs])
    manifest = bp.Manifest(out_dir)
    todo, done = [], []
    for j in jobs:
        if j.error is None:
            j.error = bp.clash_with_inputs(j, inputs)
        if j.error is None and manifest.is_done(j, digest):
            done.append(j)
            continue
        if j.error is None:
            j.error = _foreign_folder(j, manifest)
        if j.error is None:
            try:
                sequence = _probe(j, args.frames, args.stills)
            except Exception as e:  # the reason a single job would give
                j.error = str(e)
        if j.error is None:
            j.chunks = bp.plan_chunks(j.frames, args.chunk_frames) if sequence and j.source_kind != "image" else []
            todo.append(j)
        else:
            failed.append(j)
    return todo, done, failed, digest


def _foreign_folder(job: bp.Job, manifest: bp.Manifest) -> str | None:
    """A folder output that exists but was not written by a batch into this folder is not replaced."""
    ours = set((manifest.entries.get(job.rel) or {}).get("outputs", []))
    for t in job.targets:
        if t.is_folder and not t.single and os.path.isdir(t.final) and t.final not in ours and os.listdir(t.final):
            return f"output folder {t.final} exists and was not written by a batch; remove it or choose another --output"
    return None


def _finalize(job: bp.Job) -> None:
    """Rename every temporary output of a complete job to its final name."""
    for t in job.targets:
        final, tmp = Path(t.final), Path(t.tmp)
        final.parent.mkdir(parents=True, exist_ok=True)
        if t.single:
            pngs = sorted(tmp.glob("*.png"))
            if len(pngs) != 1:
                raise OSError(f"expected one picture in {tmp}, found {len(pngs)}")
            os.replace(pngs[0], final)
            shutil.rmtree(tmp, ignore_errors=True)
            continue
        if not t.is_folder:
            os.replace(tmp, final)
            continue
        if final.is_dir():
            trash = final.with_name(f"{bp.PARTIAL}{final.name}.old")
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)


def _discard(job: bp.Job, sweep: bool = False) -> None:
    """Remove whatever an unfinished job left (only its temporary names). ``sweep`` (before the
    batch starts, and after Ctrl-C killed the workers) also removes the private folders video
    writers left beside its outputs: no other writer is running then."""
    from realtime.io.safefiles import TEMP_PREFIX

    for path in [t.tmp for t in job.targets] + [job.chunk_dir]:
        p = Path(path)
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink(missing_ok=True)
        if sweep and p.parent.is_dir():
            for stale in p.parent.glob(f"{TEMP_PREFIX}*"):
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)


def _job_dict(job: bp.Job) -> dict:
    d = asdict(job)
    d["chunk_dir"] = job.chunk_dir
    return d


def _fmt_eta(seconds: float) -> str:
    from realtime.app.status import format_eta

    return format_eta(seconds)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    from realtime.core.config import load_preset

    preset = load_preset(args.preset)   # a bad preset fails here, once, with the allowed values
    if args.focus:
        from realtime.app.overrides import apply_focus

        if "," not in args.focus:
            apply_focus(preset, args.focus)
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--output {args.output} is a file; batch output is a folder (e.g. out/)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create output folder {out_dir} ({e.strerror or e})") from e
    todo, done, failed, digest = plan(args, bp.preset_digest(preset))
    if done:
        _say(args.quiet, f"{len(done)} file(s) already complete in {out_dir}/, skipped")
    for j in todo:
        _discard(j, sweep=True)   # temporaries of an interrupted earlier run
    runner = _Runner(args, ray, todo, digest, bp.Manifest(out_dir))
    try:
        runner.run()
    except ConfigError:
        raise
    except Exception as e:  # Ray itself failed (a node lost, the cluster gone): keep only complete outputs
        runner.cancel()
        print(f"{PROG}: stopped: the Ray cluster failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
              f"{len(runner.completed)} file(s) completed, unfinished outputs discarded; run the same command again "
              "to continue", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        runner.cancel()
        finished = len(runner.completed)
        print(f"{PROG}: interrupted: {finished} file(s) completed in this run, unfinished outputs discarded; "
              "run the same command again to continue", file=sys.stderr)
        return 130
    finally:
        runner.shutdown()
    failed += runner.failed
    total_frames = sum(runner.completed.values())
    _say(args.quiet, f"{len(runner.completed)} file(s) done ({total_frames} frames in {runner.elapsed:.1f} s, "
         f"{total_frames / max(runner.elapsed, 1e-9):.1f} fps), {len(done)} skipped, {len(failed)} failed")
    if failed:
        print(f"{PROG}: {len(failed)} file(s) failed:", file=sys.stderr)
        for j in failed:
            print(f"  {j.input}: {j.error}", file=sys.stderr)
        return 1
    return 0


class _Runner:
    """The driver: hands work to worker actors, tracks progress, finalises files."""

    def __init__(self, args, ray, jobs: list[bp.Job], digest: str, manifest: bp.Manifest) -> None:
        self.args = args
        self.ray = ray
        self.jobs = jobs
        self.digest = digest
        self.manifest = manifest
        self.completed: dict[str, int] = {}
        self.failed: list[bp.Job] = []
        self.actors: list = []
        self.counter = None
        self.elapsed = 0.0
        self._started_ray = False
        self._restore = None

    # -- cluster ----------------------------------------------------------------------------------
    def _connect(self) -> int:
        ray = self.ray
        env = {k: os.environ[k] for k in ENV_TO_WORKERS if os.environ.get(k)}
        common = dict(include_dashboard=False, log_to_driver=False, configure_logging=False,
                      runtime_env={"env_vars": env} if env else None)
        if self.args.address:
            try:
                ray.init(address=self.args.address, **common)
            except Exception as e:
                raise ConfigError(f"cannot connect to the Ray cluster at {self.args.address} ({e}); start one "
                                  "with 'ray start --head' or leave out --address for a local Ray") from e
        else:
            # the workers of a local Ray share this machine's kernel cache: compile it once here
            # (a cold cache: about a minute) rather than in every worker at once
            import shaders

            shaders.warmup()
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            try:
                ray.init(num_cpus=cores, **common)
            except Exception as e:
                raise ConfigError(f"cannot start a local Ray ({e}); 'ray stop' ends a stale one, or pass --address "
                                  "of a running cluster") from e
            self._started_ray = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        workers = max(1, self.args.workers or cpus)
        where = f"Ray at {self.args.address}" if self.args.address else "a local Ray"
        _say(self.args.quiet, f"{where}: {nodes} node(s), {cpus} CPU(s); {workers} worker(s)")
        return workers

    def _spawn(self):
        from realtime.app.batch_work import BatchWorker

        cls = self.ray.remote(num_cpus=1, max_restarts=0)(BatchWorker)
        return cls.remote(self.args.preset, self.args.focus, self.args.size, self.counter, self.args.fit,
                          self.args.stills, self.args.quality)

    def run(self) -> None:
        self._restore = _sigterm_as_interrupt()
        t0 = time.monotonic()
        if not self.jobs:
            return
        ray = self.ray
        workers = self._connect()
        self.counter = ray.remote(num_cpus=0)(_Counter).remote()
        queue: deque = deque()
        for k, job in enumerate(self.jobs):
            if job.chunks:
                queue.extend(("chunk", k, c) for c in range(len(job.chunks)))
            else:
                queue.append(("job", k, None))
        workers = min(workers, len(queue))
        self.actors = [self._spawn() for _ in range(workers)]
        idle = list(self.actors)
        running: dict = {}       # ref -> (actor, item)
        left: dict[int, int] = {k: len(j.chunks) for k, j in enumerate(self.jobs) if j.chunks}
        dead: set[int] = set()   # failed jobs: their remaining work is dropped
        total = sum(j.frames for j in self.jobs)
        status = _Progress(self.args.quiet, len(self.jobs), total, workers)
        t0 = time.monotonic()
        while queue or running:
            while idle and queue:
                item = queue.popleft()
                if item[1] in dead:
                    continue
                actor = idle.pop()
                running[self._submit(actor, item)] = (actor, item)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in ready:
                actor, item = running.pop(ref)
                kind, k, c = item
                job = self.jobs[k]
                try:
                    res = ray.get(ref)
                except Exception as e:  # the worker process died (native crash, out of memory)
                    res = {"error": f"worker died: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
                    self.ray.kill(actor, no_restart=True)
                    self.actors.remove(actor)
                    actor = self._spawn()
                    self.actors.append(actor)
                idle.append(actor)
                if k in dead:
                    continue
                if "error" in res:
                    dead.add(k)
                    job.error = res["error"]
                    _discard(job)
                    self.failed.append(job)
                    status.file_done(failed=True)
                    continue
                if kind == "chunk":
                    job.fps = res.get("fps", job.fps)
                    left[k] -= 1
                    if left[k] == 0:
                        if any(t.spec_kind.endswith("video") for t in job.targets):
                            queue.appendleft(("join", k, None))
                        else:
                            self._complete(job, status)
                    continue
                self._complete(job, status, res.get("frames"))
            status.update(self._frames_done(), time.monotonic() - t0)
        self.elapsed = time.monotonic() - t0
        status.update(self._frames_done(wait=2.0), self.elapsed, force=True)
        status.close()

    _count_ref = None
    _count = 0

    def _frames_done(self, wait: float = 0.0) -> int:
        """Frames written so far, from the counter actor without waiting for it: progress is only a
        display, so a slow or lost answer keeps the last figure rather than stall the batch."""
        ray = self.ray
        if self._count_ref is None:
            self._count_ref = self.counter.get.remote()
        ready, _ = ray.wait([self._count_ref], timeout=wait)
        if ready:
            try:
                self._count = max(self._count, ray.get(self._count_ref))
            except Exception:
                pass
            self._count_ref = None
        return self._count

    def _submit(self, actor, item):
        kind, k, c = item
        job = _job_dict(self.jobs[k])
        if kind == "join":
            return actor.join.remote(job, self.jobs[k].fps)
        chunk = self.jobs[k].chunks[c] if kind == "chunk" else None
        return actor.run.remote(job, chunk, self.args.warmup_frames, self.args.frames)

    def _complete(self, job: bp.Job, status, frames: int | None = None) -> None:
        frames = frames if frames is not None else job.frames
        try:
            _finalize(job)
            self.manifest.record(job, self.digest, frames)
        except OSError as e:
            job.error = f"cannot write its output ({e.strerror or e})"
            _discard(job)
            self.failed.append(job)
            status.file_done(failed=True)
            return
        self.completed[job.input] = frames
        status.file_done()

    def cancel(self) -> None:
        """Stop every worker at once, then remove the temporaries of every unfinished job."""
        for a in self.actors:
            try:
                self.ray.kill(a, no_restart=True)
            except Exception:
                pass
        self.actors = []
        time.sleep(0.5)   # a killed worker may be in the middle of one last write
        for j in self.jobs:
            if j.input not in self.completed:
                _discard(j, sweep=True)

    def shutdown(self) -> None:
        if self._restore is not None:
            self._restore()
            self._restore = None
        if self.ray.is_initialized():
            for a in self.actors:
                try:
                    self.ray.kill(a, no_restart=True)
                except Exception:
                    pass
            self.actors = []
            self.ray.shutdown()


class _Counter:
    """Frames written across the cluster (workers add to it as they go)."""

    def __init__(self) -> None:
        self.n = 0

    def add(self, n: int) -> None:
        self.n += n

    def get(self) -> int:
        return self.n


class _Progress:
    """One line for the whole batch: files and frames done, fps across the cluster, ETA."""

    def __init__(self, quiet: bool, files: int, frames: int, workers: int) -> None:
        from realtime.app.status import StatusLine

        self.line = StatusLine(quiet=quiet)
        self.files = files
        self.frames = frames
        self.workers = workers
        self.done = 0
        self.failed = 0

    def file_done(self, failed: bool = False) -> None:
        self.done += 1
        self.failed += failed

    def update(self, frames: int, seconds: float, force: bool = False) -> None:
        fps = frames / seconds if seconds > 0 else 0.0
        eta = _fmt_eta((self.frames - frames) / fps) if fps > 0 and self.frames > frames else "?"
        failed = f" ({self.failed} failed)" if self.failed else ""
        self.line.update(f"files {self.done}/{self.files}{failed} | frames {frames}/{self.frames} | "
                         f"{fps:.1f} fps on {self.workers} workers | ETA {eta}", force=force)

    def close(self) -> None:
        self.line.done()


def _sigterm_as_interrupt():
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, old)
