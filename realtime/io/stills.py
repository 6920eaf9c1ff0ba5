"""How a folder of images is read: frames of one video, or separate stills.

The rule (also in the README): the images are *frames of one video* when their names share one
prefix and carry consecutive numbers (``00000.jpg 00001.jpg``, ``frame_0007.png
frame_0008.png``); temporal filters then run across them. Any other folder (``beach.jpg
IMG_4410.JPG``, numbers with gaps) holds *stills*: each is processed on its own, at its own
size, with temporal state reset before it. ``--stills`` forces the second reading.
"""

from __future__ import annotations

import re
from pathlib import Path


from realtime.core.errors import ConfigError

_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def numbered_sequence(paths: list[Path]) -> bool:
    """True when the names read as frames of one video: one common prefix and consecutive
    numbers (``00000.jpg 00001.jpg``, ``frame_0007.png frame_0008.png``)."""
    parts = [_NUMBERED.match(p.stem) for p in paths]
    if len(paths) < 2 or not all(parts):
        return False
    if len({m.group(1) for m in parts}) != 1:  # type: ignore[union-attr]
        return False
    numbers = [int(m.group(2)) for m in parts]  # type: ignore[union-attr]
    return all(b - a == 1 for a, b in zip(numbers, numbers[1:]))


def image_size(path: Path) -> tuple[int, int] | None:
    """(w, h) of an image file as shown (EXIF orientation applied), from its header where it can."""
    from realtime.io.imagefile import image_size as shown_size

    return shown_size(path)


def require_one_size(source, sinks) -> None:
    """Refuse (ConfigError) a folder of differently sized images going to an output that has one
    size (a video file, the virtual camera), before anything is written."""
    fixed = [s for s in sinks if getattr(s, "one_size", False)]
    first_other = getattr(source, "first_other_size", None)
    if not fixed or first_other is None:
        return
    other = first_other()
    if other is not None:
        path, (w, h) = other
        raise ConfigError(f"the images differ in size ({source.width}x{source.height} first, {path.name} is "
                          f"{w}x{h}) but {fixed[0].describe()} has one size: pass --size WxH (each image is "
                          "scaled and cropped to it, --fit pad for bars) or write PNG frames to a folder")


def require_one_picture(source, sinks, max_frames: int | None) -> None:
    """Refuse (ConfigError) a picture output (``--output photo.jpg``) for a job that gives more
    than one frame, before anything is written: a live source, a video or a folder, unless
    ``--frames 1`` takes its first frame."""
    pictures = [s for s in sinks if getattr(s, "one_picture", False)]
    if not pictures or max_frames == 1:
        return
    what = pictures[0].describe()
    if source.live:
        raise ConfigError(f"{what}: one picture, but the input is live ({source.describe()}); write a video "
                          "(FILE.mp4) or frames (DIR/), or pass --frames 1 for one picture")
    if source.total != 1:
        count = f"{source.total} frames" if source.total else "more than one frame"
        raise ConfigError(f"{what}: one picture, but the input has {count}; write a video (FILE.mp4) or "
                          "frames (DIR/), or pass --frames 1 for the first")
