"""The model store: which models the project knows, and where each file comes from.

Resolution order for a model file:

1. an explicit path (preset ``model_path`` or CLI), used as given (its hash is checked);
2. the directory named by ``REALTIME_MODEL_DIR``;
3. the user cache: ``REALTIME_CACHE_DIR`` if set, else
   ``platformdirs.user_cache_dir("portrait-cam")/models``;
4. a download from the model's public URL into the cache (``REALTIME_MODEL_URL_BASE`` names a
   mirror instead: the file name is appended to it), with a progress bar, a sha256 check and an
   atomic rename (a failed or corrupt download never leaves a file behind).

A file whose sha256 differs from the registry is never used: :class:`ModelHashError` names the
path, the expected and the actual hash. The size is checked first (a huge or sparse file is
refused without reading it). Hashes are checked once per file per process, keyed by device,
inode, size, mtime and ctime (a same-size replacement with its mtime copied back changes the
ctime), so opening a model again costs nothing. A model file or folder that other users can
write to, or that another user owns, is refused: they could swap it between check and load.

Downloads are bounded: reading stops past the registry's size, and the whole download has a
deadline (``download(deadline=...)``, 300 s by default).

``python run.py models list|fetch|verify`` is :func:`main`.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import time
import tempfile
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from realtime.core.errors import ConfigError, ModelError, ModelHashError, ModelUnavailableError
from realtime.core.file_mode import FILE_MODE

ENV_MODEL_DIR = "REALTIME_MODEL_DIR"
ENV_CACHE_DIR = "REALTIME_CACHE_DIR"  # overrides the platform cache folder (tests, shared machines)
ENV_MODEL_URL_BASE = "REALTIME_MODEL_URL_BASE"  # mirror: file names are appended to it (tests, air-gapped sites)

__all__ = [
    "ENV_CACHE_DIR", "ENV_MODEL_DIR", "ENV_MODEL_URL_BASE", "REGISTRY", "ModelError", "ModelHashError",
    "ModelInfo", "ModelUnavailableError", "cache_dir", "candidates", "download", "info", "locate", "main",
    "resolve", "sha256_of", "verify",
]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    file: str
    url: str
    sha256: str
    licence: str
    what: str
    input_size: tuple[int, int] | None = None  # (width, height) the model takes, where it is fixed
    size: int = 0                              # bytes; 0 = unknown (then only the hash bounds it)

    @property
    def public_url(self) -> str:
        """The URL without its query string (what a person would type or click)."""
        return self.url.split("?")[0]


REGISTRY: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo(
            "selfie_landscape", "selfie_segmentation_landscape.tflite",
            "https://storage.googleapis.com/mediapipe-assets/tasks/testdata/vision/"
            "selfie_segmentation_landscape.tflite?generation=1782185347043395",
            "a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd",
            "Apache-2.0 (MediaPipe)", "MediaPipe selfie segmentation, landscape 144x256", (256, 144), 250145,
        ),
        ModelInfo(
            "selfie_square", "selfie_segmentation.tflite",
            "https://storage.googleapis.com/mediapipe-assets/tasks/testdata/vision/"
            "selfie_segmentation.tflite?generation=1782185339780682",
            "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
            "Apache-2.0 (MediaPipe)", "MediaPipe selfie segmentation, general 256x256", (256, 256), 249505,
        ),
        ModelInfo(
            "face_short_range", "face_detection_short_range.tflite",
            "https://storage.googleapis.com/mediapipe-assets/tasks/testdata/vision/"
            "face_detection_short_range.tflite?generation=1782184645070605",
            "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
            "Apache-2.0 (MediaPipe)", "MediaPipe BlazeFace short range 128x128", (128, 128), 229714,
        ),
        ModelInfo(
            "tcmonodepth_small", "tcmonodepth_tcsmallnet_192x320.onnx",
            "https://raw.githubusercontent.com/royshil/obs-backgroundremoval/"
            "875ffda175fcb066380b31797c63630c8b4a3c71/data/models/tcmonodepth_tcsmallnet_192x320.onnx",
            "902b886beaebd3f68deb40bab2fd636a0c112c1ef1cbdd15fa26e5c55b389b4d",
            "MIT (Yu Li; ONNX by Katsuya Hyodo)", "TCMonoDepth small, relative inverse depth 192x320", (320, 192), 790459,
        ),
    )
}

_verified: dict[tuple[int, ...], str] = {}
DOWNLOAD_DEADLINE_S = 300.0


def _cache_key(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _others_can_write(st: os.stat_result) -> bool:
    """Writable by a user other than its owner: world-writable, or group-writable by a group
    that is not the owner's own (a user-private group with no other members is fine)."""
    if st.st_mode & stat.S_IWOTH:
        return True
    if not st.st_mode & stat.S_IWGRP:
        return False
    try:
        import grp
        import pwd

        group = grp.getgrgid(st.st_gid)
        owner = pwd.getpwuid(st.st_uid)
    except (ImportError, KeyError):
        return True
    return not (group.gr_gid == owner.pw_gid and set(group.gr_mem) <= {owner.pw_name})


