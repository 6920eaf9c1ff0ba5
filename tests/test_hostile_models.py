"""Model files and downloads under attack or bad luck (issue 19): endless or slow mirrors, huge
sparse files, swapped files, folders others can write to, a folder where a file should be."""

from __future__ import annotations

import http.server
import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import MODELS, LocalHTTP
from hostile import CLIP, cli
from realtime.core import models
from realtime.core.errors import ModelError, ModelHashError, ModelUnavailableError

NAME = "selfie_landscape"
MODEL = models.REGISTRY[NAME]


class _BadMirror(LocalHTTP):
    """A mirror on 127.0.0.1 that misbehaves: ``endless`` (no length, never stops) or ``slow``
    (one byte every 50 ms). It stops by itself when the client goes away or after 30 s."""

    def __init__(self, mode: str) -> None:
        self.sent = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self.send_response(200)
                self.end_headers()
                end = time.monotonic() + 30
                try:
                    while time.monotonic() < end:
                        block = b"\0" * (1 << 16) if mode == "endless" else b"\0"
                        self.wfile.write(block)
                        outer.sent += len(block)
                        if mode == "slow":
                            time.sleep(0.05)
                except OSError:  # the client hung up: what the test wants
                    pass

            def log_message(self, *args) -> None:
                pass

        super().__init__(Handler, "bad-mirror", threaded=True)


@pytest.fixture
def store(monkeypatch, tmp_path):
    """No model folder, an empty private cache."""
    cache = tmp_path / "cache"
    monkeypatch.delenv(models.ENV_MODEL_DIR, raising=False)
    monkeypatch.setenv(models.ENV_CACHE_DIR, str(cache))
    return cache


def test_registry_sizes_match_the_real_files(model_dir):
    for m in models.REGISTRY.values():
        assert m.size == (model_dir / m.file).stat().st_size, m.name


@pytest.mark.parametrize("mode", ["endless", "slow"])
def test_download_is_bounded_in_size_and_time(mode, store, monkeypatch):
    mirror = _BadMirror(mode)
    monkeypatch.setenv(models.ENV_MODEL_URL_BASE, mirror.url)
    t0 = time.monotonic()
    try:
        with pytest.raises(ModelError) as e:
            models.download(MODEL, timeout=5, deadline=2.0, progress=lambda *a: None)
    finally:
        mirror.close()
    took = time.monotonic() - t0
    assert took < 10
    assert ("more than" in str(e.value)) if mode == "endless" else ("longer than 2 s" in str(e.value))
    assert not list(store.iterdir())  # nothing kept, not even a partial file
    if mode == "endless":
        assert mirror.sent < 64 * MODEL.size  # stopped early, not after hundreds of MB


def test_huge_sparse_file_is_refused_by_size_without_hashing(tmp_path):
    f = tmp_path / MODEL.file
    with open(f, "wb") as fh:
        fh.truncate(4 << 30)  # 4 GB, sparse
    t0 = time.monotonic()
    with pytest.raises(ModelHashError, match="4294967296 bytes"):
        models.verify(f, MODEL)
    assert time.monotonic() - t0 < 1.0


def test_same_size_replacement_with_old_mtime_is_caught(tmp_path):
    f = tmp_path / MODEL.file
    shutil.copyfile(MODELS / MODEL.file, f)
    models.verify(f, MODEL)
    st = f.stat()
    data = bytearray(f.read_bytes())
    data[1000] ^= 0xFF
    time.sleep(0.01)
    with open(f, "r+b") as fh:  # same inode, same size, mtime copied back: only ctime tells
        fh.write(data)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_mtime_ns == st.st_mtime_ns and f.stat().st_size == st.st_size
    with pytest.raises(ModelHashError):
        models.verify(f, MODEL)


@pytest.mark.parametrize("what", ["folder", "file"])
def test_model_writable_by_others_is_refused(tmp_path, what):
    folder = tmp_path / "models"
    folder.mkdir()
    f = folder / MODEL.file
    shutil.copyfile(MODELS / MODEL.file, f)
    os.chmod(folder if what == "folder" else f, 0o777 if what == "folder" else 0o666)
    with pytest.raises(ModelError, match="can be written by other users"):
        models.resolve(NAME, f)
    os.chmod(folder, 0o755)
    os.chmod(f, 0o644)
    assert models.resolve(NAME, f) == f


def test_folder_where_the_cached_model_should_be_is_one_line(store, tmp_path):
    for m in models.REGISTRY.values():
        (store / m.file).mkdir(parents=True)
    env = {models.ENV_CACHE_DIR: str(store), models.ENV_MODEL_DIR: str(tmp_path / "empty"),
           models.ENV_MODEL_URL_BASE: "http://127.0.0.1:9"}
    r = cli("--input", CLIP, "--output", "null", "--frames", "1", "--quiet", env=env)
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("portrait-cam")]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    error = [ln for ln in lines if ln.startswith("portrait-cam: error:")]
    assert len(error) == 1 and "is a folder" in error[0] and ".tflite" in error[0], lines


def test_download_replaces_a_planted_symlink_never_writes_through_it(store, tmp_path, monkeypatch):
    body = (MODELS / MODEL.file).read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    store.mkdir()
    victim = tmp_path / "victim.txt"
    (store / MODEL.file).symlink_to(victim)  # dangling: the store sees no model there
    with LocalHTTP(Handler, "mirror") as mirror:
        monkeypatch.setenv(models.ENV_MODEL_URL_BASE, mirror.url)
        path = models.download(MODEL, progress=lambda *a: None)
    assert not victim.exists()
    assert path == store / MODEL.file and not path.is_symlink() and path.stat().st_size == MODEL.size
    assert sorted(p.name for p in store.iterdir()) == [MODEL.file]


def test_missing_model_in_a_folder_of_others_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "shared"
    folder.mkdir()
    shutil.copyfile(MODELS / MODEL.file, folder / MODEL.file)
    os.chmod(folder, 0o777)
    monkeypatch.setenv(models.ENV_MODEL_DIR, str(folder))
    with pytest.raises(ModelError, match="chmod go-w"):
        models.resolve(NAME, allow_download=False)
    assert isinstance(ModelUnavailableError("x"), ModelError)
