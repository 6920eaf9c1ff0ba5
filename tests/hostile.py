"""Helpers for the hostile-input tests: the real CLI in a subprocess, tiny filesystems."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import DATA, ROOT

CLIP = DATA / "talking" / "5.mp4"   # 524x524, 122 frames
SMALL = ["--size", "256x256", "--preset", "blur-only"]


def cli(*args, cwd: Path | None = None, timeout: float = 300, preexec=None, env: dict | None = None):
    """``python run.py ARGS`` with this worktree first on the path; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *map(os.fsdecode, args)], cwd=cwd,
                          env=full_env, capture_output=True, text=True, errors="backslashreplace",
                          timeout=timeout, preexec_fn=preexec)


def leftovers(folder: Path) -> list[str]:
    """Temporaries of ours (or the old predictable ones) anywhere under ``folder``."""
    return [str(p) for p in folder.rglob("*") if p.name.startswith((".portrait-cam-",)) or ".partial" in p.name]


def _mount(target: Path, options: str) -> bool:
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True,
                           timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


def _umount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=20)


def _limit_file_size(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


@contextmanager
def tiny_filesystem(target: Path, size: int):
    """A folder on a ``size``-byte tmpfs; yields ``preexec`` for the CLI subprocess (None when the
    mount worked; else an RLIMIT_FSIZE limit of ``size`` bytes, the fallback where mounting is
    not allowed)."""
    target.mkdir(parents=True, exist_ok=True)
    if _mount(target, f"size={max(4096, size)}"):
        try:
            yield None
        finally:
            _umount(target)
    else:
        yield _limit_file_size(size)


@contextmanager
def read_only_folder(target: Path):
    """A read-only folder, read-only even for root (a read-only tmpfs mount)."""
    target.mkdir(parents=True, exist_ok=True)
    if not _mount(target, "size=64k,ro"):
        if os.environ.get("CI"):
            pytest.fail("cannot mount a read-only tmpfs (needed for this test under CI)")
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        yield target
    finally:
        _umount(target)
