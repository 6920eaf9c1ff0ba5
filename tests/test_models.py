"""The model store: resolution order, hash checks, and the download path against a local server.

The server is ``http.server`` on 127.0.0.1 (port 0) in a thread, serving the real model files
from the shared model folder (or a corrupted copy of one); ``REALTIME_MODEL_URL_BASE`` points
the store at it and ``REALTIME_CACHE_DIR`` at a temporary cache.
"""

from __future__ import annotations

import hashlib
import http.server
import shutil
import socket

import pytest

from conftest import MODELS, LocalHTTP
from realtime.core import models
from realtime.core.errors import ConfigError, ModelError, ModelHashError, ModelUnavailableError, PortraitCamError

NAME = "selfie_landscape"
MODEL = models.REGISTRY[NAME]


class _Server(LocalHTTP):
    """Serves ``files`` (name -> bytes) and counts the requests it answered."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                name = self.path.lstrip("/").split("?")[0]
                outer.requests.append(name)
                body = outer.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

        super().__init__(Handler, "model-mirror")


@pytest.fixture
def mirror(monkeypatch, tmp_path):
    """A local mirror serving the real model files; the store sees no model folder, an empty cache."""
    server = _Server()
    for m in models.REGISTRY.values():
        if (MODELS / m.file).is_file():
            server.files[m.file] = (MODELS / m.file).read_bytes()
    monkeypatch.delenv(models.ENV_MODEL_DIR, raising=False)
    monkeypatch.setenv(models.ENV_CACHE_DIR, str(tmp_path / "cache"))
    monkeypatch.setenv(models.ENV_MODEL_URL_BASE, server.url)
    try:
        yield server
    finally:
        server.close()
    assert not server.thread.is_alive()


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_registry_entries_are_complete():
    for name, m in models.REGISTRY.items():
        assert m.name == name
        assert len(m.sha256) == 64 and int(m.sha256, 16) >= 0
        assert m.url.startswith("https://") and m.licence and m.file in m.url


def test_shared_models_match_the_registry(model_dir):
    for m in models.REGISTRY.values():
        assert hashlib.sha256((model_dir / m.file).read_bytes()).hexdigest() == m.sha256


def test_download_from_mirror_checks_hash_and_shows_progress(mirror, capfd):
    path = models.resolve(NAME)
    cache = models.cache_dir()
    assert path == cache / MODEL.file
    assert models.sha256_of(path) == MODEL.sha256
    err = capfd.readouterr().err
    assert f"downloading {MODEL.file}" in err and "100%" in err
    assert sorted(p.name for p in cache.iterdir()) == [MODEL.file]  # no .part file left behind
    from realtime.core.file_mode import FILE_MODE

    # the temporary's 0600 is not kept: readable as the umask allows, never writable by others
    assert path.stat().st_mode & 0o777 == FILE_MODE & 0o644
    # the second call finds the cached copy: no new request
    n = len(mirror.requests)
    assert models.resolve(NAME) == path
    assert len(mirror.requests) == n == 1


def test_corrupted_download_is_rejected_and_leaves_nothing(mirror):
    good = mirror.files[MODEL.file]
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    mirror.files[MODEL.file] = bytes(bad)
    with pytest.raises(ModelHashError) as e:
        models.resolve(NAME)
    msg = str(e.value)
    assert MODEL.sha256 in msg and hashlib.sha256(bad).hexdigest() in msg and "\n" not in msg
    cache = models.cache_dir()
    assert not cache.exists() or list(cache.iterdir()) == []


def test_offline_error_names_file_url_and_where(monkeypatch, tmp_path):
    monkeypatch.delenv(models.ENV_MODEL_DIR, raising=False)
    monkeypatch.setenv(models.ENV_CACHE_DIR, str(tmp_path / "cache"))
    url = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv(models.ENV_MODEL_URL_BASE, url)
    with pytest.raises(ModelUnavailableError) as e:
        models.resolve(NAME)
    msg = str(e.value)
    assert isinstance(e.value, PortraitCamError) and isinstance(e.value, FileNotFoundError)
    assert "\n" not in msg
    assert MODEL.file in msg and f"{url}/{MODEL.file}" in msg and str(tmp_path / "cache") in msg
    assert list((tmp_path / "cache").iterdir()) == []


def test_offline_without_download_names_the_public_url(monkeypatch, tmp_path):
    monkeypatch.setenv(models.ENV_MODEL_DIR, str(tmp_path / "none"))
    monkeypatch.setenv(models.ENV_CACHE_DIR, str(tmp_path / "cache"))
    with pytest.raises(ModelUnavailableError) as e:
        models.resolve(NAME, allow_download=False)
    msg = str(e.value)
    assert MODEL.file in msg and MODEL.public_url in msg and str(tmp_path / "cache") in msg


def test_wrong_hash_on_disk_is_never_used(monkeypatch, tmp_path):
    bad_dir = tmp_path / "models"
    bad_dir.mkdir()
    data = bytearray((MODELS / MODEL.file).read_bytes())
    data[100] ^= 0x01
    (bad_dir / MODEL.file).write_bytes(bytes(data))
    monkeypatch.setenv(models.ENV_MODEL_DIR, str(bad_dir))
    monkeypatch.setenv(models.ENV_CACHE_DIR, str(tmp_path / "cache"))
    with pytest.raises(ModelHashError) as e:
        models.resolve(NAME)
    msg = str(e.value)
    assert str(bad_dir / MODEL.file) in msg and MODEL.sha256 in msg
    assert hashlib.sha256(bytes(data)).hexdigest() in msg
    # explicitly named, the same file is refused too
    with pytest.raises(ModelHashError):
        models.resolve(NAME, bad_dir / MODEL.file)


def test_resolution_order(monkeypatch, tmp_path):
    env_dir, cache = tmp_path / "env", tmp_path / "cache"
    for d in (env_dir, cache):
        d.mkdir()
        shutil.copy(MODELS / MODEL.file, d / MODEL.file)
    explicit = tmp_path / "mine.tflite"
    shutil.copy(MODELS / MODEL.file, explicit)
    monkeypatch.setenv(models.ENV_CACHE_DIR, str(cache))
    monkeypatch.setenv(models.ENV_MODEL_DIR, str(env_dir))
    assert models.resolve(NAME, explicit) == explicit
    assert models.resolve(NAME) == env_dir / MODEL.file
    monkeypatch.delenv(models.ENV_MODEL_DIR)
    assert models.resolve(NAME) == cache / MODEL.file
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        models.resolve(NAME, tmp_path / "nope.tflite")


def test_unknown_model_lists_known_ones():
    with pytest.raises(ModelError) as e:
        models.resolve("selfie_xl")
    assert all(n in str(e.value) for n in models.REGISTRY)


def test_cli_list_fetch_verify(mirror, capsys):
    assert models.main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(m.file in out and m.licence in out for m in models.REGISTRY.values())
    assert out.count("missing") == len(models.REGISTRY)

    assert models.main(["fetch", NAME]) == 0
    assert str(models.cache_dir() / MODEL.file) in capsys.readouterr().out
    assert models.main(["list", NAME]) == 0
    assert str(models.cache_dir() / MODEL.file) in capsys.readouterr().out

    assert models.main(["verify", NAME]) == 0
    assert "ok" in capsys.readouterr().out

    # a copy corrupted after the download: verify fails with the error line, exit 2
    p = models.cache_dir() / MODEL.file
    data = bytearray(p.read_bytes())
    data[0] ^= 0xFF
    p.write_bytes(bytes(data))
    assert models.main(["verify"]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and str(p) in lines[0] and MODEL.sha256 in lines[0]


def test_cli_rejects_unknown_commands_and_names():
    with pytest.raises(ConfigError, match="unknown command"):
        models.main(["frobnicate"])
    with pytest.raises(ModelError, match="unknown model"):
        models.main(["fetch", "nope"])
    assert models.main([]) == 2


def test_progress_printer_without_terminal_prints_quarters(capsys):
    import io

    buf = io.StringIO()
    show = models._progress_printer("x.bin", buf)
    for done in range(0, 1001, 10):
        show(done, 1000)
    lines = buf.getvalue().splitlines()
    assert [ln.split("]")[1].split("%")[0].strip() for ln in lines] == ["0", "25", "50", "75", "100"]
