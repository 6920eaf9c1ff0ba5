"""Command-line overrides of a preset shared by the single job and ``run.py batch``."""

from __future__ import annotations

from realtime.core.errors import ConfigError


def apply_focus(preset, spec: str | None, size: tuple[int, int] | None = None):
    """The preset with a ``--focus`` override applied (raises ConfigError with the accepted forms)."""
    if not spec:
        return preset
    s = spec.strip().lower()
    if s in ("face", "person"):
        return preset.replace({"focus": {"mode": s}})
    if "," in s:
        try:
            x, y = (float(v) for v in s.split(","))
        except ValueError:
            raise ConfigError(f"--focus {spec}: a pixel is given as X,Y, e.g. 640,360") from None
        if size is None:
            raise ConfigError("--focus X,Y needs the frame size")
        w, h = size
        if not (0 <= x < w and 0 <= y < h):
            raise ConfigError(f"--focus {spec} is outside the {w}x{h} frame")
        return preset.replace({"focus": {"mode": "point", "point_x": x / max(1, w - 1), "point_y": y / max(1, h - 1)}})
    try:
        d = float(s)
    except ValueError:
        raise ConfigError(f"--focus {spec} is not understood; use face, person, a disparity 0..1 or X,Y") from None
    return preset.replace({"focus": {"mode": "fixed", "disparity": d}})
