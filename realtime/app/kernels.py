"""The first start: Numba compiles every kernel once, and says so.

A cold Numba cache (a fresh install, an upgrade, a new ``NUMBA_CACHE_DIR``) means every kernel
is compiled before the first frame, which takes a minute in one process on a small machine.
:func:`prepare` checks the cache first (a fraction of a second): when any kernel is missing
from it, the kernel modules are compiled in parallel child processes, one per core, each
writing its kernels to the on-disk cache, while a line says what is happening
("compiling kernels, once: 12 s"); the pipeline then loads them from the cache. A warm cache
costs nothing but the check.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

# the kernel modules that register a warm-up, the slowest to compile first
MODULES = ("bokeh", "matte", "depth", "temporal", "area")
_CHILD = ("import sys, shaders.jit as j, importlib; m = importlib.import_module('shaders.' + sys.argv[1]); "
          "[f() for f in j.warmups if f.__module__ == m.__name__]")


def missing_kernels() -> list[str]:
    """Kernels (``module.name``) the on-disk Numba cache has no compiled code for. Helpers
    that are always inlined into other kernels never have their own entry and are skipped."""
    from numba.core.registry import CPUDispatcher

    missing = []
    for name in MODULES:
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


def compile_in_children(modules: tuple[str, ...] = MODULES, jobs: int | None = None,
                        tick: Callable[[float], None] | None = None) -> float:
    """Compile ``modules`` into the on-disk cache, ``jobs`` child processes at a time (default:
    the cores); returns the seconds it took. ``tick(elapsed)`` is called about once a second."""
    jobs = max(1, jobs or os.cpu_count() or 1)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    todo = list(modules)
    running: list[tuple[str, subprocess.Popen]] = []
    t0 = time.monotonic()
    last_tick = t0
    try:
        while todo or running:
            while todo and len(running) < jobs:
                name = todo.pop(0)
                running.append((name, subprocess.Popen([sys.executable, "-c", _CHILD, name], env=env,
                                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
            for item in list(running):
                if item[1].poll() is not None:
                    running.remove(item)
                    if item[1].returncode != 0:  # the pipeline's own warm-up compiles it (and raises)
                        err = item[1].stderr.read().decode(errors="replace").strip().splitlines()
                        print(f"kernel compile of shaders.{item[0]} failed: {err[-1] if err else '?'}",
                              file=sys.stderr)
                    item[1].stderr.close()
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


def prepare(say: Callable[[str], None], status: Callable[[str], None] | None = None) -> float | None:
    """Make sure the kernels are compiled before the pipeline starts: nothing when the cache is
    warm (returns None), else compile them in parallel and say so (returns the seconds)."""
    missing = missing_kernels()
    if not missing:
        return None
    say(f"compiling kernels, once ({len(missing)} not in the Numba cache yet; about a minute on 2 cores)...")
    secs = compile_in_children(tick=(lambda t: status(f"compiling kernels, once: {t:.0f} s")) if status else None)
    say(f"compiling kernels, once: {secs:.0f} s (cached for the next start)")
    return secs
