"""Scalar filters the stages share: the One Euro filter (focus, the person's depth plane) and the
dead-band range stabiliser (depth's model-to-disparity range)."""

from __future__ import annotations

import math


class OneEuroFilter:
    """Casiez et al.'s One Euro filter for one scalar, driven by timestamps in milliseconds.

    The cutoff frequency grows with the (smoothed) speed of the signal: low jitter when still,
    low lag when moving.
    """

    def __init__(self, min_cutoff_hz: float, beta: float, d_cutoff_hz: float = 1.0) -> None:
        self.min_cutoff = float(min_cutoff_hz)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff_hz)
        self._x: float | None = None
        self._dx = 0.0
        self._t: float | None = None

    def reset(self) -> None:
        self._x = None
        self._dx = 0.0
        self._t = None

    @property
    def value(self) -> float | None:
        return self._x

    @staticmethod
    def _alpha(cutoff: float, dt: float) -> float:
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: float, timestamp_ms: float) -> float:
        x = float(x)
        t = float(timestamp_ms) / 1000.0
        if self._x is None or self._t is None or t <= self._t:
            self._x, self._t = x, t
            return x
        dt = t - self._t
        self._t = t
        dx = (x - self._x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self._dx += a_d * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * abs(self._dx)
        a = self._alpha(cutoff, dt)
        self._x += a * (x - self._x)
        return self._x


class RangeStabiliser:
    """A robust (lo, hi) that only moves when the measurement leaves a dead band.

    Inside the band (a fraction ``deadband`` of the current span) the range does not change at
    all, so camera noise cannot re-scale the scene; outside it, each end chases the new value
    with rate ``1 - smoothing`` per update until it is within a tenth of the band again
    (hysteresis: a small persistent offset does not keep it moving forever).
    """

    def __init__(self, smoothing: float, deadband: float) -> None:
        self.rate = 1.0 - smoothing
        self.deadband = deadband
        self.lo: float | None = None
        self.hi: float | None = None
        self._tracking = [False, False]

    def reset(self) -> None:
        self.lo = self.hi = None
        self._tracking = [False, False]

    def update(self, lo: float, hi: float) -> tuple[float, float]:
        if self.lo is None or self.hi is None:
            self.lo, self.hi = float(lo), float(max(hi, lo + 1e-6))
            return self.lo, self.hi
        span = max(self.hi - self.lo, 1e-6)
        band = self.deadband * span
        ends = [self.lo, self.hi]
        for k, target in enumerate((float(lo), float(hi))):
            err = target - ends[k]
            if abs(err) > band:
                self._tracking[k] = True
            if self._tracking[k]:
                ends[k] += self.rate * err
                if abs(target - ends[k]) <= 0.1 * band:
                    self._tracking[k] = False
        self.lo, self.hi = ends[0], max(ends[1], ends[0] + 1e-6)
        return self.lo, self.hi
