"""Writing files so that only what the user named is written, and only when it is complete.

Every file the project writes goes through here: an exclusive temporary with an unpredictable
name in the target folder (``tempfile.mkstemp``: ``O_CREAT | O_EXCL | O_NOFOLLOW``, mode 0600),
every write checked, the mode a new file gets from the umask set, the descriptor closed and
checked, then ``os.replace`` over the final name.
A symlink planted in the folder is never followed (a planted final name is replaced, not written
through), and a failed or interrupted write leaves nothing behind.

Video encoders open their file by path, so they write into a private folder (``mkdtemp``, mode
0700) made inside the target folder; the finished file is checked and renamed out of it.

OpenCV's own path handling crashes on names that are not valid UTF-8; images are therefore
encoded in memory and written with Python's I/O, and encoders/decoders that need a path get a
``/proc/self/fd`` path made of ASCII only (:func:`cv2_path`).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from realtime.core.errors import SinkError
from realtime.core.file_mode import give_file_mode

TEMP_PREFIX = ".portrait-cam-"


def _reason(e: OSError) -> str:
    return e.strerror or str(e) or type(e).__name__


def write_bytes(path: str | Path, data) -> None:
    """Write ``data`` to ``path`` through an exclusive temporary renamed over it when complete.

    Raises :class:`SinkError` naming the file when any write, the close or the rename fails
    (disk full, file size limit, no permission); nothing is left under either name then.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=path.parent)
    except OSError as e:
        raise SinkError(f"cannot write {path} ({_reason(e)}); check the folder exists and is writable") from e
    try:
        try:
            view = memoryview(data).cast("B")
            while view:
                n = os.write(fd, view)
                view = view[n:]
            give_file_mode(fd)
        finally:
            os.close(fd)  # a close error (delayed ENOSPC on network filesystems) is a failed write
        os.replace(tmp, path)
    except OSError as e:
        _unlink_quietly(tmp)
        raise SinkError(f"cannot write {path} ({_reason(e)}); nothing was saved under that name") from e
    except BaseException:
        _unlink_quietly(tmp)
        raise


def encode_image(img: np.ndarray, ext: str, what: str | Path) -> np.ndarray:
    ok, buf = cv2.imencode(ext, img)
    if not ok:
        raise SinkError(f"cannot encode {what} as {ext}")
    return buf


def write_image(path: str | Path, img: np.ndarray) -> None:
    """Encode ``img`` by the file's extension and write it with :func:`write_bytes`."""
    path = Path(path)
    write_bytes(path, encode_image(img, path.suffix.lower() or ".png", path))


def _unlink_quietly(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:  # a read-only folder: the temporary could not have been made either
        pass


def is_clean_name(path: str | Path) -> bool:
    """True when ``path`` is valid UTF-8 (what OpenCV's path functions can take safely)."""
    try:
        os.fspath(path).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def cv2_path(path: str | Path, fd: int | None = None) -> str:
    """A path OpenCV can open: ``path`` itself when it is clean UTF-8, else ``/proc/self/fd/N``
    for an open descriptor ``fd`` of it (or of its folder when ``path`` names a file in it)."""
    if is_clean_name(path):
        return os.fspath(path)
    if fd is None or not sys.platform.startswith("linux"):
        raise SinkError(f"the name {os.fspath(path)!r} is not valid UTF-8, which OpenCV cannot open on this "
                        "platform; rename it")
    return f"/proc/self/fd/{fd}"


class PrivateFolder:
    """A fresh folder (mode 0700, unpredictable name) inside ``parent`` for an encoder's output."""

    def __init__(self, parent: str | Path) -> None:
        self.parent = Path(parent)
        try:
            self.path = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.parent))
        except OSError as e:
            raise SinkError(f"cannot write in {self.parent} ({_reason(e)}); choose a writable folder") from e
        self._fd: int | None = None

    def cv2_path(self, name: str) -> str:
        """``name`` inside the folder, as a path OpenCV can open whatever the parent is called."""
        if is_clean_name(self.path):
            return str(self.path / name)
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        return f"{cv2_path(self.path, self._fd)}/{name}"

    def publish(self, name: str, final: str | Path) -> None:
        """Rename ``name`` out of the folder over ``final`` (never following a planted symlink)."""
        try:
            os.replace(self.path / name, final)
        except OSError as e:
            raise SinkError(f"cannot write {final} ({_reason(e)}); nothing was saved under that name") from e

    def remove(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        shutil.rmtree(self.path, ignore_errors=True)


def folder_entries(folder: str | Path) -> list[str]:
    """Names in an existing folder (empty when it does not exist yet)."""
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise SinkError(f"output folder {folder} is a file; name a folder") from None
