"""The mode a finished file gets: what ``open()`` would give a new file under the process's
umask. Files are written through 0600 temporaries (nobody else sees a half-written file); the
finished outputs, saved presets and downloaded models are the user's ordinary files."""

from __future__ import annotations

import os


def _umask() -> int:
    try:  # Linux says it without changing it (os.umask can only read by setting: racy with threads)
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()


def give_file_mode(fd: int) -> None:
    """Set :data:`FILE_MODE` on an open temporary before it is renamed to its final name."""
    if hasattr(os, "fchmod"):
        os.fchmod(fd, FILE_MODE)