def check_trusted(path: Path) -> None:
    """Refuse a model file, or its folder, that another user owns or can write to."""
    me = os.geteuid() if hasattr(os, "geteuid") else None
    for p in (path, path.parent):
        try:
            st = p.stat()
        except OSError:
            continue
        if me is not None and st.st_uid not in (0, me):
            raise ModelError(f"{p} belongs to another user (uid {st.st_uid}); models are loaded only from "
                             f"folders you or root own: move {path.name} to a folder of yours")
        sticky_folder = p is not path and st.st_mode & stat.S_ISVTX  # /tmp: others cannot replace our file
        if me is not None and not sticky_folder and _others_can_write(st):
            raise ModelError(f"{p} can be written by other users (mode {stat.filemode(st.st_mode)}), who could "
                             f"replace the model after it was checked; run: chmod go-w {p}")
_verified_lock = threading.Lock()


def info(name: str) -> ModelInfo:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model '{name}'; known models: {', '.join(REGISTRY)}") from None


def cache_dir() -> Path:
    """Where downloaded models are kept: ``REALTIME_CACHE_DIR`` or the platform's user cache."""
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("portrait-cam")) / "models"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, model: ModelInfo) -> Path:
    """Raise :class:`ModelHashError` unless ``path`` is a trusted regular file of the registry's
    size and sha256."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        raise ModelUnavailableError(f"model file {path} cannot be read ({e.strerror or e})") from e
    if not stat.S_ISREG(st.st_mode):
        raise ModelUnavailableError(f"{path} is a folder or a device where the model file {model.file} should be; "
                                    "remove it (the model is then downloaded or looked up again)")
    check_trusted(path)
    if model.size and st.st_size != model.size:
        raise ModelHashError(f"model file {path} is {st.st_size} bytes, {model.file} has {model.size}; it is corrupt "
                             f"or another file: delete it (it will be downloaded again from {model.public_url})")
    key = _cache_key(st)
    with _verified_lock:
        if _verified.get(key) == model.sha256:
            return path
    try:
        actual = sha256_of(path)
    except OSError as e:
        raise ModelUnavailableError(f"model file {path} cannot be read ({e.strerror or e})") from e
    if actual != model.sha256:
        raise ModelHashError(
            f"model file {path} is corrupt or not {model.file}: sha256 {actual}, expected {model.sha256}; "
            f"delete it (it will be downloaded again from {model.public_url})"
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


def locate(name: str) -> Path | None:
    """The first copy of model ``name`` on disk (not hash-checked, never downloads), or None."""
    for path in candidates(info(name)):
        if path.is_file():
            return path
    return None


def _progress_printer(label: str, stream=None) -> Callable[[int, int | None], None]:
    """A progress bar on ``stream`` (stderr): redrawn in place on a terminal, else a line per 25%."""
    stream = stream or sys.stderr
    tty = stream.isatty()
    last = [-1]

    def show(done: int, total: int | None) -> None:
        if total:
            pct = min(100, int(100 * done / total))
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


def _one_line(e: BaseException) -> str:
    reason = getattr(e, "reason", None) or e
    return " ".join(str(reason).split())


class _TooLong(Exception):
    pass


def download(model: ModelInfo, dest_dir: Path | None = None, *, timeout: float = 30.0,
             deadline: float = DOWNLOAD_DEADLINE_S,
             progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download ``model`` into ``dest_dir`` (default: the cache), verified and renamed atomically.

    ``timeout`` bounds each network wait, ``deadline`` the whole download (seconds); reading
    stops as soon as more than the registry's size arrived."""
    dest_dir = Path(dest_dir) if dest_dir is not None else cache_dir()
    base = os.environ.get(ENV_MODEL_URL_BASE)
    url = base.rstrip("/") + "/" + model.file if base else model.url
    shown_url = url if base else model.public_url
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(f"cannot create the model cache {dest_dir} ({e.strerror or e}); "
                         f"set {ENV_MODEL_DIR} to a folder holding {model.file}") from e
    progress = progress or _progress_printer(model.file)
    check_trusted(dest_dir / model.file)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{model.file}.", suffix=".part", dir=dest_dir)
    tmp = Path(tmp_name)
    limit = model.size or (256 << 20)
    t_end = time.monotonic() + deadline
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as f:
            try:
                with urllib.request.urlopen(url, timeout=min(timeout, deadline)) as resp:
                    total = resp.headers.get("Content-Length")
                    total_i = int(total) if total and total.isdigit() else None
                    if total_i is not None and total_i > limit:
                        raise _TooLong(f"the server announces {total_i} bytes")
                    done = 0
                    progress(0, total_i or model.size or None)
                    while True:
                        if time.monotonic() > t_end:
                            raise TimeoutError(f"the download took longer than {deadline:g} s")
                        block = resp.read1(1 << 16)  # what has arrived: a trickle cannot outlast the deadline
                        if not block:
                            break
                        done += len(block)
                        if done > limit:
                            raise _TooLong(f"the server sent more than {limit} bytes")
                        f.write(block)
                        h.update(block)
                        progress(done, total_i or model.size or None)
            except _TooLong as e:
                raise ModelHashError(f"download of {model.file} from {shown_url} stopped: {e}, and the file has "
                                     f"{limit} bytes; nothing was saved (a wrong URL or mirror?)") from None
            except (urllib.error.URLError, OSError, ValueError) as e:
                raise ModelUnavailableError(
                    f"model {model.file} is not on this machine and could not be downloaded from {shown_url} "
                    f"({_one_line(e)}); download it by hand into {dest_dir} or set {ENV_MODEL_DIR} to a folder "
                    "that holds it"
                ) from e
        actual = h.hexdigest()
        if actual != model.sha256:
            raise ModelHashError(f"download of {model.file} from {shown_url} is corrupt: sha256 {actual}, "
                                 f"expected {model.sha256}; nothing was saved, try again")
        final = dest_dir / model.file
        try:
            os.chmod(tmp, FILE_MODE & 0o644)  # readable as the umask allows, never writable by others (check_trusted)
            os.replace(tmp, final)
        except OSError as e:
            raise ModelError(f"cannot save the downloaded {model.file} as {final} ({e.strerror or e}); "
                             "remove what is there") from e
        with _verified_lock:
            _verified[_cache_key(final.stat())] = model.sha256
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
        if path.exists():  # a folder or device under the model's name is an error, not a miss
            return verify(path, model)
    if not allow_download:
        where = " or ".join(str(p.parent) for p in candidates(model))
        raise ModelUnavailableError(f"model {model.file} not found in {where}; fetch it with "
                                    f"'python run.py models fetch' or download {model.public_url} there")
    return download(model)


