"""The matte faded where the depth model puts it behind the person (``depth.fade_behind``).

Where the segmenter is unsure beside the person, a plain bright backdrop can keep a matte of
0.6-0.9: the renderer then leaves a semi-transparent plate of background sharp, with a hard cut
against the blurred part. Distance from the person's core alone cannot tell that plate from a
person the model is unsure of (``segmentation.fade_unsure_background``, off by default: it fades
both); the depth model can, often enough to gain on average over every set we measure and lose
on none (docs/matte.md, change 10).

At the depth model's content grid (about 320x180), per model result: the model's output and the
background's median depth, over the whole grid and per row, where the matte of the frame it ran
on is <= 0.1. Per frame, with the current matte sampled at the grid: ``far`` is 0 within ``NEAR``
of the grid's diagonal from the person's core (matte >= 0.9: hair and edges lie there), 1 from
twice that; each cell's depth is read relative to the background and the NEAREST core cell,
``t = (d - d_bg) / (d_core - d_bg)``, against the row's background and the whole one, the larger
of the two (a standing person's depth runs from their feet to their head with the floor; an
unsure upper body is not behind the legs, nor behind the crowd at its own height); ``behind`` is
1 where ``t <= BEHIND_T0``, 0 from ``BEHIND_T1`` up; the matte is multiplied by
``1 - far * behind``, upsampled bilinearly. Only a frame where that would change the matte pays
for the full-resolution pass; nothing changes without a core, a background, or a model result
that puts the person in front of the background.
"""

from __future__ import annotations

import cv2
import numpy as np

from realtime.stages.person_box import CORE, far_from_core

from .fitting import SAMPLE_STRIDE, Grid

SURE_BG = 0.1    # matte at which a cell is surely background (CORE: surely the person)
NEAR = 0.03      # of the grid's diagonal: no fade this close to the core
BEHIND_T0 = -0.2  # relative depth (0 = the background's median, 1 = the nearest core's) fully behind
BEHIND_T1 = 0.3   # ... from which nothing fades
_MIN_CELLS = 4
_SOME = np.float32(1.0 / 255.0)  # matte under one 8-bit level: nothing to fade


class BehindFade:
    """Buffers of one grid (allocated once per frame size) and the last model result."""

    def __init__(self, g: Grid) -> None:
        f = g.fit
        self.grid = g
        self.depth = np.zeros((f.nh, f.nw), np.float32)  # the model result's output
        self.row_background = np.zeros((f.nh, 1), np.float32)  # ... its background's median per row
        self.background = np.float32(0.0)                       # ... and over the whole grid
        self.ready = False  # a model result that sees the person in front of the background
        self.small = np.empty((f.nh, f.nw), np.float32)
        self.not_core = np.empty((f.nh, f.nw), np.uint8)
        self.near = np.empty((f.nh, f.nw), np.float32)
        self.wide = np.empty((f.sh, f.sw), np.float32)
        self.out = np.empty((f.frame_h, f.frame_w), np.float32)
        self.diag = float(np.hypot(f.nh, f.nw))

    def update(self, depth: np.ndarray, matte: np.ndarray) -> None:
        """Take a model result: its output ``depth`` and the matte of the frame it saw, both at
        the grid."""
        s = (slice(None, None, SAMPLE_STRIDE),) * 2  # the medians on every 3rd row and column
        d, m = depth[s], matte[s]
        person, background = d[m >= CORE], d[m <= SURE_BG]
        self.ready = False
        if person.size < _MIN_CELLS or background.size < _MIN_CELLS:
            return
        db = float(np.median(background))
        if float(np.median(person)) <= db:  # the model does not see the person in front
            return
        # the background's median per row: a floor comes nearer toward the bottom of the frame,
        # and what is behind someone is judged against the background at the same height
        rows = np.where(m <= SURE_BG, d, np.nan)
        counted = np.count_nonzero(m <= SURE_BG, axis=1) >= _MIN_CELLS
        if not counted.any():
            return
        y = np.arange(0, depth.shape[0], SAMPLE_STRIDE)
        with np.errstate(all="ignore"):
            med = np.nanmedian(rows[counted], axis=1)
        self.row_background[:, 0] = np.interp(np.arange(depth.shape[0]), y[counted], med)
        self.background = np.float32(db)
        np.copyto(self.depth, depth)
        self.ready = True

    def apply(self, matte: np.ndarray) -> np.ndarray:
        """``matte`` faded where it lies far from the person's core and behind them (a buffer
        of this object), or ``matte`` itself when nothing would change."""
        if not self.ready:
            return matte
        g = self.grid
        f = g.fit
        # a bilinear sample (2x2 pixels per cell at 720p) tells core from unsure well enough,
        # at a fraction of a box average's cost: this runs on every frame
        cv2.resize(matte[g.crop], (f.nw, f.nh), dst=self.small, interpolation=cv2.INTER_LINEAR)
        np.less(self.small, np.float32(CORE), out=self.not_core)
        if self.not_core.all():  # no core: nothing to measure a distance from
            return matte
        # most frames have no matte that far out, and stop here
        fade = far_from_core(self.not_core, NEAR * self.diag, 2 * NEAR * self.diag)
        if not np.any((fade > 0) & (self.small > _SOME)):
            return matte
        _, label = cv2.distanceTransformWithLabels(self.not_core, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
        # the depth of the nearest core cell (the labels count the core cells in scan order)
        core_depth = self.depth[self.not_core == 0]
        np.take(core_depth, label.ravel() - 1, out=self.near.ravel())
        # behind only when behind both the row's background and the whole one (module docstring)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.maximum(self._relative(self.row_background), self._relative(self.background))
        # behind = clip((T1 - t) / (T1 - T0), 0, 1)
        behind = np.clip((np.float32(BEHIND_T1) - t) * np.float32(1.0 / (BEHIND_T1 - BEHIND_T0)), 0.0, 1.0)
        fade *= behind  # the share of the matte that goes
        if not np.any((fade > 0) & (self.small > _SOME)):
            return matte
        np.subtract(np.float32(1.0), fade, out=fade)  # ... and the share kept
        cv2.resize(fade, (f.sw, f.sh), dst=self.wide, interpolation=cv2.INTER_LINEAR)
        np.copyto(self.out, matte)
        np.multiply(self.out[g.crop], self.wide, out=self.out[g.crop])
        return self.out

    def _relative(self, bg: np.ndarray | np.float32) -> np.ndarray:
        """Each cell's depth between the background ``bg`` (0) and its nearest core cell (1);
        infinite where that core cell is not in front of ``bg`` (no evidence: nothing fades)."""
        t = (self.depth - bg) / (self.near - bg)
        t[~(self.near > bg)] = np.inf
        return t
