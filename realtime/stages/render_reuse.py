"""Render tiles reused on a still camera: only what changed is blurred again.

On a webcam the camera rarely moves: from one frame to the next most of the blurred background
is the same, apart from camera noise, which the blur averages away. Before the renderer's split,
:class:`TileReuse` reduces the frame, the matte and the CoC to means over 8x8 blocks
(:func:`shaders.tiles.changed_blocks`) and compares each block with the means it had the last time
it changed. A block that moved beyond noise (``render.reuse_change_levels`` in colour, a fiftieth
of the matte, a quarter pixel of CoC) marks its tile changed and becomes the new reference; so
does, on every frame, a block holding anything in front of the focus plane (the near field,
whose spread a small change moves a lot; the subject only beyond ``render.subject_near_px``, as
the split counts it). The colour of a block of solid subject (matte at least 0.99 throughout) is
not compared: the far field gives it no weight, and the subject is drawn from the current frame.

- Only **changed** tiles are split again (frame decoded, layers and sharp alpha written); the
  others keep theirs (they differ from the current frame by less than the tolerance), and so
  does the CoC plane the renderer hands back: a reused tile's is the CoC it was rendered with.
- The far field is **gathered** again on the changed blocks and every block within the blur's
  reach of them (the largest gather radius plus the upsampling's pixel): a person moving, with
  the band the blur spreads them over, or a background object that moved.
- The sharp subject is always the current frame: the finish runs on every pixel, and the near
  field (whatever is in front of the focus plane) is gathered whole whenever there is one.

A tile's reused far field was computed from inputs each within the tolerance of their reference,
which has not changed since, so it differs from a fresh one by at most twice the tolerance on
any block's mean: nothing drifts. The whole frame is rendered again on the first frame, a size or
setting change, when more than ``FULL_SHARE`` of the tiles changed (a pan, a cut, a light switched on) and every
``render.reuse_refresh_frames`` frames. Measurements: docs/cost.md.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from shaders import tiles as tile_kernels
from shaders.bokeh import TILE_COLS

TILE_ROWS = 8       # layer rows of a tile (TILE_COLS layer pixels wide); both times s multiples of CELL
MATTE_TOL = 0.02    # change of a block's mean matte that counts
COC_TOL = 0.25      # change of a block's mean CoC (pixels) that counts
FULL_SHARE = 0.9    # beyond this share of changed tiles the whole frame is rendered
# A block holding a CoC below this (pixels, after the subject's tolerance: the split gives pixels
# beyond -0.5 a near coverage) is rendered on every frame: the near field spreads over its
# neighbours, and a small change of its CoC changes how much of it covers them
NEAR_COC = -0.25


class Plan(NamedTuple):
    """This frame's work: the tiles to split, and the layer pixels whose far field to gather."""

    split: np.ndarray   # (tile rows, tile columns) uint8, 1 = split again
    gather: np.ndarray  # (layer h, layer w) uint8, 1 = gather again


