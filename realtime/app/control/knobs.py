"""The knobs the control page offers, checked with the same ranges as preset files, and
"save as preset" (the user's settings written as a TOML file that ``--preset FILE`` loads)."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realtime.core import config
from realtime.core.config import Preset, load_preset
from realtime.core.errors import ConfigError, SinkError
from realtime.core.file_mode import give_file_mode


@dataclass(frozen=True)
class Knob:
    key: str     # "section.name" as in a preset file
    label: str


# The knobs people reach for; everything else stays in the preset file.
KNOBS: tuple[Knob, ...] = (
    Knob("render.effect", "effect"),
    Knob("render.aperture_px", "aperture"),
    Knob("render.max_coc_px", "largest blur"),
    Knob("render.blades", "bokeh shape"),
    Knob("render.highlight_boost", "highlight boost"),
    Knob("focus.mode", "focus mode"),
    Knob("temporal.matte_smoothing", "matte smoothing"),
)
BLADES = (0, *range(5, 17))  # 0 = round; 1..4 blades are refused by the preset checks too
SAVE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _field(key: str) -> tuple[type, dataclasses.Field]:
    section, name = key.split(".")
    cls = type(getattr(Preset(), section))
    return cls, {f.name: f for f in dataclasses.fields(cls)}[name]


def schema() -> list[dict[str, Any]]:
    """What the page needs to draw each knob: kind, range or choices, from the preset checks."""
    out = []
    for k in KNOBS:
        cls, f = _field(k.key)
        typ = config._field_type(cls, f.name)
        item: dict[str, Any] = {"key": k.key, "label": k.label, "doc": f.metadata.get("doc", "")}
        if typ is bool:
            item["kind"] = "bool"
        elif isinstance(typ, type) and issubclass(typ, enum.Enum):
            item.update(kind="choice", choices=[m.value for m in typ])
        elif k.key == "render.blades":
            item.update(kind="choice", choices=list(BLADES))
        else:
            lo, hi = f.metadata["range"]
            item.update(kind="range", min=lo, max=hi, integer=typ is int)
        out.append(item)
    return out


def values(preset: Preset) -> dict[str, Any]:
    """The knobs' current values in ``preset`` (JSON-ready)."""
    out = {}
    for k in KNOBS:
        section, name = k.key.split(".")
        v = getattr(getattr(preset, section), name)
        out[k.key] = v.value if isinstance(v, enum.Enum) else v
    return out


def check(body: Any) -> dict[str, dict[str, Any]]:
    """A request's ``{"section.name": value}`` as preset changes, or ConfigError naming the
    allowed knobs, types and ranges (the same ranges as a preset file)."""
    if not isinstance(body, dict) or not body:
        raise ConfigError('send a JSON object of knob values, e.g. {"render.aperture_px": 40}')
    known = {k.key for k in KNOBS}
    changes: dict[str, dict[str, Any]] = {}
    for key, value in body.items():
        if key not in known:
            raise ConfigError(f"unknown knob '{key}'; allowed: {', '.join(sorted(known))}")
        cls, f = _field(key)
        typ = config._field_type(cls, f.name)
        if typ in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{key} must be a number, got {json.dumps(value)}")
            lo, hi = f.metadata["range"]
            if not lo <= value <= hi:
                raise ConfigError(f"{key} = {value:g} is out of range; allowed {lo:g}..{hi:g}")
            if typ is int:
                if value != int(value):
                    raise ConfigError(f"{key} must be a whole number, got {value:g}")
                value = int(value)
            if key == "render.blades" and value not in BLADES:
                raise ConfigError(f"{key} = {value} is not allowed; use 0 (round) or 5..16")
        elif typ is bool and not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {json.dumps(value)}")
        elif isinstance(typ, type) and issubclass(typ, enum.Enum) and value not in [m.value for m in typ]:
            raise ConfigError(f"{key} = {json.dumps(value)} is not allowed; choose one of: "
                              f"{', '.join(m.value for m in typ)}")
        section, name = key.split(".")
        changes.setdefault(section, {})[name] = value
    return changes


# -- save as preset ------------------------------------------------------------------------------

def _toml_value(v: Any) -> str:
    if isinstance(v, enum.Enum):
        v = v.value
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def preset_toml(preset: Preset, name: str) -> str:
    """``preset`` as a complete TOML preset file (every key written: it does not depend on
    the defaults of the version that reads it)."""
    lines = ["# Saved from the portrait-cam control page; load it with: python run.py --preset THIS_FILE",
             f"name = {_toml_value(name)}", f"description = {_toml_value(preset.description)}"]
    for section in ("capture", "segmentation", "depth", "focus", "temporal", "render", "safety"):
        lines.append(f"\n[{section}]")
        part = getattr(preset, section)
        for f in dataclasses.fields(part):
            lines.append(f"{f.name} = {_toml_value(getattr(part, f.name))}")
    return "\n".join(lines) + "\n"


def save_preset(preset: Preset, folder: Path, name: str, *, overwrite: bool = False) -> Path:
    """Write ``preset`` as ``folder/NAME.toml`` through an exclusive temporary file in the same
    folder, checked by loading it back, then renamed into place. Without ``overwrite`` an
    existing file is never replaced (FileExistsError)."""
    if not isinstance(name, str) or not SAVE_NAME.fullmatch(name) or name.endswith(".toml"):
        raise ConfigError("a preset name is 1..64 letters, digits, '-', '_' or '.', starting with a letter "
                          "or digit (without .toml)")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.toml"
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; save under another name or choose to overwrite")
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".toml.part", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(preset_toml(preset, name))
            fh.flush()
            give_file_mode(fh.fileno())
            os.fsync(fh.fileno())
        back = load_preset(tmp)  # what was written loads, and gives these settings
        if dataclasses.replace(back, name=preset.name, description=preset.description) != preset:
            raise SinkError(f"the preset written to {tmp} does not read back as the current settings")
        if overwrite:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)  # fails if the name was taken meanwhile: never clobbers
            os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target
