"""The one owner of a running session's live settings.

Everything that changes the look while the stream runs *submits* to a :class:`Session`: the
keys of the preview window (:class:`~realtime.app.controls.Controller`), the preset file being
edited (:class:`~realtime.app.reload.PresetWatcher`, which the session owns), automatic quality
scaling (:class:`~realtime.app.scaling.QualityGovernor`) and the browser control page. A submit
only records the change, from any thread; :meth:`Session.poll`, called by the streaming loop
between two frames on the loop's own thread (while no frame is being processed), is the one
place that changes the pipeline: the preset, the quality level on top of it, the focus override.
Listeners (:meth:`Session.subscribe`) are then told the new :class:`Settings`.

What the session holds:

- the user's preset (``user``): the look asked for by the preset file, keys and the page;
- the quality level: the governor's reductions, applied on top of the user's preset, so a
  reduced value never comes back as the base of a key press (``effective`` is what runs);
- session state that survives a preset change: the effect switched off, a clicked focus;
- the view the previews show (output or a debug view), and a short message for the user.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from realtime.app.reload import PresetWatcher
from realtime.app.scaling import LEVELS, QualityGovernor, level_preset
from realtime.core.config import Preset, builtin_presets, load_preset
from realtime.core.errors import ConfigError, PortraitCamError

log = logging.getLogger(__name__)

VIEWS = ("output", "matte", "disparity", "coc", "side-by-side")
CLICK_RADIUS = 0.015    # click-to-focus median window, as a fraction of the frame height


@dataclass(frozen=True)
class Settings:
    """What the session runs now (a snapshot; listeners get one after every change)."""

    user: Preset                  # the user's settings
    effective: Preset             # what the pipeline runs: the user's settings at the quality level
    preset: str                   # the preset in use: a built-in name or a file's stem
    presets: tuple[str, ...]      # the presets one can switch to (names or file stems)
    focus_override: float | None  # a clicked focus disparity, None = automatic
    view: str
    effect: bool
    level: int                    # quality level, 0 = full quality
    level_label: str
    message: str
    version: int                  # increases with every change


def spec_label(spec: str | Path) -> str:
    s = str(spec)
    return Path(s).stem if s.endswith(".toml") else s


def smoothstep(t: float) -> float:
    t = min(1.0, max(0.0, t))
    return t * t * (3.0 - 2.0 * t)


def focus_target(disparity: np.ndarray, fx: float, fy: float) -> float:
    """The focus disparity for a click at frame pixel (fx, fy): the median of a small window
    (one pixel is noisy at depth edges)."""
    fh, fw = disparity.shape
    ix, iy = int(min(max(fx, 0), fw - 1)), int(min(max(fy, 0), fh - 1))
    rad = max(2, int(round(CLICK_RADIUS * fh)))
    return float(np.median(disparity[max(0, iy - rad):iy + rad + 1, max(0, ix - rad):ix + rad + 1]))


def default_specs(current: Preset) -> list[str | Path]:
    """The preset running now, then the built-in presets."""
    names = builtin_presets()
    src = current.source
    if src.startswith("configs/") and src[8:-5] in names:
        first: str | Path = src[8:-5]
    elif src:
        first = Path(src)
    else:
        first = current.name if current.name in names else names[0]
    return [first, *(n for n in names if n != first)]


class Session:
    """Owner of the live settings of one running :class:`~realtime.pipeline.Pipeline`.

    ``presets`` are the specs one can switch to (names or .toml paths), the first being the one
    the pipeline runs now (default: that one and the built-in presets). ``adjust`` is applied to
    every preset loaded by switching or reloading (command-line overrides such as ``--focus``).
    ``live_reload`` watches the current preset's file. Build the session before the run starts,
    when the pipeline's preset is still the user's.

    ``apply`` replaces the default way of applying the user's preset (``pipeline.apply`` at the
    session's quality level); it exists for callers that keep their own governor.
    """

    def __init__(self, pipeline, presets: Sequence[str | Path] | None = None, *,
                 adjust: Callable[[Preset], Preset] | None = None, live_reload: bool = False,
                 reload_interval: float = 0.25, clock: Callable[[], float] = time.monotonic,
                 message_seconds: float = 2.5, focus_pull_s: float = 0.3,
                 apply: Callable[[Preset], object] | None = None) -> None:
        self.pipeline = pipeline
        self._lock = threading.RLock()
        self._apply_user = apply
        self._adjust = adjust or (lambda p: p)
        self._clock = clock
        self.message_seconds = float(message_seconds)
        self.focus_pull_s = float(focus_pull_s)
        self._base: Preset = pipeline.preset   # the user's settings as last applied
        self._target: Preset | None = None     # the user's settings to apply at the next poll
        self._level = 0
        self._level_target: int | None = None
        self._specs = list(presets) if presets else default_specs(pipeline.preset)
        self._index = 0
        self._watch_spec: tuple[str | Path, str | None] | None = None  # (spec, its digest when loaded)
        self._effect_off = not pipeline.preset.render.effect
        self._view = VIEWS[0]
        self._message = ""
        self._message_until = 0.0
        self._auto_focus = False
        self._pull: tuple[float, float, float] | None = None  # (from, to, start time)
        self._point: tuple[float, float] | None = None         # a focus point (0..1, 0..1) to resolve
        self._input: np.ndarray | None = None
        self._result = None
        self._listeners: list[Callable[[Settings], object]] = []
        self._dirty = False
        self._version = 0
        self._status: dict = {}
        self.watcher: PresetWatcher | None = None
        if live_reload:
            self.watcher = PresetWatcher(self._specs[0], self._reloaded, self._reload_failed, reload_interval,
                                         clock=clock)

    # -- reading -----------------------------------------------------------------------------
    @property
    def preset(self) -> Preset:
        """The user's preset: what the next :meth:`poll` applies, else the one last applied."""
        with self._lock:
            return self._target if self._target is not None else self._base

    @property
    def level(self) -> int:
        return self._level

    @property
    def view(self) -> str:
        return self._view

    @property
    def effect(self) -> bool:
        return not self._effect_off

    @property
    def message(self) -> str:
        """The current short message ('' once it has expired)."""
        return self._message if self._clock() < self._message_until else ""

    def settings(self) -> Settings:
        with self._lock:
            return Settings(user=self._base, effective=self.pipeline.preset,
                            preset=spec_label(self._specs[self._index]),
                            presets=tuple(spec_label(s) for s in self._specs),
                            focus_override=self._override(), view=self._view, effect=not self._effect_off,
                            level=self._level, level_label=LEVELS[self._level].label, message=self.message,
                            version=self._version)

    def _override(self) -> float | None:
        ov = self.pipeline.focus.override
        return float(ov) if isinstance(ov, (int, float)) else None

    def subscribe(self, listener: Callable[[Settings], object]) -> Callable[[], None]:
        """Call ``listener(settings)`` after every change (on the loop's thread: keep it short).
        Returns a function that unsubscribes."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return unsubscribe

    @property
    def status(self) -> dict:
        """The live status the loop publishes (fps, latency, stages, dropped, fail-closed)."""
        return self._status

    def publish_status(self, status: dict) -> None:
        self._status = status

    # -- submitting (any thread) ---------------------------------------------------------------
    def say(self, text: str, seconds: float | None = None) -> str:
        with self._lock:
            self._message = text
            self._message_until = self._clock() + (self.message_seconds if seconds is None else seconds)
            self._dirty = True
        return text

    def _submit(self, preset: Preset) -> None:
        """Have ``preset`` applied at the next poll, keeping session state (effect switched off)."""
        with self._lock:
            if self._effect_off and preset.render.effect:
                preset = preset.replace({"render": {"effect": False}})
            self._target = preset
            self._dirty = True

    def submit(self, preset: Preset) -> None:
        """The user's new settings (applied at the next frame boundary)."""
        self._submit(preset)

    def update(self, change: Callable[[Preset], Preset]) -> Preset:
        """Replace the user's preset by ``change(preset)`` atomically (two threads changing two
        knobs both keep their change); ConfigError from ``change`` propagates, nothing changes."""
        with self._lock:
            new = change(self.preset)
            self._submit(new)
            return self.preset

    def change(self, changes: dict[str, dict[str, object]]) -> Preset:
        """Change some keys of the user's preset (``{"render": {"aperture_px": 12}}``), validated
        as in a preset file (ConfigError names the allowed values)."""
        effect = changes.get("render", {}).get("effect")
        with self._lock:
            new = self.update(lambda p: p.replace(changes))
            if isinstance(effect, bool):
                self.set_effect(effect)
            return new

    def set_effect(self, on: bool) -> str:
        with self._lock:
            self._effect_off = not on
            self._submit(self.preset.replace({"render": {"effect": bool(on)}}))
        return "effect on" if on else "effect off"

    def toggle_effect(self) -> str:
        return self.set_effect(self._effect_off)

    def select_preset(self, spec: str | Path) -> str:
        """Switch to a preset (a name, or a path): applied as written, with the command line's
        overrides and the session state (effect off). Raises ConfigError if it does not load."""
        seen = PresetWatcher.digest(spec) if self.watcher is not None else None  # before loading: see poll
        preset = self._adjust(load_preset(spec))
        with self._lock:
            labels = [spec_label(s) for s in self._specs]
            if spec in self._specs:
                i = self._specs.index(spec)
            elif str(spec) in labels:
                i = labels.index(str(spec))
            else:
                self._specs.append(spec)
                i = len(self._specs) - 1
            self._submit(preset)
            self._index = i
            self._watch_spec = (self._specs[i], seen)
        return f"preset {preset.name}" + (" (effect off)" if self._effect_off else "")

    def preset_specs(self) -> list[str | Path]:
        """The presets one can switch to, as given (names or paths), in the order of ``presets``."""
        with self._lock:
            return list(self._specs)

    def add_preset(self, spec: str | Path) -> None:
        """Offer one more preset (e.g. one just saved); it is not switched to."""
        with self._lock:
            if spec not in self._specs:
                self._specs.append(spec)
                self._dirty = True

    def next_preset(self) -> str:
        with self._lock:
            if len(self._specs) < 2:
                return f"only one preset ({spec_label(self._specs[0])})"
            spec = self._specs[(self._index + 1) % len(self._specs)]
        try:
            return self.select_preset(spec)
        except PortraitCamError as e:
            log.warning("preset %s not switched to: %s", spec_label(spec), e)
            return f"preset {spec_label(spec)} not used: {e}"

    def set_view(self, view: str) -> str:
        if view not in VIEWS:
            raise ConfigError(f"view '{view}' is unknown; allowed: {', '.join(VIEWS)}")
        with self._lock:
            self._view = view
            self._dirty = True
        return f"view: {view}"

    def next_view(self) -> str:
        return self.set_view(VIEWS[(VIEWS.index(self._view) + 1) % len(VIEWS)])

    def set_level(self, level: int) -> None:
        """The quality governor's new level (applied at the next poll)."""
        if not 0 <= level < len(LEVELS):
            raise ValueError(f"quality level {level} is out of range 0..{len(LEVELS) - 1}")
        with self._lock:
            self._level_target = int(level)
            self._dirty = True

    def governor(self, target_fps: float, **options) -> QualityGovernor:
        """A quality governor that submits its level to this session."""
        return QualityGovernor(None, self._base, target_fps, on_level=self.set_level, **options)

    def pull_focus(self, target: float, start_hint: float) -> None:
        """Pull focus to disparity ``target`` over ``focus_pull_s``, from where focus is now
        (``start_hint``, the last frame's focus, when focus is automatic)."""
        with self._lock:
            current = self.pipeline.focus.override
            if self._pull is not None:  # again during a pull: continue from where it is
                a, b, t0 = self._pull
                current = a + (b - a) * self._progress(t0)
            auto = not isinstance(current, (int, float)) or self._auto_focus
            start = float(start_hint) if auto else float(current)
            self._auto_focus = False
            self._point = None
            self._pull = (start, float(target), self._clock())
            self._dirty = True

    def focus_at(self, x: float, y: float) -> None:
        """Focus on what is at (x, y), fractions of the frame's width and height (0..1); resolved
        on the next frame boundary from the last frame's disparity."""
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ConfigError(f"focus point {x:g},{y:g} is outside the frame; allowed 0..1 for x and y")
        with self._lock:
            self._point = (float(x), float(y))
            self._dirty = True

    def auto_focus(self) -> str:
        with self._lock:
            self._pull = None
            self._point = None
            self._auto_focus = True
            self._dirty = True
        return "focus: automatic"

    # -- live reload ---------------------------------------------------------------------------
    def _reloaded(self, preset: Preset) -> None:
        self._submit(self._adjust(preset))  # applied by poll() right after the watcher's look
        self.say(f"preset {preset.name} reloaded" + (" (effect off)" if self._effect_off else ""))

    def _reload_failed(self, message: str) -> None:
        log.warning("%s", message)
        self.say(message, max(self.message_seconds, 6.0))

    # -- the frame boundary (the loop's thread) ------------------------------------------------
    def _progress(self, t0: float) -> float:
        return smoothstep((self._clock() - t0) / self.focus_pull_s) if self.focus_pull_s > 0 else 1.0

    def observe(self, input_frame: np.ndarray | None, result) -> None:
        """After each ``pipeline.process``: the last result (a focus point is resolved on it)."""
        self._input = input_frame
        self._result = result

    def poll(self) -> None:
        """Between two frames, with the pipeline idle: apply what was submitted, advance the
        focus pull, tell the listeners."""
        with self._lock:
            watch, self._watch_spec = self._watch_spec, None
        if watch is not None and self.watcher is not None:
            # the baseline is the file as it was when the preset was loaded: an edit made since
            # then (between the switch and this frame) is applied by the look just below
            self.watcher.watch(watch[0], baseline=watch[1])
        if self.watcher is not None:
            self.watcher.poll()
        with self._lock:
            target = self._target  # stays the visible user preset until applied (see _apply)
            level, self._level_target = self._level_target, None
            point, self._point = self._point, None
            auto, self._auto_focus = self._auto_focus, False
            dirty, self._dirty = self._dirty, False
        if target is not None or (level is not None and level != self._level):
            self._apply(target, level)
        if point is not None and self._result is None:  # no good frame yet (or failing): wait for one
            with self._lock:
                if self._point is None:
                    self._point = point
            point = None
        if point is not None:
            disp = self._result.disparity
            fh, fw = disp.shape
            self.pull_focus(focus_target(disp, point[0] * (fw - 1), point[1] * (fh - 1)), self._result.focus)
            dirty = True
        if auto:
            self.pipeline.focus.override = None
        with self._lock:
            pull = self._pull
        if pull is not None:
            a, b, t0 = pull
            k = self._progress(t0)
            self.pipeline.focus.override = a + (b - a) * k
            if k >= 1.0:
                with self._lock:
                    if self._pull is pull:
                        self._pull = None
                dirty = True
        if dirty:
            self._notify()

    def _apply(self, target: Preset | None, level: int | None) -> None:
        """Apply the user's ``target`` (None: unchanged) at ``level`` (None: unchanged). Until
        it is applied, ``preset`` still answers ``target``, so a change submitted meanwhile
        builds on it; a newer target submitted meanwhile stays for the next poll."""
        user = target if target is not None else self._base
        new_level = self._level if level is None else level
        try:
            if self._apply_user is not None:
                self._apply_user(user)
            else:
                self.pipeline.apply(level_preset(user, new_level))
        except PortraitCamError as e:  # e.g. a model the preset names cannot be loaded
            log.warning("preset %s not applied: %s", user.name, e)
            self.say(f"preset {user.name} not applied: {e}", max(self.message_seconds, 6.0))
            with self._lock:
                if target is not None and self._target is target:
                    self._target = None  # refused: the user's settings stay the ones running
            return
        with self._lock:
            self._base = user
            self._level = new_level
            if target is not None and self._target is target:
                self._target = None

    def _notify(self) -> None:
        with self._lock:
            self._version += 1
            listeners = list(self._listeners)
        if not listeners:
            return
        snapshot = self.settings()
        for fn in listeners:
            try:
                fn(snapshot)
            except Exception:  # a broken listener must not stop the video
                log.exception("settings listener failed")

    def close(self) -> None:
        """Stop live reload (idempotent). The pipeline is the caller's to close."""
        if self.watcher is not None:
            self.watcher.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
