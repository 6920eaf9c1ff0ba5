"""Per-frame statistics, the one-line live status and the file-job progress bar."""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Callable, TextIO

import numpy as np


class Stats:
    """Rolling per-stage timings, capture-to-sink latency and throughput.

    The rolling window feeds the live status line; ``keep_all`` also keeps every sample for
    benchmarks and end-of-run summaries.
    """

    def __init__(self, window: int = 120, keep_all: bool = False) -> None:
        self.window = window
        self.keep_all = keep_all
        self.stages: dict[str, deque[float]] = {}
        self.latency: deque[float] = deque(maxlen=window)
        self.total: deque[float] = deque(maxlen=window)
        self.times: deque[float] = deque(maxlen=window)
        self.all_stages: dict[str, list[float]] = {}
        self.all_latency: list[float] = []
        self.all_total: list[float] = []
        self.frames = 0
        self.started = time.perf_counter()

    def record(self, timings_ms: dict[str, float], latency_ms: float, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        self.frames += 1
        self.times.append(now)
        self.latency.append(latency_ms)
        total = sum(timings_ms.values())
        self.total.append(total)
        for k, v in timings_ms.items():
            self.stages.setdefault(k, deque(maxlen=self.window)).append(v)
        if self.keep_all:
            self.all_latency.append(latency_ms)
            self.all_total.append(total)
            for k, v in timings_ms.items():
                self.all_stages.setdefault(k, []).append(v)

    @property
    def fps(self) -> float:
        if len(self.times) < 2:
            return 0.0
        span = self.times[-1] - self.times[0]
        return (len(self.times) - 1) / span if span > 0 else 0.0

    def latency_pct(self, q: float) -> float:
        return float(np.percentile(self.latency, q)) if self.latency else 0.0

    def stage_median(self, name: str) -> float:
        d = self.stages.get(name)
        return float(np.median(d)) if d else 0.0


def format_status(stats: Stats, dropped: int = 0, note: str = "") -> str:
    parts = [f"{stats.fps:5.1f} fps",
             f"latency p50 {stats.latency_pct(50):3.0f} / p95 {stats.latency_pct(95):3.0f} ms"]
    short = {"segmentation": "seg", "depth": "depth", "temporal": "temp", "focus": "focus", "render": "render"}
    stage = " ".join(f"{short.get(k, k)} {stats.stage_median(k):.1f}" for k in stats.stages)
    if stage:
        parts.append(stage + " ms")
    parts.append(f"dropped {dropped}")
    if note:
        parts.append(note)
    return " | ".join(parts)


def status_fields(stats: Stats, dropped: int = 0) -> dict:
    """The status line's numbers as plain values (the control page shows them)."""
    return {"fps": round(stats.fps, 1), "latency_p50_ms": round(stats.latency_pct(50), 1),
            "latency_p95_ms": round(stats.latency_pct(95), 1),
            "stages_ms": {k: round(stats.stage_median(k), 1) for k in list(stats.stages)},
            "dropped": int(dropped), "frames": stats.frames}


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_progress(done: int, total: int | None, fps: float, width: int = 24) -> str:
    if total:
        frac = min(1.0, done / total)
        bar = "#" * int(frac * width)
        eta = format_eta((total - done) / fps) if fps > 0 else "?"
        return f"[{bar:<{width}}] {done}/{total} {frac * 100:3.0f}% {fps:5.1f} fps ETA {eta}"
    return f"{done} frames {fps:5.1f} fps"


class StatusLine:
    """One line refreshed in place on a terminal; on a pipe, an occasional plain line instead."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.5, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if self.tty else 5.0
        self.quiet = quiet
        self._last = 0.0
        self._width = 0

    def update(self, text: str | Callable[[], str], force: bool = False) -> None:
        """Show ``text`` if the line is due; a callable is called only then (a live loop's
        status holds percentiles and medians: computing them every frame costs CPU for nothing)."""
        if self.quiet:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        if callable(text):
            text = text()
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        """End the in-place line so later messages start on a fresh line."""
        if self.tty and self._width and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
        self._width = 0
