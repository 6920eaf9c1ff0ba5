"""``KEY=VALUE`` preset changes given on the evaluation tools' command lines."""

from __future__ import annotations


def parse_settings(items: list[str], section: str) -> dict[str, dict[str, object]]:
    """``KEY=VALUE`` items as preset changes (``Preset.replace``'s argument): knobs of
    ``section`` by their name, others as ``SECTION.KEY`` (e.g. ``depth.fade_behind=false``).
    Numbers become int or float, ``true`` / ``false`` booleans; the rest stays text (enums)."""
    out: dict[str, dict[str, object]] = {}
    for item in items:
        key, _, value = item.partition("=")
        where, _, key = key.rpartition(".")
        knobs = out.setdefault(where or section, {})
        for cast in (int, float):
            try:
                knobs[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            knobs[key] = {"true": True, "false": False}.get(value.lower(), value)
    return out
