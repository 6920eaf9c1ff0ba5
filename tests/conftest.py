"""Shared fixtures: where the real models and the real test data are.

The model store is pointed at ``../shared/models`` (``REALTIME_MODEL_DIR``) unless the
environment already names a folder; the data folder is ``REALTIME_DATA_DIR`` or
``../shared/data`` beside the repository.
"""

from __future__ import annotations

import contextlib
import http.server
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from realtime.core.threads import set_process_policy
from realtime.devtools import testdata

set_process_policy()  # as the entry points do: the kernel tests run without a Pipeline

ROOT = testdata.ROOT
MODELS = testdata.use_shared_models()
DATA = testdata.data_dir()
PEOPLE = ("breakdance", "dance-twirl")


class FakeClock:
    """A clock the test moves by hand (``clock.t += 0.5``), for code that takes ``clock=``."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class LocalHTTP:
    """``handler`` served on 127.0.0.1 (a free port) from a daemon thread until :meth:`close`;
    ``threaded`` answers each request in its own thread (a server that must not block on one)."""

    def __init__(self, handler, name: str, *, threaded: bool = False) -> None:
        if threaded:
            self.httpd: http.server.HTTPServer = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            self.httpd.daemon_threads = True
        else:
            self.httpd = http.server.HTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=name, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def __enter__(self) -> "LocalHTTP":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def reaped(proc: subprocess.Popen):
    """The child is killed and reaped when the block leaves it running (a failed assertion must
    not leave a ``run.py`` behind); a child the block stopped itself is only reaped."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def model_dir() -> Path:
    if not MODELS.is_dir():
        pytest.fail(f"model folder {MODELS} is missing; set REALTIME_MODEL_DIR")
    return MODELS


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"data folder {DATA} is missing; set REALTIME_DATA_DIR")
    return DATA


def people_frames(name: str) -> list[Path]:
    return sorted((DATA / "people" / name / "frames").glob("*.jpg"))


def people_masks(name: str) -> list[Path]:
    return sorted((DATA / "people" / name / "masks").glob("*.png"))


def load_sequence(name: str, limit: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames (BGR uint8) and ground-truth masks (float32 0/1) of a people sequence."""
    return testdata.people_sequence(name, limit)


def talking_frame(index: int = 0, clip: str = "1.mp4", size: tuple[int, int] | None = (1280, 720)) -> np.ndarray:
    """One decoded frame of a talking-head clip, optionally resized to ``size`` (w, h)."""
    return testdata.video_frame(DATA / "talking" / clip, index, size)


def _threads_left(before: set[int], ours_only: bool, wait: float = 2.0) -> list[threading.Thread]:
    import time

    deadline = time.monotonic() + wait
    while True:
        extra = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()
                 and (t.name.startswith("portrait-cam") or (not ours_only and not t.daemon))]
        if not extra or time.monotonic() > deadline:
            return extra
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def _no_thread_leak():
    """Every test must leave none of the project's threads (named portrait-cam-*) running."""
    before = {t.ident for t in threading.enumerate()}
    yield
    extra = _threads_left(before, ours_only=True)
    assert not extra, f"threads left running: {[t.name for t in extra]}"


@pytest.fixture(scope="session", autouse=True)
def _no_thread_leak_at_all():
    """After every fixture is closed, no non-daemon thread (ours or a library's, e.g. a
    MediaPipe task that was never closed) may be left running."""
    before = {t.ident for t in threading.enumerate()}
    yield
    extra = _threads_left(before, ours_only=False, wait=5.0)
    assert not extra, f"threads left running at the end of the session: {[t.name for t in extra]}"
