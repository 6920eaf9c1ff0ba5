"""The first start: Numba compiles every kernel once, and says so.

A cold Numba cache (a fresh install, an upgrade, a new ``NUMBA_CACHE_DIR``) means every kernel
is compiled before the lens can render, which takes a minute of CPU on a small machine.
:func:`missing_modules` checks the cache first (a fraction of a second): the kernel modules with
a kernel missing from it are compiled in parallel child processes, one per core, each writing
its kernels to the on-disk cache; the pipeline then loads them from the cache. A warm cache
costs nothing but the check.

Two ways to wait: :func:`prepare` blocks with a ticking line ("compiling kernels, once: 12 s"),
for file jobs, whose every frame must be the lens's; a :class:`CompileJob` compiles in the
background while a live source's frames take a cheaper path (``realtime.app.firststart``).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

# the kernel modules that register a warm-up, the slowest to compile first
MODULES = ("bokeh", "matte", "depth", "temporal", "area", "tiles", "checks")
# kernel modules without a warm-up of their own: the module whose warm-up compiles their kernels
_WARMED_BY = {"gather": "bokeh", "matte_apply": "matte"}
_CHILD = ("import os, sys, shaders.jit as j, importlib; os.nice(int(sys.argv[2])); "
          "m = importlib.import_module('shaders.' + sys.argv[1]); "
          "[f() for f in j.warmups if f.__module__ == m.__name__]")


def missing_kernels() -> list[str]:
    """Kernels (``module.name``) the on-disk Numba cache has no compiled code for. Helpers
    that are always inlined into other kernels never have their own entry and are skipped."""
    from numba.core.registry import CPUDispatcher

    missing = []
    for name in (*MODULES, *_WARMED_BY):
        mod = importlib.import_module(f"shaders.{name}")
        for attr, obj in vars(mod).items():
            if not isinstance(obj, CPUDispatcher) or obj.__module__ != mod.__name__:
                continue
            if obj.targetoptions.get("inline", "never") == "always":
                continue
            cache = getattr(obj, "_cache", None)
            cache_file = getattr(cache, "_cache_file", None)
            if cache_file is None:  # caching off for this kernel: nothing to look up
                continue
            try:
                index = cache_file._load_index()
            except Exception:  # an unreadable index is a miss; Numba rewrites it
                index = {}
            if not index:
                missing.append(f"{name}.{attr}")
    return missing


def missing_modules() -> tuple[str, ...]:
    """The kernel modules (of :data:`MODULES`) whose warm-up has something to compile, in
    :data:`MODULES` order (slowest first); empty when the cache is warm."""
    owners = {_WARMED_BY.get(k.split(".")[0], k.split(".")[0]) for k in missing_kernels()}
    return tuple(m for m in MODULES if m in owners)


def compile_in_children(modules: tuple[str, ...] = MODULES, jobs: int | None = None,
                        tick: Callable[[float], None] | None = None, nice: int = 0,
                        stop: threading.Event | None = None) -> float:
    """Compile ``modules`` into the on-disk cache, ``jobs`` child processes at a time (default:
    the cores), each at niceness ``nice``; returns the seconds it took. ``tick(elapsed)`` is
    called about once a second; a set ``stop`` kills the children and returns at once."""
    jobs = max(1, jobs or os.cpu_count() or 1)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    todo = list(modules)
    running: list[tuple[str, subprocess.Popen]] = []
    t0 = time.monotonic()
    last_tick = t0
    try:
        while (todo or running) and not (stop is not None and stop.is_set()):
            while todo and len(running) < jobs:
                name = todo.pop(0)
                running.append((name, subprocess.Popen([sys.executable, "-c", _CHILD, name, str(nice)], env=env,
                                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                       stderr=subprocess.PIPE)))
            for item in list(running):
                if item[1].poll() is not None:
                    running.remove(item)
                    if item[1].returncode != 0:  # the pipeline's own warm-up compiles it (and raises)
                        err = item[1].stderr.read().decode(errors="replace").strip().splitlines()
                        print(f"kernel compile of shaders.{item[0]} failed: {err[-1] if err else '?'}",
                              file=sys.stderr)
                    item[1].stderr.close()
            if stop is not None:
                stop.wait(0.05)
            else:
                time.sleep(0.05)
            now = time.monotonic()
            if tick is not None and now - last_tick >= 1.0:
                last_tick = now
                tick(now - t0)
    finally:
        for _, p in running:  # interrupted: the children go with us
            p.kill()
            p.wait()
            p.stderr.close()
    return time.monotonic() - t0


class CompileJob:
    """:func:`compile_in_children` in a background thread: ``elapsed`` for the status line,
    ``wait()`` until done, ``close()`` stops it (children killed) and joins the thread.

    The children run at a lower priority (``nice``) so the process's own frames keep flowing
    while they compile; the kernels they finish are in the cache whatever happens after.
    """

    def __init__(self, modules: tuple[str, ...] = MODULES, nice: int = 10, jobs: int | None = None) -> None:
        self.modules = modules
        self.started = time.monotonic()
        self.seconds: float | None = None  # set when finished
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(nice, jobs), name="portrait-cam-kernel-compile",
                                        daemon=True)
        self._thread.start()

    def _run(self, nice: int, jobs: int | None) -> None:
        try:
            self.seconds = compile_in_children(self.modules, jobs=jobs, nice=nice, stop=self._stop)
        finally:
            self._done.set()

    @property
    def elapsed(self) -> float:
        return self.seconds if self.seconds is not None else time.monotonic() - self.started

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the children finished (or were stopped); False on ``timeout``."""
        return self._done.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> CompileJob:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def prepare(say: Callable[[str], None], status: Callable[[str], None] | None = None) -> float | None:
    """Make sure the kernels are compiled before the pipeline starts: nothing when the cache is
    warm (returns None), else compile them in parallel and say so (returns the seconds)."""
    modules = missing_modules()
    if not modules:
        return None
    say(f"compiling kernels, once ({', '.join(modules)} not in the Numba cache yet; about a minute on 2 cores)...")
    secs = compile_in_children(modules, tick=(lambda t: status(f"compiling kernels, once: {t:.0f} s"))
                               if status else None)
    say(f"compiling kernels, once: {secs:.0f} s (cached for the next start)")
    return secs
