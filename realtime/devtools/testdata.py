"""Where the real models and the real test footage live, and small readers for them.

Used by the tests, the evaluation tools and the benchmark (never by the running product):
``../shared`` beside the repository (or beside the working directory), overridden by ``REALTIME_MODEL_DIR``
and ``REALTIME_DATA_DIR``.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    for cand in (ROOT.parent / "shared", Path.cwd().parent / "shared"):
        if (cand / "models").is_dir() or (cand / "data").is_dir():
            return cand
    return ROOT.parent / "shared"


def data_dir() -> Path:
    env = os.environ.get("REALTIME_DATA_DIR")
    return Path(env) if env else shared_dir() / "data"


def use_shared_models() -> Path:
    """Point the model store at the shared models unless ``REALTIME_MODEL_DIR`` names a folder."""
    shared = shared_dir() / "models"
    if shared.is_dir():
        os.environ.setdefault("REALTIME_MODEL_DIR", str(shared))
    return Path(os.environ.get("REALTIME_MODEL_DIR", shared))


def people_sequence(name: str | Path, limit: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames (BGR uint8) and ground-truth masks (float32 0/1) of ``people/<name>`` (or of a
    folder holding ``frames/*.jpg`` and ``masks/*.png``)."""
    folder = Path(name) if isinstance(name, Path) or os.sep in str(name) else data_dir() / "people" / name
    frames = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in sorted((folder / "frames").glob("*.jpg"))[:limit]]
    masks = [(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 127).astype(np.float32)
             for p in sorted((folder / "masks").glob("*.png"))[:limit]]
    n = min(len(frames), len(masks))
    return frames[:n], masks[:n]


def read_video(path: str | Path, count: int | None = None) -> list[np.ndarray]:
    """Up to ``count`` decoded frames of a video, in order."""
    cap = cv2.VideoCapture(str(path))
    out: list[np.ndarray] = []
    try:
        while count is None or len(out) < count:
            ok, f = cap.read()
            if not ok:
                break
            out.append(f)
    finally:
        cap.release()
    return out


def video_frame(path: str | Path, index: int = 0, size: tuple[int, int] | None = None) -> np.ndarray:
    """Frame ``index`` of a video, optionally resized to ``size`` (w, h), C-contiguous."""
    frames = read_video(path, index + 1)
    if len(frames) <= index:
        raise RuntimeError(f"cannot read frame {index} of {path}")
    frame = frames[index]
    if size is not None:
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(frame)


def noisy(base: np.ndarray, sigma: float, index: int, seed: int = 0) -> np.ndarray:
    """``base`` plus Gaussian camera noise of ``sigma`` levels, seeded by (seed, index), rounded and clipped."""
    rng = np.random.default_rng([seed, index])
    noise = rng.standard_normal(base.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(np.rint(base + noise), 0, 255).astype(np.uint8)
