"""Automatic quality scaling for live sources.

When the loop falls behind the target frame rate, step down one level at a time (run the depth
model on every 2nd, then 3rd frame, then also shrink the largest blur radius); when there is
headroom again, step back up. Decisions use the median processing time over a short window,
with a cool-down after each change and a wider margin for stepping up than for stepping down,
so the level does not oscillate. The user's own preset stays the base (``rebase`` after a
reload or a live control change); levels only override a few keys on top of it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from realtime.core.config import Preset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Level:
    label: str
    changes: Callable[[Preset], dict[str, dict[str, Any]]]


LEVELS = (
    Level("full quality", lambda p: {}),
    Level("depth every 2nd frame", lambda p: {"depth": {"every_n_frames": max(2, p.depth.every_n_frames)}}),
    Level("depth every 3rd frame", lambda p: {"depth": {"every_n_frames": max(3, p.depth.every_n_frames)}}),
    Level("depth every 3rd frame, blur radius -25%",
          lambda p: {"depth": {"every_n_frames": max(3, p.depth.every_n_frames)},
                     "render": {"max_coc_px": p.render.max_coc_px * 0.75}}),
    Level("depth every 4th frame, blur radius -50%",
          lambda p: {"depth": {"every_n_frames": max(4, p.depth.every_n_frames)},
                     "render": {"max_coc_px": p.render.max_coc_px * 0.5}}),
)


def level_preset(base: Preset, level: int) -> Preset:
    """The user's preset ``base`` at quality ``level`` (0 = as it is)."""
    return base.replace(LEVELS[level].changes(base)) if level else base


class QualityGovernor:
    """Watches per-frame processing time against the frame budget and picks a level.

    With ``on_level`` (a :class:`~realtime.app.session.Session` owns the settings) the governor
    only decides: each new level is handed to ``on_level``, which applies it on top of the
    user's settings. Without it, ``apply`` gets the preset for the level computed from ``base``.
    """

    def __init__(self, apply: Callable[[Preset], Any] | None, base: Preset, target_fps: float, *,
                 window: int = 20, down_margin: float = 0.95, up_margin: float = 0.65,
                 cooldown_s: float = 1.0, up_after_s: float = 3.0,
                 on_level: Callable[[int], Any] | None = None) -> None:
        if (apply is None) == (on_level is None):
            raise ValueError("give the governor either apply or on_level")
        self._apply = apply
        self._on_level = on_level
        self.base = base
        self.budget_ms = 1000.0 / target_fps
        self.level = 0
        self.window: deque[float] = deque(maxlen=window)
        self.down_margin, self.up_margin = down_margin, up_margin
        self.cooldown_s, self.up_after_s = cooldown_s, up_after_s
        self._changed_at = -1e9
        self._headroom_since: float | None = None

    @property
    def label(self) -> str:
        return LEVELS[self.level].label

    def status(self) -> str:
        return "" if self.level == 0 else f"quality -{self.level}: {self.label}"

    def preset_for(self, level: int) -> Preset:
        return level_preset(self.base, level)

    def rebase(self, preset: Preset) -> None:
        """The user changed settings: keep the current level on top of the new base."""
        self.base = preset
        if self._apply is not None:
            self._apply(self.preset_for(self.level))

    def _set(self, level: int, now: float, why: str) -> str:
        old = self.level
        self.level = level
        if self._on_level is not None:
            self._on_level(level)
        else:
            self._apply(self.preset_for(level))
        self._changed_at = now
        self._headroom_since = None
        self.window.clear()
        msg = f"quality {'down' if level > old else 'up'} to level {level} ({self.label}): {why}"
        log.warning(msg)
        return msg

    def observe(self, frame_ms: float, now: float | None = None) -> str | None:
        """Record one frame's processing time; returns a message when the level changed."""
        now = time.monotonic() if now is None else now
        self.window.append(frame_ms)
        if len(self.window) < self.window.maxlen or now - self._changed_at < self.cooldown_s:
            return None
        med = float(np.median(self.window))
        if med > self.budget_ms * self.down_margin:
            self._headroom_since = None
            if self.level + 1 < len(LEVELS):
                return self._set(self.level + 1, now, f"median {med:.0f} ms > budget {self.budget_ms:.0f} ms")
            return None
        if self.level > 0 and med < self.budget_ms * self.up_margin:
            if self._headroom_since is None:
                self._headroom_since = now
            elif now - self._headroom_since >= self.up_after_s:
                return self._set(self.level - 1, now, f"median {med:.0f} ms leaves headroom")
        else:
            self._headroom_since = None
        return None