class TileReuse:
    """The reuse state of one renderer (one stream): block references and the last plan."""

    def __init__(self, change_levels: float, refresh_frames: int) -> None:
        self.tol = np.array([change_levels] * 3 + [MATTE_TOL, COC_TOL], np.float32)
        self.refresh_frames = refresh_frames
        self._key: tuple | None = None
        self._ref = np.zeros((0, 0, tile_kernels.STATS), np.float32)
        self._cells = np.zeros((0, 0), np.uint8)
        self._grid = np.zeros((0, 0), np.uint8)
        self._mask = np.zeros((0, 0), np.uint8)
        self._since_full = 0
        self.frames = 0
        self.full_frames = 0
        self.gathered_share = 1.0   # share of the frame's blocks gathered again on the last frame
        self.split_share = 1.0      # share of its tiles split again

    def configure(self, change_levels: float, refresh_frames: int) -> None:
        self.tol[:3] = change_levels
        self.refresh_frames = refresh_frames
        self.invalidate()

    def invalidate(self) -> None:
        """The next frame is rendered whole (a new stream, new settings)."""
        self._key = None

    def plan(self, frame: np.ndarray, disparity: np.ndarray, matte: np.ndarray,
             coc_params: tuple[np.float32, np.float32, np.float32, np.float32], layer_shape: tuple[int, int], s: int,
             reach: int, key: tuple) -> Plan | None:
        """The tiles this frame needs, or None: render the whole frame. ``coc_params`` is the
        split's (focus, aperture, CoC limit, subject tolerance); ``reach``: how many layer pixels
        away a layer pixel's far field reads (its largest gather radius, the upsampling's pixel);
        ``key`` is everything that shapes the render besides the inputs (size, layer scale, table
        size, settings)."""
        h, w = disparity.shape
        hc, wc = -(-h // tile_kernels.CELL), -(-w // tile_kernels.CELL)
        hl, wl = layer_shape
        ht, wt = -(-hl // TILE_ROWS), -(-wl // TILE_COLS)
        cy, cx = TILE_ROWS * s // tile_kernels.CELL, TILE_COLS * s // tile_kernels.CELL
        if self._ref.shape[:2] != (hc, wc):
            self._ref = np.zeros((hc, wc, tile_kernels.STATS), np.float32)
            self._cells = np.zeros((hc, wc), np.uint8)
            self._key = None
        if self._grid.shape != (ht * cy, wt * cx):
            self._grid = np.zeros((ht * cy, wt * cx), np.uint8)
        self.frames += 1
        full = key != self._key or self._since_full + 1 >= self.refresh_frames
        cells = self._cells
        focus, aperture, lim, subject_tol = coc_params
        params = (focus, aperture, lim, np.float32(NEAR_COC), np.float32(subject_tol))
        tile_kernels.changed_blocks(frame, disparity, matte, params, self.tol, full, self._ref, cells)
        if not full:
            self._grid[:hc, :wc] = cells  # the rest stays 0
            changed = self._grid.reshape(ht, cy, wt, cx).max(axis=3).max(axis=1)
            full = np.count_nonzero(changed) > FULL_SHARE * changed.size
        if full:
            return self.full(key)
        # every block within the reach of a changed one is gathered again
        if tile_kernels.CELL % s == 0:
            per = tile_kernels.CELL // s  # layer pixels of a block
            r = math.ceil(reach / per)
        else:
            # s = 3: a layer pixel (its full-res centre's block stands for it) may straddle two
            # blocks; layer pixel i reads blocks within (s reach + 1) / CELL of its centre's
            r = math.ceil((s * reach + 1) / tile_kernels.CELL)
        gather = cv2.dilate(cells, np.ones((2 * r + 1, 2 * r + 1), np.uint8), borderType=cv2.BORDER_CONSTANT,
                            borderValue=0)
        mask = self._layer_mask(gather, (hl, wl), s)
        self._since_full += 1
        self.split_share = np.count_nonzero(changed) / changed.size
        self.gathered_share = np.count_nonzero(gather) / gather.size
        return Plan(changed, mask)

    def _layer_mask(self, blocks: np.ndarray, layer_shape: tuple[int, int], s: int) -> np.ndarray:
        """(layer h, layer w) uint8: each layer pixel takes the value of the block its full-res
        centre lies in."""
        hl, wl = layer_shape
        hc, wc = blocks.shape
        if tile_kernels.CELL % s == 0:
            per = tile_kernels.CELL // s
            if self._mask.shape != (hc * per, wc * per):
                self._mask = np.zeros((hc * per, wc * per), np.uint8)
            cv2.resize(blocks, (wc * per, hc * per), dst=self._mask, interpolation=cv2.INTER_NEAREST)
            return self._mask[:hl, :wl]
        if self._mask.shape != (hl, wl):
            self._mask = np.zeros((hl, wl), np.uint8)
        # (a last, narrower layer pixel's centre may lie past the frame: its block is the last)
        ry = np.minimum((np.arange(hl) * s + s // 2) // tile_kernels.CELL, hc - 1)
        rx = np.minimum((np.arange(wl) * s + s // 2) // tile_kernels.CELL, wc - 1)
        np.take(blocks[ry], rx, axis=1, out=self._mask)
        return self._mask

    def full(self, key: tuple) -> None:
        """A whole frame is rendered (this one): every block's reference is its current value
        (``changed_blocks`` with ``reset``)."""
        self._key = key
        self._since_full = 0
        self.full_frames += 1
        self.split_share = self.gathered_share = 1.0
        return None
