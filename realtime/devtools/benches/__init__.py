"""Stage micro-benchmarks, run by ``python run.py bench`` next to the end-to-end numbers.

Each module here (``matte``, ``depth``, ``temporal``, ``render``...) defines::

    def run(frames: list[np.ndarray], repeats: int) -> list[Measurement]

timing its stage on the given real frames (all the same size) after a warm-up, and where the
issue asks for one, a baseline timed in the same run, interleaved A B A B so machine drift
hits both alike. Never call these from unit tests: timings belong to the benchmark.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class Measurement:
    name: str                      # e.g. "segmentation+refine"
    size: tuple[int, int]          # (width, height)
    times_ms: list[float]
    baseline_name: str | None = None
    baseline_ms: list[float] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)  # anything else worth printing

    @property
    def median_ms(self) -> float:
        return float(np.median(self.times_ms))

    @property
    def p95_ms(self) -> float:
        return float(np.percentile(self.times_ms, 95))

    @property
    def ratio(self) -> float | None:
        """Median of the per-pair ratios A/B (robust to drift), or None without a baseline."""
        if not self.baseline_ms:
            return None
        n = min(len(self.times_ms), len(self.baseline_ms))
        return float(np.median(np.asarray(self.times_ms[:n]) / np.asarray(self.baseline_ms[:n])))

    def as_dict(self) -> dict:
        d = {"name": self.name, "size": f"{self.size[0]}x{self.size[1]}", "median_ms": self.median_ms,
             "p95_ms": self.p95_ms, "n": len(self.times_ms)}
        if self.baseline_ms:
            d.update(baseline=self.baseline_name, baseline_median_ms=float(np.median(self.baseline_ms)),
                     ratio=self.ratio)
        d.update(self.extra)
        return d


def timed(fn: Callable[[int], object], repeats: int, warmup: int = 3) -> list[float]:
    """Times ``fn(i)`` for i in range(repeats) after ``warmup`` untimed calls; ms per call."""
    for i in range(warmup):
        fn(i)
    out = []
    for i in range(repeats):
        t = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def alternated(a: Callable[[int], float], b: Callable[[int], float], repeats: int,
               warmup: int = 5) -> tuple[list[float], list[float]]:
    """Like :func:`interleaved` for calls that time themselves (each returns its ms): A B A B
    ..., the first ``warmup`` pairs dropped."""
    ta, tb = [], []
    for i in range(warmup + repeats):
        ca, cb = a(i), b(i)
        if i >= warmup:
            ta.append(ca)
            tb.append(cb)
    return ta, tb


def interleaved(a: Callable[[int], object], b: Callable[[int], object], repeats: int,
                warmup: int = 3) -> tuple[list[float], list[float]]:
    """Times ``a`` and ``b`` alternately (A B A B ...) so drift hits both; ms per call each."""
    for i in range(warmup):
        a(i)
        b(i)
    ta, tb = [], []
    for i in range(repeats):
        t = time.perf_counter()
        a(i)
        ta.append((time.perf_counter() - t) * 1000.0)
        t = time.perf_counter()
        b(i)
        tb.append((time.perf_counter() - t) * 1000.0)
    return ta, tb
