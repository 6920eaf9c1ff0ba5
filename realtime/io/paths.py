"""Where a job may write: no output is the input, inside the input folder, or another output.

Paths are compared as the file system sees them, not as typed: symlinks, ``./`` and ``..``,
relative against absolute, and hard links (``os.path.samefile`` once both exist). Every check
runs before anything is opened or created, so a refused job leaves the disk as it was.
A refusal is a :class:`ConfigError`: one line naming both paths, exit code 2.

Also here: the folders a sink creates (so a job that ends with nothing in them removes them
again) and the sentence that says which finished frames an interrupted job kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from realtime.core.errors import ConfigError

_NOT_FILES = ("virtualcam", "pipewire", "preview", "null")
# ``--output`` names ending so are one picture (an image input, or --frames 1)
PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Target:
    """One place a job writes: ``label`` is how the user gave it (for messages)."""

    label: str
    path: Path
    folder: bool


def output_target(spec: str) -> Target | None:
    """The file or folder an ``--output`` spec writes to (None for cameras, windows, null)."""
    s = spec.strip()
    low = s.lower()
    if not s or low in _NOT_FILES or low.startswith(("virtualcam:", "pipewire:")):
        return None
    path = s
    for prefix in ("rgba:", "matte:"):
        if low.startswith(prefix):
            path = s[len(prefix):]
    if not path:
        return None
    folder = path.endswith(("/", os.sep)) or Path(path).is_dir()
    if low.startswith("rgba:") and Path(path).suffix.lower() not in PICTURE_EXTENSIONS:
        folder = True
    return Target(f"--output {spec}", Path(path).expanduser(), folder)


def _real(path: Path) -> str:
    return os.path.realpath(os.path.abspath(path))


def same_place(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name the same file or folder (existing or about to be made)."""
    if _real(a) == _real(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts
    except OSError:
        return False


def inside(path: Path, folder: Path) -> bool:
    """True when ``path`` is ``folder`` itself or anywhere below it."""
    real_path, real_folder = _real(path), _real(folder)
    if real_path == real_folder or real_path.startswith(real_folder.rstrip(os.sep) + os.sep):
        return True
    for parent in [path, *Path(os.path.abspath(path)).parents]:  # the same folder through another mount
        if parent.exists():
            try:
                if os.path.samefile(parent, folder):
                    return True
            except OSError:
                pass
    return False


def _input_path(spec: str | None) -> Path | None:
    if spec is None:
        return None
    text = str(spec)
    if text.isdigit() or text.startswith("/dev/"):
        return None  # a camera
    path = Path(text).expanduser()
    return path if path.exists() else None


def _blocking_file(path: Path) -> Path | None:
    """The regular file standing where a folder of ``path`` would have to be, if any."""
    for parent in Path(os.path.abspath(path)).parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_job_paths(input_spec: str | None, outputs: Sequence[str], *, save_matte: str | None = None,
                    save_depth: str | None = None, picture: str | None = None) -> list[Target]:
    """Refuse (ConfigError, one line naming both paths) any output that would overwrite the
    input, land inside the input folder, sit under a regular file, or collide with another output."""
    targets = [t for t in (output_target(o) for o in outputs) if t is not None]
    if save_matte:
        targets.append(Target(f"--save-matte {save_matte}", Path(save_matte).expanduser(), True))
    if save_depth:
        targets.append(Target(f"--save-depth {save_depth}", Path(save_depth).expanduser(), True))
    if picture:
        targets.append(Target(f"--output {picture}", Path(picture).expanduser(), False))
    src = _input_path(input_spec)
    for t in targets:
        blocker = _blocking_file(t.path)
        if blocker is not None:
            raise ConfigError(f"{t.label}: {blocker} is a file, not a folder; choose an output path in a folder")
        if t.path.exists() and not t.path.is_dir() and t.folder:
            raise ConfigError(f"{t.label}: {t.path} is a file, not a folder; choose a folder for the frames")
        if src is None:
            continue
        if src.is_dir():
            if inside(t.path, src):
                raise ConfigError(f"{t.label} is inside the input folder {input_spec}; the input would be "
                                  "overwritten or read back: write outside it")
        elif same_place(t.path, src):
            raise ConfigError(f"{t.label} is the input {input_spec} (the same file); "
                              "writing it would destroy the input: choose another output name")
    for i, a in enumerate(targets):
        for b in targets[i + 1:]:
            if same_place(a.path, b.path):
                raise ConfigError(f"{a.label} and {b.label} are the same {'folder' if a.folder else 'file'} "
                                  f"({_real(a.path)}); give each output its own path")
    return targets


# -- folders a sink creates, and what an unfinished job kept ------------------------------------

def make_folders(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders that did not exist before, deepest first."""
    missing = []
    p = Path(folder)
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    p = Path(folder)
    p.mkdir(parents=True, exist_ok=True)
    return missing


def remove_if_empty(created: Iterable[Path]) -> None:
    """Remove the folders a job created and left empty (deepest first); others stay."""
    for p in created:
        try:
            p.rmdir()
        except OSError:
            return  # not empty (or gone): its parents are not empty either


def kept_summary(sinks: Iterable[object]) -> str:
    """What an interrupted or failed job left on disk, e.g. ``41 complete frames kept in out/``."""
    kept, dropped = [], []
    for s in sinks:
        folder = getattr(s, "folder", None)
        path = getattr(s, "path", None)
        n = getattr(s, "written", 0)
        if folder is not None:
            if n:
                kept.append(f"{n} complete {'frame' if n == 1 else 'frames'} kept in {folder}/")
        elif path is not None:
            dropped.append(str(path))
    parts = kept + ([f"unfinished {', '.join(dropped)} discarded"] if dropped else [])
    return "; ".join(parts) if parts else "nothing was written"
