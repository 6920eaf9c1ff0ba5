"""Writes docs/presets.md from the preset dataclasses (the one source of truth for knobs).

    python tools/gen_preset_docs.py          # rewrite docs/presets.md
    python tools/gen_preset_docs.py --check  # exit 1 if it is out of date (the tests run this)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realtime.core.config import builtin_presets, describe_knobs, load_preset  # noqa: E402

HEAD = """# Presets and their knobs

A preset is a TOML file. It lists only what differs from the defaults below, optionally on
top of another preset:

```toml
name = "my-look"
extends = "portrait"     # a built-in name or another .toml file (relative to this one)

[render]
aperture_px = 80.0       # more blur per unit of depth
max_coc_px = 30.0

[focus]
mode = "fixed"
disparity = 0.7
```

Use it with `python run.py --preset my-look.toml`. While the camera runs, saving the file
applies it within a second; a broken edit is reported and the last good settings stay (see
[controls.md](controls.md)). Unknown keys, wrong types and out-of-range values are errors that
name the key and what is allowed.

Lengths in pixels are given for a 720-pixel-high frame and scale with the frame height.

## Built-in presets

{presets}

## All knobs

(Generated from `realtime/core/config.py` by `python tools/gen_preset_docs.py`; a test keeps it current.)

| key | default | allowed | what it does |
| --- | --- | --- | --- |
{rows}
"""


def render() -> str:
    presets = "\n".join(f"- `{n}`: {load_preset(n).description}" for n in builtin_presets())
    rows = "\n".join(f"| `{k}` | `{d}` | {a.replace(' | ', ', ')} | {doc} |" for k, d, a, doc in describe_knobs())
    return HEAD.format(presets=presets, rows=rows)


def main(argv: list[str]) -> int:
    path = ROOT / "docs" / "presets.md"
    text = render()
    if "--check" in argv:
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            print(f"{path} is out of date: run python tools/gen_preset_docs.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
