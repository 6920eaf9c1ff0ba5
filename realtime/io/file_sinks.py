"""File outputs: PNG frames in a folder, one picture, a video file (see :mod:`realtime.io.sinks`
for the ``--output`` specs). Every file is written through :mod:`realtime.io.safefiles`:
complete and checked, or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from realtime.core.errors import SinkError
from realtime.io import safefiles
from realtime.io.paths import make_folders, remove_if_empty
from realtime.io.sink_base import OutputFrame, Sink

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv")
ALPHA_EXTENSIONS = (".png", ".webp", ".tif", ".tiff")  # picture formats OpenCV writes with an alpha channel


def _matte_u8(matte: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    if matte is None:
        return np.zeros(shape, np.uint8)
    # round, not truncate: 0.5/255 steps map to the nearest level
    return cv2.convertScaleAbs(matte, alpha=255.0, beta=0.5) if matte.dtype == np.float32 else matte


def _plane_image(out: OutputFrame, plane: str) -> np.ndarray:
    """What a picture output writes of ``out``: the rendered frame (``frame``), the frame with
    the matte as alpha (``rgba``), the matte as grey (``matte``) or the disparity (``depth``)."""
    shape = out.frame.shape[:2]
    if plane == "frame":
        return out.frame
    if plane == "rgba":
        img = cv2.cvtColor(out.frame, cv2.COLOR_BGR2BGRA)
        img[..., 3] = _matte_u8(out.matte, shape)
        return img
    if plane == "matte":
        return _matte_u8(out.matte, shape)
    if plane == "depth":
        return _matte_u8(out.disparity, shape)
    raise ValueError(plane)  # pragma: no cover - constructor callers pass known planes


def _file_folder(path: Path, what: str) -> list[Path]:
    """The folder a one-file output goes into, made if missing (the folders made, for
    :func:`remove_if_empty`); :class:`SinkError` when ``path`` names a folder or it cannot be made."""
    if path.is_dir():
        raise SinkError(f"{what} {path} is a folder; name a file, or end a PNG folder with /")
    try:
        return make_folders(path.parent)
    except OSError as e:
        raise SinkError(f"cannot create folder for {path} ({e.strerror or e})") from e


class PngFolderSink(Sink):
    """One PNG per frame, named after the input frame (``00000.png`` ... for videos/cameras).

    ``plane`` chooses what is written: the rendered frame (``frame``), the frame with the matte
    as alpha (``rgba``), the matte as grey (``matte``) or the disparity as grey (``depth``).
    """

    kind = "png"

    def __init__(self, folder: str | Path, plane: str = "frame", overwrite: bool = False) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.plane = plane
        self.overwrite = overwrite
        self.wants_matte = plane in ("rgba", "matte", "depth")
        self._created: list[Path] = []

    def open(self, width: int, height: int, fps: float) -> None:
        held = safefiles.folder_entries(self.folder)
        if held and not self.overwrite:
            raise SinkError(f"output folder {self.folder} already holds {len(held)} file(s) (e.g. {held[0]}); "
                            "name a new or empty folder, or pass --overwrite to replace files of the same name")
        try:
            self._created = make_folders(self.folder)
        except OSError as e:
            raise SinkError(f"cannot create output folder {self.folder} ({e.strerror or e})") from e
        if not os.access(self.folder, os.W_OK):
            raise SinkError(f"output folder {self.folder} is not writable; choose another folder")

    def write(self, out: OutputFrame) -> None:
        safefiles.write_image(self.folder / f"{out.name}.png", _plane_image(out, self.plane))
        self.written += 1

    def _release(self) -> None:
        remove_if_empty(self._created)  # a job that wrote nothing leaves no folder behind

    def describe(self) -> str:
        what = {"frame": "PNG frames", "rgba": "RGBA PNG frames (alpha = matte)", "matte": "matte PNGs",
                "depth": "disparity PNGs"}[self.plane]
        return f"{what} in {self.folder}/"


class PictureFileSink(Sink):
    """One picture file (``--output photo.jpg`` for an image input): the format by the
    extension, written when the job finishes (complete or not at all). A job that would give it
    more than one frame is refused before it starts (:func:`realtime.io.stills.require_one_picture`);
    a second frame all the same is an error, never a silent replacement."""

    kind = "picture"
    one_picture = True

    def __init__(self, path: str | Path, plane: str = "frame") -> None:
        super().__init__()
        self.path = Path(path)
        self.plane = plane
        self.wants_matte = plane in ("rgba", "matte")
        self._image: np.ndarray | None = None
        self._created: list[Path] = []

    def open(self, width: int, height: int, fps: float) -> None:
        self._created = _file_folder(self.path, "picture output")
        if not os.access(self.path.parent, os.W_OK):
            raise SinkError(f"cannot write {self.path}: the folder {self.path.parent} is not writable")

    def write(self, out: OutputFrame) -> None:
        if self._image is not None:
            raise SinkError(f"{self.describe()} holds one picture and the input gave a second frame; "
                            "write a video (FILE.mp4) or frames (DIR/), or pass --frames 1")
        self._image = _plane_image(out, self.plane).copy()  # frames are reused by the loop
        self.written += 1

    def finish(self) -> None:
        if self._image is not None:
            safefiles.write_image(self.path, self._image)
            self._image = None
            self._created = []

    def _release(self) -> None:
        self._image = None
        remove_if_empty(self._created)

    def describe(self) -> str:
        what = {"frame": "picture", "rgba": "RGBA picture (alpha = matte)", "matte": "matte picture"}[self.plane]
        return f"{what} {self.path}"


class VideoFileSink(Sink):
    """An mp4 (MPEG-4 Part 2, which every OpenCV build can write) of the rendered frames or the matte.

    The encoder writes into a private folder beside the target; :meth:`finish` checks that the
    file opens and holds every frame written before renaming it to its final name, so a full
    disk or a failed encoder close is a failed output, never a truncated file that looks done.
    """

    kind = "video"
    one_size = True  # every frame the size it was opened with
    _NAME = "video"

    def __init__(self, path: str | Path, plane: str = "frame", fps: float | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.plane = plane
        self.wants_matte = plane == "matte"
        self._fps = fps
        self._writer: cv2.VideoWriter | None = None
        self._folder: safefiles.PrivateFolder | None = None
        self._created: list[Path] = []

    @property
    def _tmp_name(self) -> str:
        return self._NAME + self.path.suffix.lower()

    def open(self, width: int, height: int, fps: float) -> None:
        if width % 2 or height % 2:  # the codec works on 2x2 blocks: it would drop a row or column
            raise SinkError(f"video file {self.path} needs an even width and height, got {width}x{height}; "
                            f"pass --size {width - width % 2}x{height - height % 2} (or write PNG frames to a folder)")
        self._created = _file_folder(self.path, "video output")
        self._folder = safefiles.PrivateFolder(self.path.parent)
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
        self._writer = cv2.VideoWriter(self._folder.cv2_path(self._tmp_name), fourcc, float(self._fps or fps),
                                       (width, height), self.plane != "matte")
        if not self._writer.isOpened():
            self._writer = None
            self._folder.remove()
            self._folder = None
            raise SinkError(f"cannot write video {self.path}; check the folder is writable and the extension "
                            f"is one of {', '.join(VIDEO_EXTENSIONS)}")
        self._size = (width, height)

    def write(self, out: OutputFrame) -> None:
        if self._writer is None:
            raise SinkError(f"video {self.path} is not open")
        img = out.frame if self.plane == "frame" else _matte_u8(out.matte, out.frame.shape[:2])
        self._writer.write(img)
        self.written += 1

    def finish(self) -> None:
        """Close the encoder, check the file, rename it; :class:`SinkError` when it is incomplete."""
        if self._writer is None or self._folder is None:
            return
        self._writer.release()
        self._writer = None
        if not self.written:
            return
        self._check_readable()
        self._folder.publish(self._tmp_name, self.path)

    def _check_readable(self) -> None:
        tmp = self._folder.cv2_path(self._tmp_name)
        cap = cv2.VideoCapture(tmp)
        try:
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
            ok = cap.isOpened() and cap.read()[0]
        finally:
            cap.release()
        if not ok or count != self.written:
            got = f"{count} of {self.written} frames readable" if ok else "the file cannot be read back"
            raise SinkError(f"video {self.path} is incomplete ({got}: disk full or file size limit?); "
                            "nothing was saved under that name")

    def _release(self) -> None:
        if self._writer is not None:  # not finished: the stream broke, discard the partial file
            self._writer.release()
            self._writer = None
        if self._folder is not None:
            self._folder.remove()
            self._folder = None
        remove_if_empty(self._created)

    def describe(self) -> str:
        return f"{'matte video' if self.plane == 'matte' else 'video'} {self.path}"