# -- python run.py models list|fetch|verify ---------------------------------------------------

_USAGE = "usage: python run.py models list | fetch [NAME ...] | verify [NAME ...]"


def _names(args: Sequence[str]) -> list[str]:
    for a in args:
        if a.startswith("-"):
            raise ConfigError(f"models: unknown option '{a}'; {_USAGE}")
        info(a)  # unknown names fail with the list of known ones
    return list(args) or list(REGISTRY)


def where_looked(model: ModelInfo) -> list[tuple[str, Path]]:
    """The folders a model is looked up in, in order, each with what it is."""
    out = []
    env = os.environ.get(ENV_MODEL_DIR)
    if env:
        out.append((f"model dir (${ENV_MODEL_DIR})", Path(env).expanduser()))
    out.append((f"cache (${ENV_CACHE_DIR})" if os.environ.get(ENV_CACHE_DIR) else "cache", cache_dir()))
    return out


def needed_by(preset) -> list[str]:
    """The models a preset loads: segmentation (both for ``auto``), the face detector, depth."""
    seg = getattr(preset.segmentation.model, "value", preset.segmentation.model)
    names = ["selfie_landscape", "selfie_square"] if seg == "auto" else [f"selfie_{seg}"]
    if getattr(preset.focus.mode, "value", preset.focus.mode) == "face":
        names.append("face_short_range")
    if preset.depth.enabled:
        names.append("tcmonodepth_small")
    return names


