"""Temporal stabiliser for the matte and the disparity.

Per pixel, the stabilised value moves toward the model's new value by a factor between a small
static floor (``1 - smoothing``) and 1:

- **still and agreeing**: where the image did not change (mean level of 4x4 tiles against the
  previous frame, see :mod:`shaders.temporal`) and the new value is close to the stabilised one, the
  floor applies: camera noise and model jitter are averaged over ~``1 / (1 - smoothing)``
  frames;
- **moved**: where the tile's level changed by ``motion_threshold``, or the matte
  (disparity) differs from its stabilised value by ``matte_follow`` (``depth_follow``), the
  pixel follows at once (factor 1): no lag, no ghost. Both ramps fade in from half their value;
- **hysteresis**: a still pixel changes side of alpha 0.5 only when its stabilised alpha leaves
  ``0.5 +/- hysteresis``; inside the band the output is held on the side it was on.

State (matte, disparity, side bits, previous tile levels and histogram) lives in buffers of
its own; the outputs are separate buffers handed back read-only. The state is forgotten by
:meth:`Stabiliser.reset`, and by the stage itself on a scene cut (the tile-level histogram
changed by ``scene_cut_threshold``), a new frame size, or a gap of ``reset_after_gap_ms``.
See ``docs/temporal.md`` for the measured effect.
"""

from __future__ import annotations

import numpy as np

from shaders import temporal as k

from realtime.core.buffers import PerSize
from realtime.core.config import TemporalConfig
from realtime.core.frames import check_disparity, check_frame, check_matte, readonly
from realtime.core.stage import Stage

HIST_BINS = 32  # scene-cut histogram of tile levels over 0..256
# global-change estimates: median of a histogram of frame-to-frame differences
# (bins centred on 0, so no change reads as exactly 0; changes beyond the ends land in the end bins)
LUMA_SHIFT_BIN, LUMA_SHIFT_BINS = 0.25, 255                # levels, +/-32
LUMA_SHIFT_LO = -(LUMA_SHIFT_BINS / 2) * LUMA_SHIFT_BIN
DISP_SHIFT_BIN, DISP_SHIFT_BINS = 1.0 / 4096, 511          # disparity, +/-1/16
DISP_SHIFT_LO = -(DISP_SHIFT_BINS / 2) * DISP_SHIFT_BIN
DISP_SHIFT_STEP = 8   # sample every 8th row and column of the disparity (14k samples at 720p)
TILE_SAMPLE_STEP = 2  # and every 2nd tile for the histograms (14k samples at 720p)
# a global disparity change smaller than this is jitter and is smoothed like local jitter; the
# part beyond it is drift (the depth stage re-ranging its output) and is followed at once
DISP_DRIFT_DEADZONE = 0.002


