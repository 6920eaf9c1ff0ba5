"""Live controls for the preview window, with no window dependency.

A :class:`Controller` turns keys and clicks into changes submitted to the session's one owner
of live settings (:class:`~realtime.app.session.Session`: every value validated through
``Preset.replace``), and draws what the preview shows (output or a debug view), the help
overlay and short messages. A window is only needed to feed it keys and clicks:
:meth:`Controller.bind` wires a :class:`~realtime.io.sinks.PreviewSink`.

Keys and clicks arrive inside the preview sink's ``write``, when the pipeline may still be
running a stalled frame in the watchdog's thread, so they only *record* changes; the session's
``poll``, between two frames, applies them (:meth:`Controller.poll` is that poll, for a
controller used on its own). :meth:`Controller.observe` after ``process`` gives the result the
debug views and click-to-focus read (``bind`` does this from the preview's
``OutputFrame.result`` by itself).

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
from realtime.app.session import CLICK_RADIUS, VIEWS, Session, focus_target  # noqa: F401 (re-exported)
from realtime.core.config import Preset, RenderConfig
from realtime.core.errors import PortraitCamError

log = logging.getLogger(__name__)

VIEW_LABELS = {"matte": "matte", "disparity": "disparity (red = near)", "coc": "CoC (orange near, blue far)",
               "side-by-side": "camera | output"}
STEP = 1.25             # multiplicative step of aperture and maximum radius
MIN_STEP_PX = 1.0       # first step up from 0; below this a step down gives 0
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


class Controller:
    """Keys, clicks and views for a running :class:`~realtime.pipeline.Pipeline`.

    Changes go to ``session`` (the one owner of the live settings). Without one the controller
    makes its own :class:`~realtime.app.session.Session` from the remaining arguments (see
    there: ``presets``, ``adjust``, ``live_reload``, ``apply``...) and closes it with itself.
    """

    def __init__(self, pipeline, presets: Sequence[str | Path] | None = None, *,
                 adjust: Callable[[Preset], Preset] | None = None, live_reload: bool = True,
                 clock: Callable[[], float] = time.monotonic, message_seconds: float = 2.5,
                 focus_pull_s: float = 0.3, reload_interval: float = 0.25,
                 apply: Callable[[Preset], object] | None = None, session: Session | None = None) -> None:
        self.pipeline = pipeline
        self._own_session = session is None
        if session is None:
            session = Session(pipeline, presets, adjust=adjust, live_reload=live_reload,
                              reload_interval=reload_interval, clock=clock, message_seconds=message_seconds,
                              focus_pull_s=focus_pull_s, apply=apply)
        self.session = session
        self._clock = session._clock
        self.help_visible = False
        self._marker: tuple[float, float, float] | None = None  # (x, y) in frame pixels, time
        self._input: np.ndarray | None = None
        self._result = None
        self._shown_size: tuple[int, int] | None = None
        self._buffers = dv.Buffers()
        self._actions = {k: getattr(self, b.action) for b in BINDINGS for k in b.keys}

    # -- the session's state, as the controls see it -----------------------------------------
    @property
    def preset(self) -> Preset:
        """The user's preset: what the next poll applies, else the one last applied."""
        return self.session.preset

    @property
    def view(self) -> str:
        return self.session.view

    @view.setter
    def view(self, value: str) -> None:
        self.session.set_view(value)

    @property
    def focus_pull_s(self) -> float:
        return self.session.focus_pull_s

    @focus_pull_s.setter
    def focus_pull_s(self, value: float) -> None:
        self.session.focus_pull_s = float(value)

    @property
    def message_seconds(self) -> float:
        return self.session.message_seconds

    @property
    def watcher(self):
        return self.session.watcher

    @property
    def message(self) -> str:
        """The current short message ('' once it has expired), e.g. for the status line."""
        return self.session.message

    def _say(self, text: str, seconds: float | None = None) -> str:
        return self.session.say(text, seconds)

    # -- per frame -------------------------------------------------------------------------
    def poll(self) -> None:
        """Before each ``pipeline.process``, with the pipeline idle: the session applies what
        keys, clicks and live reload submitted (the streaming loop polls the session itself)."""
        self.session.poll()

    def observe(self, input_frame: np.ndarray, result) -> None:
        """After each ``pipeline.process``: the frame and result the views and clicks use."""
        self._input = input_frame
        self._result = result

    # -- keys ------------------------------------------------------------------------------
    def handle_key(self, ch: str) -> str:
        """Run the action bound to ``ch``; returns a short message (also shown on screen)."""
        action = self._actions.get(ch)
        if action is None:
            return self._say(f"key {ch!r} does nothing; h shows the keys")
        return self._say(action())

    def _step(self, key: str, up: bool, what: str) -> str:
        lo, hi = _knob_range(RenderConfig, key)
        done: list[float] = []

        def change(p: Preset) -> Preset:
            v = float(getattr(p.render, key))
            if up:
                new = max(v * STEP, MIN_STEP_PX)
            else:
                new = v / STEP
                if new < MIN_STEP_PX:
                    new = lo
            new = round(min(hi, max(lo, new)), 2)
            done.append(new)
            return p.replace({"render": {key: new}})
        try:
            self.session.update(change)
        except PortraitCamError as e:
            return f"cannot change {what}: {e}"
        new = done[-1]
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
        try:
            return self.session.toggle_effect()
        except PortraitCamError as e:
            return f"cannot switch the effect: {e}"

    def next_preset(self) -> str:
        return self.session.next_preset()

    def next_view(self) -> str:
        return self.session.next_view()

    def auto_focus(self) -> str:
        self._marker = None
        return self.session.auto_focus()

    def toggle_help(self) -> str:
        self.help_visible = not self.help_visible
        return "help on" if self.help_visible else "help off (h shows it again)"

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
        target = focus_target(disp, fx, fy)
        self.session.pull_focus(target, r.focus)  # the next poll holds focus at the start, then pulls
        self._marker = (fx, fy, self._clock())
        return self._say(f"focus at {int(fx)},{int(fy)}: disparity {target:.2f} (f: automatic)")

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
        """Close the session if the controller made it (idempotent). The pipeline is the
        caller's to close."""
        if self._own_session:
            self.session.close()

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
        message = self.message
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
