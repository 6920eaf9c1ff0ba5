"""Live controls for the preview window, with no window dependency.

A :class:`Controller` turns keys and clicks into preset changes (through ``Preset.replace``,
so every value is validated, then ``Pipeline.apply``), picks what the preview shows (output or
a debug view) and draws the help overlay and short messages. A window is only needed to feed
it keys and clicks: :meth:`Controller.bind` wires a :class:`~realtime.io.sinks.PreviewSink`.

Per frame the loop calls :meth:`Controller.poll` before ``pipeline.process``, while the
pipeline is idle: keys, clicks and live reload only *record* changes, and ``poll`` is the one
place that applies them to the pipeline (presets, the focus override). Keys and clicks arrive
inside the preview sink's ``write``, when the pipeline may still be running a stalled frame in
the watchdog's thread, so applying them there could race it. :meth:`Controller.observe` after
``process`` gives the result the debug views and click-to-focus read (``bind`` does this from
the preview's ``OutputFrame.result`` by itself).

Choices:

- ``+``/``-`` and ``]``/``[`` step multiplicatively (x1.25), so one press is a similar visible
  change at any setting; from 0 the first step up is 1 px, a step down below 1 px gives 0.
  Values are clamped to the knob's allowed range.
- ``p`` (next preset) and a live reload give the preset *as written*: aperture and radius
  tweaks are dropped (a preset is a look; the file wins). What is kept is session state: the
  effect switched off with ``e``, and a clicked focus.
- A click focuses on the median disparity of a small window under the pointer (one pixel is
  noisy at depth edges) and pulls focus there over ``focus_pull_s`` like a lens would, instead
  of jumping. ``f`` goes back to automatic focus.
"""

from __future__ import annotations

import dataclasses
import logging
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from realtime.app import debugviews as dv
from realtime.core.config import Preset, RenderConfig, builtin_presets, load_preset
from realtime.core.errors import PortraitCamError
from realtime.app.reload import PresetWatcher

log = logging.getLogger(__name__)

VIEWS = ("output", "matte", "disparity", "coc", "side-by-side")
VIEW_LABELS = {"matte": "matte", "disparity": "disparity (red = near)", "coc": "CoC (orange near, blue far)",
               "side-by-side": "camera | output"}
STEP = 1.25             # multiplicative step of aperture and maximum radius
MIN_STEP_PX = 1.0       # first step up from 0; below this a step down gives 0
CLICK_RADIUS = 0.015    # click-to-focus median window, as a fraction of the frame height
MARKER_SECONDS = 1.0    # how long the focus marker stays after a click


@dataclass(frozen=True)
class Binding:
    keys: tuple[str, ...]  # characters as PreviewSink passes them to on_key
    action: str            # Controller method
    help: str


# The ONE table of key bindings: the help overlay and docs/controls.md are generated from it.
BINDINGS: tuple[Binding, ...] = (
    Binding(("+", "="), "aperture_up", "wider aperture: more blur"),
    Binding(("-", "_"), "aperture_down", "narrower aperture: less blur"),
    Binding(("]",), "radius_up", "larger maximum blur radius"),
    Binding(("[",), "radius_down", "smaller maximum blur radius"),
    Binding(("e",), "toggle_effect", "effect on/off"),
    Binding(("p",), "next_preset", "next preset"),
    Binding(("v",), "next_view", "view: output, matte, disparity, CoC, camera and output side by side"),
    Binding(("f",), "auto_focus", "automatic focus (undo a click)"),
    Binding(("h",), "toggle_help", "show/hide this help"),
)
# Handled outside the key table (mouse, and PreviewSink's own quit keys), listed for the help.
EXTRA_HELP: tuple[tuple[str, str], ...] = (
    ("click", "focus on what is under the pointer"),
    ("q / Esc", "quit"),
)


def help_rows() -> list[tuple[str, str]]:
    """(keys, what they do) for the overlay and the docs."""
    return [(" / ".join(b.keys), b.help) for b in BINDINGS] + list(EXTRA_HELP)


def markdown_table() -> str:
    """The key table as Markdown (docs/controls.md holds exactly this; a test checks it)."""
    lines = ["| Key | Does |", "| --- | --- |"]
    for keys, text in help_rows():
        shown = " / ".join(f"`{k}`" for k in keys.split(" / ")) if keys != "click" else "click"
        lines.append(f"| {shown} | {text.replace('|', chr(92) + '|')} |")
    return "\n".join(lines)