def _cmd_list(args: Sequence[str], out) -> int:
    names = _names(args)
    rows = [("name", "file", "licence", "where")]
    for n in names:
        m = REGISTRY[n]
        where = locate(n)
        rows.append((n, m.file, m.licence, str(where) if where else "missing"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3] + "\n")
    out.write("looked up in, in this order (the first copy found is used):\n")
    for label, folder in where_looked(REGISTRY[names[0]]):
        out.write(f"  {label}: {folder}{'' if folder.is_dir() else ' (no such folder)'}\n")
    if not os.environ.get(ENV_MODEL_DIR):
        out.write(f"  (${ENV_MODEL_DIR} is not set)\n")
    return 0


def _cmd_fetch(args: Sequence[str], out) -> int:
    for n in _names(args):
        path = resolve(n)
        out.write(f"{n}: {path}\n")
    return 0


def _cmd_verify(args: Sequence[str], out, err) -> int:
    """Hash-check every copy on disk (model dir and cache). Exit 2 if a copy is corrupt, 1 if a
    model is missing (one named, or with no names one the default preset needs), else 0."""
    bad = 0
    missing = []
    named = list(args)
    names = _names(args)
    if not named:
        from realtime.core.config import load_preset

        need = set(needed_by(load_preset("portrait")))
    else:
        need = set(names)
    for n in names:
        model = REGISTRY[n]
        copies = [p for p in candidates(model) if p.is_file()]
        if not copies:
            looked = ", ".join(f"{label} {folder}" for label, folder in where_looked(model))
            out.write(f"{n}: missing (looked in {looked}; fetch it with 'python run.py models fetch {n}')\n")
            if n in need:
                missing.append(n)
        for p in copies:
            try:
                verify(p, model)
                out.write(f"{n}: ok {p}\n")
            except ModelError as e:
                err.write(f"error: {e}\n")
                bad += 1
    if missing and not bad:
        who = "asked for" if named else "the default preset needs"
        err.write(f"error: {len(missing)} model(s) {who} are missing: {', '.join(missing)}; "
                  "fetch them with 'python run.py models fetch'\n")
    return 2 if bad else 1 if missing else 0


_HELP = {
    "list": "usage: python run.py models list [NAME ...]\n  each model: name, file, licence, where it was found "
            "(or 'missing'), then the folders looked up in, in order",
    "fetch": "usage: python run.py models fetch [NAME ...]\n  find or download the models (all, or those named) "
             "into the cache, checking their sha256",
    "verify": "usage: python run.py models verify [NAME ...]\n  hash-check every copy on disk; exit 2 if one is "
              "corrupt, 1 if one the default preset needs (or one named) is missing, 0 when all are there and good",
}


def main(argv: Sequence[str]) -> int:
    """``models list|fetch|verify``; errors are :class:`~realtime.core.errors.PortraitCamError` (one line, exit 2)."""
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_USAGE)
        for cmd, text in _HELP.items():
            print(f"  {cmd:<7} {text.split(chr(10) + '  ', 1)[1]}")
        print(f"  folders: ${ENV_MODEL_DIR}, then the cache (${ENV_CACHE_DIR} or the platform cache); "
              f"${ENV_MODEL_URL_BASE} names a download mirror. Each command has --help.")
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd in _HELP and any(a in ("-h", "--help") for a in rest):
        print(_HELP[cmd])
        return 0
    if cmd == "list":
        return _cmd_list(rest, sys.stdout)
    if cmd == "fetch":
        return _cmd_fetch(rest, sys.stdout)
    if cmd == "verify":
        return _cmd_verify(rest, sys.stdout, sys.stderr)
    raise ConfigError(f"models: unknown command '{cmd}'; {_USAGE}")
