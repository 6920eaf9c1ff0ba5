"""The model store: which models the project knows, and where each file comes from.

Resolution order for a model file:

1. an explicit path (preset ``model_path`` or CLI), used as given (its hash is checked);
2. the directory named by ``REALTIME_MODEL_DIR``;
3. the user cache (``platformdirs.user_cache_dir("portrait-cam")/models``);
4. a download from the model's public URL into the cache, with a progress bar, a sha256
   check and an atomic rename (a failed or corrupt download never leaves a file behind).

A file whose sha256 differs from the registry is never used: :class:`ModelHashError` names the
path, the expected and the actual hash. Hashes are checked once per file per process (keyed by
path, size and mtime) so opening a model again costs nothing.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import ModelError, ModelHashError, ModelUnavailableError

ENV_MODEL_DIR = "REALTIME_MODEL_DIR"
ENV_MODEL_URL_BASE = "REALTIME_MODEL_URL_BASE"  # mirror: file names are appended to it (tests, air-gapped sites)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    file: str
    url: str
    sha256: str
    licence: str
    what: str


REGISTRY: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo(
            "selfie_landscape", "selfie_segmentation_landscape.tflite",
            "https://storage.googleapis.com/mediapipe-assets/tasks/testdata/vision/"
            "selfie_segmentation_landscape.tflite?generation=1782185347043395",
            "a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd",
            "Apache-2.0 (MediaPipe)", "MediaPipe selfie segmentation, landscape 144x256",
        ),
        ModelInfo(
            "selfie_square", "selfie_segmentation.tflite",
            "https://storage.googleapis.com/mediapipe-assets/tasks/testdata/vision/"
            "selfie_segmentation.tflite?generation=1782185339780682",
            "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
            "Apache-2.0 (MediaPipe)", "MediaPipe selfie segmentation, general 256x256",
        ),
        ModelInfo(
            "face_short_range", "face_detection_short_range.tflite",
            "https://storage.googleapis.com/mediapipe-assets/tasks/testdata/vision/"
            "face_detection_short_range.tflite?generation=1782184645070605",
            "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
            "Apache-2.0 (MediaPipe)", "MediaPipe BlazeFace short range 128x128",
        ),
        ModelInfo(
            "tcmonodepth_small", "tcmonodepth_tcsmallnet_192x320.onnx",
            "https://raw.githubusercontent.com/royshil/obs-backgroundremoval/"
            "875ffda175fcb066380b31797c63630c8b4a3c71/data/models/tcmonodepth_tcsmallnet_192x320.onnx",
            "902b886beaebd3f68deb40bab2fd636a0c112c1ef1cbdd15fa26e5c55b389b4d",
            "MIT (Yu Li; ONNX by Katsuya Hyodo)", "TCMonoDepth small, relative inverse depth 192x320",
        ),
    )
}

_verified: dict[tuple[str, int, int], str] = {}
_verified_lock = threading.Lock()


def info(name: str) -> ModelInfo:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model '{name}'; known models: {', '.join(REGISTRY)}") from None


def cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("portrait-cam")) / "models"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, model: ModelInfo) -> Path:
    """Raise :class:`ModelHashError` unless ``path`` has the registry's sha256."""
    try:
        st = path.stat()
    except OSError as e:
        raise ModelUnavailableError(f"model file {path} cannot be read ({e.strerror or e})") from e
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _verified_lock:
        if _verified.get(key) == model.sha256:
            return path
    actual = sha256_of(path)
    if actual != model.sha256:
        raise ModelHashError(
            f"model file {path} is corrupt or not {model.file}: sha256 {actual}, expected {model.sha256}; "
            f"delete it (it will be downloaded again from {model.url.split('?')[0]})"
        )
    with _verified_lock:
        _verified[key] = model.sha256
    return path


def candidates(model: ModelInfo) -> list[Path]:
    """Where a copy of the model is looked for, in order (explicit paths excluded)."""
    out = []
    env = os.environ.get(ENV_MODEL_DIR)
    if env:
        out.append(Path(env).expanduser() / model.file)
    out.append(cache_dir() / model.file)
    return out


def _progress_printer(label: str) -> Callable[[int, int | None], None]:
    stream = sys.stderr
    tty = stream.isatty()
    last = [-1]

    def show(done: int, total: int | None) -> None:
        if total:
            pct = int(100 * done / total)
            if pct == last[0]:
                return
            last[0] = pct
            bar = "#" * (pct // 4)
            text = f"downloading {label}: [{bar:<25}] {pct:3d}% {done / 1e6:.1f}/{total / 1e6:.1f} MB"
        else:
            text = f"downloading {label}: {done / 1e6:.1f} MB"
        if tty:
            stream.write("\r" + text)
            if total and done >= total:
                stream.write("\n")
        elif total is None or done >= total or last[0] % 25 == 0:
            stream.write(text + "\n")
        stream.flush()

    return show


def download(model: ModelInfo, dest_dir: Path | None = None, *, timeout: float = 30.0,
             progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download ``model`` into ``dest_dir`` (default: the cache), verified and renamed atomically."""
    dest_dir = Path(dest_dir) if dest_dir is not None else cache_dir()
    base = os.environ.get(ENV_MODEL_URL_BASE)
    url = base.rstrip("/") + "/" + model.file if base else model.url
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(f"cannot create the model cache {dest_dir} ({e.strerror or e}); "
                         f"set {ENV_MODEL_DIR} to a folder holding {model.file}") from e
    progress = progress or _progress_printer(model.file)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{model.file}.", suffix=".part", dir=dest_dir)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as f:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    total = resp.headers.get("Content-Length")
                    total_i = int(total) if total and total.isdigit() else None
                    done = 0
                    progress(0, total_i)
                    while True:
                        block = resp.read(1 << 16)
                        if not block:
                            break
                        f.write(block)
                        h.update(block)
                        done += len(block)
                        progress(done, total_i)
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = getattr(e, "reason", None) or e
                raise ModelUnavailableError(
                    f"model {model.file} is not on this machine and could not be downloaded from {url} ({reason}); "
                    f"download it by hand into {dest_dir} or set {ENV_MODEL_DIR} to a folder that holds it"
                ) from e
        actual = h.hexdigest()
        if actual != model.sha256:
            raise ModelHashError(f"download of {model.file} from {url} is corrupt: sha256 {actual}, "
                                 f"expected {model.sha256}; nothing was saved, try again")
        final = dest_dir / model.file
        os.replace(tmp, final)
        with _verified_lock:
            st = final.stat()
            _verified[(str(final.resolve()), st.st_size, st.st_mtime_ns)] = model.sha256
        return final
    finally:
        if tmp.exists():
            tmp.unlink()


def resolve(name: str, explicit: str | os.PathLike | None = None, *, allow_download: bool = True) -> Path:
    """The verified path of model ``name`` (see the module docstring for the order)."""
    model = info(name)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ModelUnavailableError(f"model file {path} does not exist (given explicitly for {model.file}); "
                                        "fix the path or leave it empty to use the model store")
        return verify(path, model)
    for path in candidates(model):
        if path.is_file():
            return verify(path, model)
    if not allow_download:
        where = " or ".join(str(p.parent) for p in candidates(model))
        raise ModelUnavailableError(f"model {model.file} not found in {where}; fetch it with "
                                    f"'python run.py models fetch' or download {model.url} there")
    return download(model)