def _knob_range(cls: type, name: str) -> tuple[float, float]:
    meta = {f.name: f.metadata for f in dataclasses.fields(cls)}[name]
    lo, hi = meta["range"]
    return float(lo), float(hi)


def _smoothstep(t: float) -> float:
    t = min(1.0, max(0.0, t))
    return t * t * (3.0 - 2.0 * t)


def _spec_label(spec: str | Path) -> str:
    s = str(spec)
    return Path(s).stem if s.endswith(".toml") else s


class Controller:
    """Keys, clicks and views for a running :class:`~realtime.pipeline.Pipeline`.

    ``presets`` are the specs ``p`` cycles through (names or .toml paths), the first being the
    one the pipeline runs now; by default that one (``pipeline.preset.source``) followed by the
    built-in presets. ``adjust`` is applied to every preset loaded by cycling or reloading (for
    command-line overrides such as ``--focus``). ``live_reload`` watches the current preset's
    file (see :mod:`realtime.app.reload`).

    The controls work on the *user's* preset (``preset``), which starts as the pipeline's and is
    handed to ``apply`` (default ``pipeline.apply``) at the next poll. With automatic quality
    scaling pass ``apply=governor.rebase``: the governor's level stays on top of the user's
    settings, and its reduced values never come back as the base of a key press. Build the
    controller before the run starts, when the pipeline's preset is still the user's.
    """

    def __init__(self, pipeline, presets: Sequence[str | Path] | None = None, *,
                 adjust: Callable[[Preset], Preset] | None = None, live_reload: bool = True,
                 clock: Callable[[], float] = time.monotonic, message_seconds: float = 2.5,
                 focus_pull_s: float = 0.3, reload_interval: float = 0.25,
                 apply: Callable[[Preset], object] | None = None) -> None:
        self.pipeline = pipeline
        self._apply_fn = apply or pipeline.apply
        self._base: Preset = pipeline.preset   # the user's settings as last applied
        self._specs = list(presets) if presets else self._default_specs(pipeline.preset)
        self._index = 0
        self._adjust = adjust or (lambda p: p)
        self._clock = clock
        self.message_seconds = float(message_seconds)
        self.focus_pull_s = float(focus_pull_s)
        self.view = VIEWS[0]
        self.help_visible = False
        self._effect_off = not pipeline.preset.render.effect
        self._message = ""
        self._message_until = 0.0
        self._target: Preset | None = None     # preset to apply at the next poll
        self._auto_focus = False                # give focus back to the tracker at the next poll
        self._pull: tuple[float, float, float] | None = None  # (from, to, start time)
        self._marker: tuple[float, float, float] | None = None  # (x, y) in frame pixels, time
        self._input: np.ndarray | None = None
        self._result = None
        self._shown_size: tuple[int, int] | None = None
        self._buffers = dv.Buffers()
        self.watcher: PresetWatcher | None = None
        if live_reload:
            self.watcher = PresetWatcher(self._specs[0], self._reloaded, self._reload_failed, reload_interval,
                                         clock=clock)
        self._actions = {k: getattr(self, b.action) for b in BINDINGS for k in b.keys}

    @staticmethod
    def _default_specs(current: Preset) -> list[str | Path]:
        names = builtin_presets()
        src = current.source
        if src.startswith("configs/") and src[8:-5] in names:
            first: str | Path = src[8:-5]
        elif src:
            first = Path(src)
        else:
            first = current.name if current.name in names else names[0]
        return [first, *(n for n in names if n != first)]

    # -- per frame -------------------------------------------------------------------------
    @property
    def preset(self) -> Preset:
        """The user's preset as the controls see it: what the next :meth:`poll` applies, else
        the one last applied."""
        return self._target if self._target is not None else self._base

    def poll(self) -> None:
        """Before each ``pipeline.process``, with the pipeline idle: apply what keys, clicks and
        live reload recorded, and advance the focus pull."""
        if self.watcher is not None:
            self.watcher.poll()
        if self._target is not None:
            target, self._target = self._target, None
            try:
                self._apply_fn(target)
                self._base = target
            except PortraitCamError as e:  # e.g. a model the preset names cannot be loaded
                log.warning("preset %s not applied: %s", target.name, e)
                self._say(f"preset {target.name} not applied: {e}", max(self.message_seconds, 6.0))
        if self._auto_focus:
            self._auto_focus = False
            self.pipeline.focus.override = None
        if self._pull is not None:
            a, b, t0 = self._pull
            k = _smoothstep((self._clock() - t0) / self.focus_pull_s) if self.focus_pull_s > 0 else 1.0
            self.pipeline.focus.override = a + (b - a) * k
            if k >= 1.0:
                self._pull = None

    def observe(self, input_frame: np.ndarray, result) -> None:
        """After each ``pipeline.process``: the frame and result the views and clicks use."""
        self._input = input_frame
        self._result = result

    @property
    def message(self) -> str:
        """The current short message ('' once it has expired), e.g. for the status line."""
        return self._message if self._clock() < self._message_until else ""

    def _say(self, text: str, seconds: float | None = None) -> str:
        self._message = text
        self._message_until = self._clock() + (self.message_seconds if seconds is None else seconds)
        return text

    # -- keys ------------------------------------------------------------------------------
    def handle_key(self, ch: str) -> str:
        """Run the action bound to ``ch``; returns a short message (also shown on screen)."""
        action = self._actions.get(ch)
        if action is None:
            return self._say(f"key {ch!r} does nothing; h shows the keys")
        return self._say(action())

    def _apply(self, preset: Preset) -> None:
        """Have ``preset`` applied at the next poll, keeping session state (effect switched off)."""
        if self._effect_off and preset.render.effect:
            preset = preset.replace({"render": {"effect": False}})
        self._target = preset

    def _step(self, key: str, up: bool, what: str) -> str:
        lo, hi = _knob_range(RenderConfig, key)
        v = float(getattr(self.preset.render, key))
        if up:
            new = max(v * STEP, MIN_STEP_PX)
        else:
            new = v / STEP
            if new < MIN_STEP_PX:
                new = lo
        new = round(min(hi, max(lo, new)), 2)
        try:
            self._apply(self.preset.replace({"render": {key: new}}))
        except PortraitCamError as e:
            return f"cannot change {what}: {e}"
        edge = " (maximum)" if new >= hi else " (minimum)" if new <= lo else ""
        return f"{what} {new:g} px{edge}"

    def aperture_up(self) -> str:
        return self._step("aperture_px", True, "aperture")

    def aperture_down(self) -> str:
        return self._step("aperture_px", False, "aperture")

    def radius_up(self) -> str:
        return self._step("max_coc_px", True, "max blur radius")

    def radius_down(self) -> str:
        return self._step("max_coc_px", False, "max blur radius")

    def toggle_effect(self) -> str:
        self._effect_off = not self._effect_off
        p = self.preset
        try:
            self._apply(p.replace({"render": {"effect": not self._effect_off}}))
        except PortraitCamError as e:
            self._effect_off = not self._effect_off
            return f"cannot switch the effect: {e}"
        return "effect off" if self._effect_off else "effect on"

    def next_preset(self) -> str:
        if len(self._specs) < 2:
            return f"only one preset ({_spec_label(self._specs[0])})"
        i = (self._index + 1) % len(self._specs)
        spec = self._specs[i]
        try:
            preset = self._adjust(load_preset(spec))
            self._apply(preset)
        except PortraitCamError as e:
            log.warning("preset %s not switched to: %s", _spec_label(spec), e)
            return f"preset {_spec_label(spec)} not used: {e}"
        self._index = i
        if self.watcher is not None:
            self.watcher.watch(spec)
        return f"preset {preset.name}" + (" (effect off)" if self._effect_off else "")

    def next_view(self) -> str:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        return f"view: {self.view}"

    def auto_focus(self) -> str:
        self._pull = None
        self._marker = None
        self._auto_focus = True
        return "focus: automatic"

    def toggle_help(self) -> str:
        self.help_visible = not self.help_visible
        return "help on" if self.help_visible else "help off (h shows it again)"

    # -- live reload -----------------------------------------------------------------------
    def _reloaded(self, preset: Preset) -> None:
        self._apply(self._adjust(preset))  # applied by poll() right after the watcher's look
        self._say(f"preset {preset.name} reloaded" + (" (effect off)" if self._effect_off else ""))

    def _reload_failed(self, message: str) -> None:
        log.warning("%s", message)
        self._say(message, max(self.message_seconds, 6.0))

    # -- click to focus --------------------------------------------------------------------
    def _to_frame(self, x: float, y: float, shown: tuple[int, int], frame: tuple[int, int]) -> tuple[float, float]:
        """Displayed-image coordinates to frame coordinates (side by side shows two tiles)."""
        sw, sh = shown
        fw, fh = frame
        tiles = 1
        if self.view == "side-by-side":  # two frames next to each other: twice the frame's aspect
            tiles = min(2, max(1, round((sw / max(sh, 1)) / (fw / max(fh, 1)))))
        tw = sw / tiles
        if tiles > 1:
            x = x % tw
        return x * fw / max(tw, 1e-9), y * fh / max(sh, 1e-9)

    def click(self, x: float, y: float, frame_size: tuple[int, int] | None = None) -> str:
        """Focus on the disparity under pixel (x, y) of the image shown (``frame_size`` = its
        (width, height); default: the last composed image, else the frame itself)."""
        r = self._result
        if r is None:
            return self._say("nothing to focus on yet")
        disp = r.disparity
        fh, fw = disp.shape
        shown = frame_size or self._shown_size or (fw, fh)
        if not (0 <= x < shown[0] and 0 <= y < shown[1]):
            return self._say("click inside the picture to focus")
        fx, fy = self._to_frame(x, y, shown, (fw, fh))
        fx, fy = min(fx, fw - 1), min(fy, fh - 1)
        ix, iy = int(fx), int(fy)
        rad = max(2, int(round(CLICK_RADIUS * fh)))
        window = disp[max(0, iy - rad):iy + rad + 1, max(0, ix - rad):ix + rad + 1]
        target = float(np.median(window))
        current = self.pipeline.focus.override
        if self._pull is not None:  # clicked again during a pull: continue from where it is
            a, b, t0 = self._pull
            k = _smoothstep((self._clock() - t0) / self.focus_pull_s) if self.focus_pull_s > 0 else 1.0
            current = a + (b - a) * k
        start = float(current) if isinstance(current, (int, float)) and not self._auto_focus else float(r.focus)
        self._auto_focus = False
        self._pull = (start, target, self._clock())  # the next poll holds focus at start, then pulls
        self._marker = (fx, fy, self._clock())
        return self._say(f"focus at {ix},{iy}: disparity {target:.2f} (f: automatic)")

    def _on_mouse(self, event: int, x: int, y: int) -> None:
        if event == cv2.EVENT_LBUTTONDOWN:
            self.click(x, y)

    def bind(self, preview_sink) -> "Controller":
        """Wire a PreviewSink's hooks (before the sink is opened: it registers the mouse then)."""
        preview_sink.on_key = self.handle_key
        preview_sink.on_mouse = self._on_mouse
        preview_sink.overlay = self._overlay
        return self

    def _overlay(self, out) -> np.ndarray:
        result = getattr(out, "result", None)
        if result is not None:
            inp = getattr(out, "input", None)
            self.observe(inp if inp is not None else self._input, result)
            return self.compose(out.frame, result, inp)
        # a fail-closed frame: show it as it is (no debug view of an older result)
        return self.compose(out.frame, view="output")

    def close(self) -> None:
        """Stop live reload (idempotent). The pipeline is the caller's to close."""
        if self.watcher is not None:
            self.watcher.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- drawing ---------------------------------------------------------------------------
    def compose(self, out_frame: np.ndarray, result=None, input_frame: np.ndarray | None = None, *,
                view: str | None = None) -> np.ndarray:
        """What the preview shows: the current view, the focus marker, the help and a message.

        ``result`` and ``input_frame`` default to the last :meth:`observe`; ``view`` overrides
        the current view for this call. Returns
        ``out_frame`` itself when there is nothing to draw, else a buffer owned by the
        controller (valid until the next call).
        """
        result = self._result if result is None else result
        input_frame = self._input if input_frame is None else input_frame
        now = self._clock()
        message = self._message if now < self._message_until else ""
        marker = self._marker if self._marker is not None and now - self._marker[2] < MARKER_SECONDS else None
        view = view or (self.view if result is not None else "output")
        if view == "side-by-side" and (input_frame is None or input_frame.shape != out_frame.shape):
            view = "output"
        if view == "output" and not (message or marker or self.help_visible):
            self._shown_size = (out_frame.shape[1], out_frame.shape[0])
            return out_frame
        h, w = out_frame.shape[:2]
        b = self._buffers
        if view == "output":
            canvas = b.get("canvas", (h, w, 3))
            np.copyto(canvas, out_frame)
        elif view == "matte":
            canvas = dv.matte_view(result.matte, out=b.get("canvas", (h, w, 3)), buffers=b)
        elif view == "disparity":
            canvas = dv.disparity_view(result.disparity, out=b.get("canvas", (h, w, 3)), buffers=b)
        elif view == "coc":
            limit = self.pipeline.renderer.scaled(h)[1] if hasattr(self.pipeline, "renderer") else None
            canvas = dv.coc_view(result.coc, limit or None, out=b.get("canvas", (h, w, 3)), buffers=b)
        else:
            canvas = dv.side_by_side(input_frame, out_frame, out=b.get("canvas2", (h, 2 * w, 3)))
        if view != "output":
            label = VIEW_LABELS[view]
            lw, _ = cv2.getTextSize(label, dv.FONT, dv.text_scale(h), 1)[0]
            dv.draw_label(canvas, label, (canvas.shape[1] - lw - int(12 * dv.text_scale(h)) - 4, 0))
        if marker is not None:
            self._draw_marker(canvas, marker[0], marker[1], (w, h), 2 if view == "side-by-side" else 1)
        if self.help_visible:
            self._draw_help(canvas)
        if message:
            self._draw_message(canvas, message)
        self._shown_size = (canvas.shape[1], canvas.shape[0])
        return canvas

    @staticmethod
    def _draw_marker(canvas: np.ndarray, fx: float, fy: float, frame: tuple[int, int], tiles: int) -> None:
        fw, fh = frame
        size = max(8, int(0.06 * fh))
        for t in range(tiles):
            cx, cy = int(fx) + t * fw, int(fy)
            cv2.rectangle(canvas, (cx - size, cy - size), (cx + size, cy + size), (0, 220, 255), 2, cv2.LINE_AA)

    def _help_layout(self, shape: tuple[int, ...]) -> tuple[float, int, int, int, int, int]:
        """(scale, thickness, key column width, text height, line step, padding) fitting the image."""
        h, w = shape[:2]
        rows = help_rows()
        scale = dv.text_scale(h)
        for _ in range(2):  # measure, then shrink once to fit small frames
            thick = max(1, int(round(scale * 1.5)))
            kw = max(cv2.getTextSize(k, dv.FONT, scale, thick)[0][0] for k, _ in rows)
            tw = max(cv2.getTextSize(t, dv.FONT, scale, thick)[0][0] for _, t in rows)
            (_, th), base = cv2.getTextSize("Ag", dv.FONT, scale, thick)
            line = th + base + int(6 * scale) + 2
            pad = int(10 * scale) + 2
            width, height = kw + tw + pad * 4, line * len(rows) + pad * 3
            fit = min(1.0, (w - 1) / width, (h - 1) / height)
            if fit >= 1.0:
                break
            scale *= fit
        return scale, thick, kw, th, line, pad

    def _draw_help(self, canvas: np.ndarray) -> None:
        h, w = canvas.shape[:2]
        scale, thick, kw, th, line, pad = self._help_layout(canvas.shape)
        rows = help_rows()
        tw = max(cv2.getTextSize(t, dv.FONT, scale, thick)[0][0] for _, t in rows)
        x0, y0 = pad // 2, pad // 2
        x1 = min(w, x0 + kw + tw + pad * 3)
        y1 = min(h, y0 + pad * 2 + line * len(rows))
        roi = canvas[y0:y1, x0:x1]
        np.right_shift(roi, 2, out=roi)  # a dark box: the frame stays faintly visible behind
        for i, (keys, text) in enumerate(rows):
            y = y0 + pad + th + i * line
            cv2.putText(canvas, keys, (x0 + pad, y), dv.FONT, scale, (0, 220, 255), thick, cv2.LINE_AA)
            cv2.putText(canvas, text, (x0 + 2 * pad + kw, y), dv.FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)

    def _draw_message(self, canvas: np.ndarray, message: str) -> None:
        h, w = canvas.shape[:2]
        scale = dv.text_scale(h)
        char_w = cv2.getTextSize("n", dv.FONT, scale, 1)[0][0]
        lines = textwrap.wrap(message, max(20, int(w * 0.9 / max(1, char_w)))) or [""]
        lines = lines[-4:]  # long errors: the end says what to do
        (_, th), base = cv2.getTextSize("Ag", dv.FONT, scale, 1)
        step = th + base + int(8 * scale) + 4
        y = h - step * len(lines) - int(8 * scale)
        for text in lines:
            dv.draw_label(canvas, text, (int(8 * scale), y), scale)
            y += step