def histogram_median(counts: np.ndarray, lo: float, width: float) -> float:
    """Centre of the bin holding the median of a histogram (``lo`` = left edge of bin 0)."""
    c = np.cumsum(counts)
    i = int(np.searchsorted(c, (int(c[-1]) + 1) // 2))
    return lo + (i + 0.5) * width


def _f32(v: float) -> np.float32:
    return np.float32(v)


class _Buffers:
    """Everything the stabiliser keeps for one frame size (allocated once per size)."""

    def __init__(self, height: int, width: int) -> None:
        shape = (height, width)
        tiles = k.tiles_shape(height, width)
        self.shape = shape
        self.state_m = np.zeros(shape, np.uint16)  # alpha and side bit (see shaders.temporal.stabilise)
        self.state_d = np.zeros(shape, np.uint16)  # disparity in 1/65535 steps
        self.out_m = np.zeros(shape, np.float32)
        self.out_d = np.zeros(shape, np.float32)
        self.rows = k.scratch_rows(width)  # tile_luma's scratch
        self.luma = np.zeros(tiles, np.float32)       # this frame's tile levels
        self.luma_prev = np.zeros(tiles, np.float32)  # the previous frame's
        self.vmax = np.zeros(tiles, np.float32)  # motion_weight's scratch
        self.motion = np.zeros((tiles[0], width), np.float32)  # per tile row and pixel column
        self.hist = np.zeros(HIST_BINS, np.int32)
        self.hist_prev = np.zeros(HIST_BINS, np.int32)
        self.luma_diffs = np.zeros(LUMA_SHIFT_BINS, np.int32)
        self.disp_diffs = np.zeros(DISP_SHIFT_BINS, np.int32)

    def swap(self) -> None:
        """This frame's probe becomes the previous frame's (no copy)."""
        self.luma, self.luma_prev = self.luma_prev, self.luma
        self.hist, self.hist_prev = self.hist_prev, self.hist


class Stabiliser(Stage):
    """``process(frame, ts, matte, disparity) -> (matte, disparity)``, both read-only."""

    name = "temporal"

    def __init__(self, config: TemporalConfig) -> None:
        super().__init__()
        self.config = config
        self._buffers: PerSize[_Buffers] = PerSize(_Buffers)
        self._primed = False
        self._prev_ts: int | None = None
        self.cuts = 0                # scene cuts detected since construction
        self.histogram_change = 0.0  # share of the tile-level histogram that changed, last frame
        self.moving_share = 0.0      # share of the tiles in motion, last frame
        self._derive()

    def configure(self, config: TemporalConfig) -> None:
        """New knobs while running; the history is kept unless the stage was or is now off."""
        restart = not (config.enabled and self.config.enabled)
        super().configure(config)
        self._derive()
        if restart:
            self._primed = False

    def _derive(self) -> None:
        """Kernel parameters from the config (float32, so nothing in the kernels widens)."""
        c = self.config
        self._k_matte = _f32(1.0 - c.matte_smoothing)
        self._k_disp = _f32(1.0 - c.depth_smoothing)
        # every ramp starts at half its threshold and reaches 1 at the threshold
        self._motion_lo, self._motion_inv = _f32(c.motion_threshold / 2), _f32(2.0 / c.motion_threshold)
        self._m_lo, self._m_inv = _f32(c.matte_follow / 2), _f32(2.0 / c.matte_follow)
        self._d_lo, self._d_inv = _f32(c.depth_follow / 2), _f32(2.0 / c.depth_follow)
        self._band = _f32(c.hysteresis)
        self._share_lo, self._share_inv = c.moving_share, 1.0 / (0.75 * c.moving_share)
        self._global_follow = c.global_follow

    def reset(self) -> None:
        """Forget the state: the next frame passes through unchanged and starts a new history."""
        super().reset()
        self._primed = False
        self._prev_ts = None

    def process(self, frame: np.ndarray, timestamp_ms: int, matte: np.ndarray,
                disparity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ts = self._begin(timestamp_ms)
        check_frame(frame)
        shape = frame.shape[:2]
        check_matte(matte, shape)
        check_disparity(disparity, shape)
        if not self.config.enabled:
            return matte, disparity
        b = self._buffers.get(*shape)
        if self._buffers.fresh:
            self._primed = False  # a new frame size is a new source
        gap = self.config.reset_after_gap_ms
        if self._prev_ts is not None and gap and ts - self._prev_ts >= gap:
            self._primed = False
        self._prev_ts = ts

        k.tile_luma(readonly(frame), b.rows, b.luma)  # read-only: one kernel signature
        k.luma_histogram(b.luma, TILE_SAMPLE_STEP, b.hist)
        if self._primed:
            self.histogram_change = float(np.abs(b.hist - b.hist_prev).sum()) / (2.0 * float(b.hist.sum()))
            if self.histogram_change >= self.config.scene_cut_threshold:
                self.cuts += 1
                self._primed = False
        if self._primed:
            # a change shared by most of the frame is exposure (luma) or the depth stage
            # re-ranging its output (disparity), not motion: take it out before comparing
            k.difference_histogram(b.luma, b.luma_prev, _f32(1.0), TILE_SAMPLE_STEP, _f32(LUMA_SHIFT_LO),
                                   _f32(1.0 / LUMA_SHIFT_BIN), b.luma_diffs)
            luma_shift = _f32(histogram_median(b.luma_diffs, LUMA_SHIFT_LO, LUMA_SHIFT_BIN))
            k.difference_histogram(disparity, b.state_d, k.DISP_STEP, DISP_SHIFT_STEP, _f32(DISP_SHIFT_LO),
                                   _f32(1.0 / DISP_SHIFT_BIN), b.disp_diffs)
            drift = histogram_median(b.disp_diffs, DISP_SHIFT_LO, DISP_SHIFT_BIN)
            disp_shift = _f32(np.sign(drift) * max(abs(drift) - DISP_DRIFT_DEADZONE, 0.0))
            k.motion_weight(b.luma, b.luma_prev, luma_shift, self._motion_lo, self._motion_inv, b.vmax, b.motion)
            # a large share of the picture in motion (a moving camera, fast action) leaves each
            # pixel's history unregistered: the still-looking parts lag too, so all lean toward
            # the current frame (every other tile row and column: a share needs no more)
            probe = b.vmax[::2, ::2]
            self.moving_share = float(np.count_nonzero(probe > 0.5)) / probe.size
            lean = self._global_follow * min(max((self.moving_share - self._share_lo) * self._share_inv, 0.0), 1.0)
            k.stabilise(matte, disparity, b.motion, _f32(lean), self._k_matte, self._k_disp, self._m_lo, self._m_inv,
                        self._d_lo, self._d_inv, disp_shift, self._band, b.state_m, b.state_d, b.out_m,
                        b.out_d)
        else:
            self._start(matte, disparity)
        b.swap()
        return readonly(b.out_m), readonly(b.out_d)

    def _start(self, matte: np.ndarray, disparity: np.ndarray) -> None:
        """First frame of a history: the state is the input, the side is which half it is on."""
        b = self._buffers.current
        k.restart(matte, disparity, b.state_m, b.state_d, b.out_m, b.out_d)
        self.histogram_change = 0.0
        self._primed = True
