"""Lens renderer: signed circle of confusion from disparity, then an occlusion-correct bokeh.

:func:`coc_from_disparity` turns disparity into a signed CoC in pixels (negative = in front of
the focus plane). :func:`render_bokeh` renders a frame through a lens with that CoC: a flat
disk (or n-gon) point spread of per-pixel radius, gathered in linear light with a highlight
boost, the far field foreground-free (no halo around the sharp subject), the near field spread
over what is behind it, the subject composited with the soft matte. :class:`Lens` holds the
lookup tables and the per-size buffers; :class:`Renderer` is the pipeline stage.
See ``docs/render.md`` for the design and the measured numbers.
"""

from __future__ import annotations

import math
import threading
from typing import NamedTuple

import cv2
import numpy as np

from shaders import bokeh, gather
from shaders.color import ColorLuts, make_luts

from realtime.core.buffers import PerSize
from realtime.core.config import REFERENCE_HEIGHT, RenderConfig
from realtime.core.errors import ConfigError, FrameShapeError, FrameTypeError
from realtime.core.frames import check_disparity, check_frame, check_matte, check_plane, readonly
from realtime.core.stage import Stage
from realtime.core.threads import row_chunks
from realtime.stages.render_reuse import TILE_ROWS, TileReuse


# The layer scale s (layers of ceil(h / s) x ceil(w / s) pixels, s = 1, 2 or 3) is the smallest
# whose gather work stays within what the half-resolution path costs at 720p with the default
# 24 px: small frames (and small blurs on mid-sized ones) get the exact full-resolution lens, 720p
# the half-resolution one, 1080p (whose blur is 1.5 times as wide) layers of a third, which cost
# what 720p's half-resolution ones do. Work = layer pixels x (radius in layer pixels + a fixed
# cost per pixel in disk-row pairs; docs/render.md).
GATHER_FIXED = 10
FULL_RES_WORK = (1280 * 720 // 4) * (12 + GATHER_FIXED)
LAYER_SCALES = (1, 2, 3)

# Reduced-resolution layers: the s x s block sums and the bilinear upsampling widen a disk; the
# gather radius is shrunk (in layer pixels) so that a disk still reaches r, its reach moving in
# steps of a layer pixel as r grows. Only these shrinks centre the reach (docs/render.md, "Why
# not exactly"; tests/test_render.py checks both).
HALF_RES_SHRINK = 1.25
THIRD_RES_SHRINK = 1.15
SHRINK = {1: 0.0, 2: HALF_RES_SHRINK, 3: THIRD_RES_SHRINK}


def layer_work(h: int, w: int, lim: float, s: int) -> float:
    """Gather work of layers at scale ``s`` for a blur of at most ``lim`` px (see FULL_RES_WORK)."""
    return -(-h // s) * -(-w // s) * (lim / s + GATHER_FIXED)


def layer_scale(h: int, w: int, lim: float, reduced: bool = True) -> int:
    """The layer scale for an h x w frame with a blur of at most ``lim`` px: the smallest of
    LAYER_SCALES within FULL_RES_WORK (the largest if none is), 1 unless ``reduced``."""
    if not reduced:
        return 1
    for s in LAYER_SCALES[:-1]:
        if layer_work(h, w, lim, s) <= FULL_RES_WORK * (1 + 1e-9):
            return s
    return LAYER_SCALES[-1]


MAX_COC_PX = 256.0  # any CoC is clamped to this many pixels


def far_reach(lim: float, s: int, kmax: int) -> int:
    """How many layer pixels away a far-field pixel reads the layers, for CoCs within ``lim``.

    Its gather radius is at most ``lim / s`` less the shrink: the far CoC is a weighted mean of
    CoCs within ``lim`` (the weights' floor lets it exceed that by a ten-thousandth), the near
    radius is bounded alike, and the table's ``kmax + 1`` bounds both. A radius r reads the
    shapes floor(r) and floor(r) + 1, and the upsampling one more pixel. Bounding by ``lim``
    rather than the table size (rounded up to a multiple of 8) keeps the render reuse's gather
    band as narrow as the blur."""
    radius = min(lim / s * (1.0 + 1e-3) - SHRINK[s], kmax + 1 - 1e-3)
    return int(math.floor(max(radius, 0.0))) + 2


def coc_from_disparity(disparity: np.ndarray, focus: float, aperture_px: float, max_coc_px: float,
                       *, out: np.ndarray | None = None) -> np.ndarray:
    """Signed CoC in pixels: ``aperture_px * (focus - disparity)`` clamped to +/- ``max_coc_px``.

    Negative = nearer than the focus plane, positive = behind it. A non-finite ``focus``,
    ``aperture_px`` or ``max_coc_px``, or a negative ``max_coc_px``, raises :class:`ConfigError`
    (a NaN CoC map would silently render as all in focus).
    """
    if not isinstance(disparity, np.ndarray) or disparity.ndim != 2:
        raise FrameShapeError(f"disparity must be an (H, W) array, got "
                              f"{getattr(disparity, 'shape', type(disparity).__name__)}")
    check_disparity(disparity, disparity.shape)
    focus, aperture, limit = lens_params(focus, aperture_px, max_coc_px)
    if out is None:
        out = np.empty(disparity.shape, np.float32)
    else:
        check_plane(out, disparity.shape, "out")
    with np.errstate(over="ignore", invalid="ignore"):
        np.subtract(np.float32(focus), disparity, out=out)
        out *= np.float32(aperture)
    np.clip(out, -limit, limit, out=out)
    return out


def lens_params(focus: float, aperture_px: float, max_coc_px: float) -> tuple[float, float, float]:
    """The three numbers of :func:`coc_from_disparity` as floats, checked: finite, and the CoC
    bound not negative."""
    values = []
    for name, v in (("focus", focus), ("aperture_px", aperture_px), ("max_coc_px", max_coc_px)):
        try:
            f = float(v)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{name} must be a number, got {v!r}") from e
        if not math.isfinite(f):
            raise ConfigError(f"{name} must be finite, got {f}")
        values.append(f)
    if values[2] < 0.0:
        raise ConfigError(f"max_coc_px must not be negative, got {values[2]}")
    return values[0], values[1], values[2]


class Lens:
    """The lens model of one :class:`RenderConfig`: tables built once, buffers once per size.

    Not thread-safe: one lens per thread (``render_bokeh`` keeps one per thread).
    """

    def __init__(self, config: RenderConfig | None = None) -> None:
        self.config = config or RenderConfig()
        self.luts: ColorLuts = make_luts(self.config.highlight_boost, self.config.highlight_threshold)
        self._shapes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._bufs: PerSize[_Buffers] = PerSize(_Buffers)
        self._rects: dict[int, np.ndarray] = {}
        self._rows = np.zeros(0, np.int32)
        # set by a renderer that sees one stream (render_disparity only): tiles reused on a still
        # camera (realtime.stages.render_reuse)
        self.reuse: TileReuse | None = None

    # -- public ------------------------------------------------------------------------------
    def render(self, frame_bgr: np.ndarray, coc_px: np.ndarray, matte: np.ndarray | None = None,
               out: np.ndarray | None = None, *, coc_limit: float | None = None) -> np.ndarray:
        """See :func:`render_bokeh`. ``coc_limit``: a bound the caller guarantees on ``|coc_px|``
        (saves two passes over the map; larger values are clamped to it)."""
        check_frame(frame_bgr, "frame_bgr")
        h, w = frame_bgr.shape[:2]
        check_plane(coc_px, (h, w), "coc_px")
        if matte is not None:
            check_matte(matte, (h, w))
        out = self._out(out, frame_bgr)
        coc = readonly(np.ascontiguousarray(coc_px))  # read-only: one kernel signature
        if coc_limit is None:
            if self._rows.shape[0] != h:
                self._rows = np.zeros(h, np.int32)
            bokeh.abs_max_bits(coc, self._rows)
            top = int(self._rows.max())
            lim = MAX_COC_PX if top >= 0x7F800000 else float(np.int32(top).view(np.float32))
        else:
            lim = float(coc_limit)
        self._run(frame_bgr, coc, matte, lim, out, None)
        return out

    def render_disparity(self, frame_bgr: np.ndarray, disparity: np.ndarray, focus: float,
                         aperture_px: float, max_coc_px: float, matte: np.ndarray | None,
                         out: np.ndarray | None, coc_out: np.ndarray) -> np.ndarray:
        """:meth:`render` of ``coc_from_disparity(disparity, focus, aperture_px, max_coc_px)``,
        the CoC computed in the same pass over the frame and written to ``coc_out`` (the same
        values as ``coc_from_disparity``)."""
        check_frame(frame_bgr, "frame_bgr")
        h, w = frame_bgr.shape[:2]
        check_disparity(disparity, (h, w))
        check_plane(coc_out, (h, w), "coc_out")
        if matte is not None:
            check_matte(matte, (h, w))
        focus, aperture, limit = lens_params(focus, aperture_px, max_coc_px)
        out = self._out(out, frame_bgr)
        disp = np.ascontiguousarray(disparity)
        self._run(frame_bgr, disp, matte, limit, out,
                  _FromDisparity(np.float32(focus), np.float32(aperture), coc_out))
        return out

    # -- the passes --------------------------------------------------------------------------
    @staticmethod
    def _out(out: np.ndarray | None, frame_bgr: np.ndarray) -> np.ndarray:
        if out is None:
            return np.empty_like(frame_bgr)
        _check_out(out, frame_bgr.shape)
        return out

    def _run(self, frame_bgr, src, matte, lim, out, from_disp: _FromDisparity | None) -> None:
        h, w = frame_bgr.shape[:2]
        # inputs go to the kernels read-only, whoever owns them: one signature each
        frame_bgr, src = readonly(frame_bgr), readonly(src)
        m = readonly(np.ascontiguousarray(matte)) if matte is not None else src
        tol = np.float32(self.config.subject_near_px * h / REFERENCE_HEIGHT)
        if not lim <= MAX_COC_PX:  # inf or NaN somewhere: clamp, never index with it
            lim = MAX_COC_PX
        lim = max(lim, 0.0)
        s = layer_scale(h, w, lim, self.config.half_res_far)
        kmax = int(math.ceil(lim / s)) + 1
        kmax = 8 * ((kmax + 7) // 8)  # few distinct table sizes
        b = self._buffers(h, w, s, kmax)
        with row_chunks():  # see realtime.core.threads
            self._render(frame_bgr, src, m, matte is not None, from_disp, s, lim, kmax, tol, b, out)

    def _render(self, frame_bgr, src, m, has_matte, from_disp, s, lim, kmax, tol, b, out) -> None:
        wt, areas = self._shape(kmax)
        d_max = kmax + 2
        rmax = np.float32(kmax + 1 - 1e-3)
        shrink = np.float32(SHRINK[s])
        flim = np.float32(lim)
        focus, aperture, coc_out = from_disp if from_disp is not None else _NO_DISPARITY
        plan = None
        if self.reuse is not None and from_disp is not None and has_matte:
            plan = self.reuse.plan(frame_bgr, src, m, (focus, aperture, flim, tol), b.rw.shape, s,
                                   far_reach(lim, s, kmax), (frame_bgr.shape, s, kmax, self.config))
        layers = (b.prefix, b.near_src, b.rw, b.fw, b.rnear, b.need0)
        bokeh.split_layers(frame_bgr, src, m, has_matte, (from_disp is not None, focus, aperture, flim), s,
                           self.luts.decode, tol, b.pad, b.split_scratch, b.near_dirty, coc_out, layers,
                           bokeh.ALL_TILES if plan is None else (plan.split, TILE_ROWS), b.alpha)
        # far field: foreground-free, its radius filled in behind the subject
        ksize = (2 * kmax + 1, 2 * kmax + 1)
        cv2.boxFilter(b.rw, -1, ksize, dst=b.box_rw, borderType=cv2.BORDER_REPLICATE)
        cv2.boxFilter(b.fw, -1, ksize, dst=b.box_fw, borderType=cv2.BORDER_REPLICATE)
        # upsampling reads the neighbours of every layer pixel that shows
        cv2.dilate(b.need0, _K3, dst=b.need)
        if plan is not None:  # the far field of the other tiles is kept
            np.bitwise_and(b.need, plan.gather, out=b.need)
        # the near field (rows the split found something in front of the focus plane on): every
        # pixel it can reach gathers with the largest near CoC around it
        near_on = bool(b.near_dirty.any())
        if near_on:
            rn = float(b.rnear.max())
            kn = min(max(int(math.ceil(rn)), 1), kmax)
            if kn not in self._rects:
                self._rects[kn] = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * kn + 1, 2 * kn + 1))
            cv2.dilate(b.rnear, self._rects[kn], dst=b.rad_near, borderType=cv2.BORDER_REPLICATE)
            np.subtract(b.rad_near, shrink, out=b.rad_near)
            np.clip(b.rad_near, 0.0, rmax, out=b.rad_near)
        gather.gather_far(b.prefix, b.rw, b.fw, b.box_rw, b.box_fw, shrink, rmax,
                         b.rad_near, near_on, b.need, wt, d_max, b.pad, b.scratch,
                         b.rad_rows, self.luts.encode, b.far)
        bg = b.bg
        if s > 1:
            # sizes that are multiples of s: the far field goes straight into the output, the
            # finish only touches what is not all far
            direct = b.bg_full.shape == out.shape and not np.may_share_memory(out, frame_bgr)
            bg = out if direct else b.bg_full
            cv2.resize(b.far, bg.shape[1::-1], dst=bg, interpolation=cv2.INTER_LINEAR)
        if near_on:
            # its own prefix buffer: the far layer's sums are kept for the tiles reused next time
            gather.row_prefix(b.near_src, b.pad, b.near_prefix)
            gather.gather_near(b.near_prefix, b.rad_near, wt, areas, d_max, b.pad, b.scratch,
                              b.near)
        bokeh.finish(frame_bgr, b.alpha, bg, self.luts.decode, self.luts.encode, b.near,
                     near_on, b.tap_y, b.tap_x, b.finish_scratch, out)

    # -- buffers -----------------------------------------------------------------------------
    def _shape(self, kmax: int) -> tuple[np.ndarray, np.ndarray]:
        if kmax not in self._shapes:
            wt = gather.shape_table(kmax, self.config.blades)
            self._shapes[kmax] = (wt, gather.shape_areas(wt))
        return self._shapes[kmax]

    def _buffers(self, h: int, w: int, s: int, kmax: int) -> _Buffers:
        b = self._bufs.get(h, w, s)
        b.ensure_pad(kmax + 2)
        return b


class _Buffers:
    """Everything the lens keeps for one frame size and layer scale ``s`` (allocated once)."""

    def __init__(self, h: int, w: int, s: int) -> None:
        hl, wl = (h + s - 1) // s, (w + s - 1) // s
        n = bokeh.threads()
        self.split_scratch = np.zeros((n, bokeh.split_scratch(s)), np.float32)
        self.near_dirty = np.zeros(hl, np.uint8)
        self.rad_rows = np.zeros((n, wl), np.float32)
        self.near_src = np.zeros((hl, wl, 4), np.float32)
        # rows padded to whole 8-byte words: the finish reads eight pixels at a time
        self.alpha = np.zeros((h, 8 * ((w + 7) // 8)), np.uint8)
        self.need0 = np.zeros((hl, wl), np.uint8)
        self.need = np.zeros((hl, wl), np.uint8)
        self.far = np.zeros((hl, wl, 3), np.uint8)
        self.near = np.zeros((hl, wl, 4), np.float32)
        self.scratch = np.zeros((n, 3, 4 * gather.RUN), np.float32)
        self.finish_scratch = np.zeros((n, 4), np.float32)
        self.tap_y = bokeh.bilinear_taps(h, hl, s)
        self.tap_x = bokeh.bilinear_taps(w, wl, s)
        self.rw, self.fw, self.box_rw, self.box_fw, self.rnear, self.rad_near = (
            np.zeros((hl, wl), np.float32) for _ in range(6))
        # s > 1: exactly s times the layer, so the resize keeps the layer's pixel centres (the
        # finish reads its top-left h x w part)
        self.bg_full = None if s == 1 else np.zeros((hl * s, wl * s, 3), np.uint8)
        self.bg = self.far if self.bg_full is None else self.bg_full
        self.pad = 0
        self.prefix = np.zeros((hl + 1, 4), np.float32)
        self.near_prefix = self.prefix

    def ensure_pad(self, pad: int) -> None:
        """Room for disks of ``pad`` pixels beyond the row ends in the prefix sums; grows only when
        a larger blur than ever before shows up."""
        if self.pad < pad:
            hl, wl = self.rw.shape
            # one more row, all zeros, stands for the rows outside the image
            self.prefix = np.zeros((hl + 1, 4 * (wl + 2 * pad + 1)), np.float32)
            self.near_prefix = np.zeros_like(self.prefix)
            self.pad = pad


_K3 = np.ones((3, 3), np.uint8)


class _FromDisparity(NamedTuple):
    """The source plane is disparity: the split turns it into CoC with these, into ``coc_out``."""

    focus: np.float32
    aperture: np.float32
    coc_out: np.ndarray


# the source plane is already the CoC: the split writes no CoC (a 1x1 stand-in)
_NO_DISPARITY = _FromDisparity(np.float32(0.0), np.float32(0.0), np.zeros((1, 1), np.float32))


def _check_out(out: object, shape: tuple[int, ...]) -> None:
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8:
        raise FrameTypeError(f"out must be a uint8 array of shape {shape}, got "
                             f"{getattr(out, 'dtype', type(out).__name__)}")
    if out.shape != shape or not out.flags.c_contiguous or not out.flags.writeable:
        raise FrameShapeError(f"out must be a writable C-contiguous array of shape {shape}, got "
                              f"{out.shape}")


_local = threading.local()


def render_bokeh(frame_bgr: np.ndarray, coc_px: np.ndarray, matte: np.ndarray | None = None, *,
                 out: np.ndarray | None = None, config: RenderConfig | None = None) -> np.ndarray:
    """Render ``frame_bgr`` through a lens with the signed CoC map ``coc_px``; returns uint8 BGR.

    ``matte`` (optional, soft, [0, 1]) marks the subject, which stays sharp unless it is clearly
    in front of the focus plane. ``config`` gives the aperture shape and highlight boost (the
    default preset otherwise); buffers are kept per thread and reused for frames of one size.
    """
    cfg = config or RenderConfig()
    lenses = getattr(_local, "lenses", None)
    if lenses is None:
        lenses = _local.lenses = {}
    lens = lenses.get(cfg)
    if lens is None:
        if len(lenses) > 4:
            lenses.clear()
        lens = lenses[cfg] = Lens(cfg)
    return lens.render(frame_bgr, coc_px, matte, out)


class Renderer(Stage):
    name = "render"

    def __init__(self, config: RenderConfig) -> None:
        super().__init__()
        self.config = config
        self.lens = Lens(config)
        self._reuse_from(config)
        self._coc: np.ndarray | None = None
        self._outs: list[np.ndarray] = []       # output buffers: one, two once a caller holds one
        self._held: np.ndarray | None = None    # the one a caller keeps (see hold)

    def hold(self, out: np.ndarray) -> bool:
        """The caller keeps ``out`` (a frame :meth:`process` returned) until it holds another:
        no later call writes into it, whether it succeeds, raises or is still running when the
        caller gave up on it (the next frames alternate over the other buffer). Lets a frame
        loop keep its last good frame without copying it. False if ``out`` is not one of ours."""
        self._held = next((b for b in self._outs if np.may_share_memory(out, b)), None)
        return self._held is not None

    def _reuse_from(self, config: RenderConfig) -> None:
        if not config.reuse_tiles:
            self.lens.reuse = None
        elif self.lens.reuse is None:
            self.lens.reuse = TileReuse(config.reuse_change_levels, config.reuse_refresh_frames)
        else:
            self.lens.reuse.configure(config.reuse_change_levels, config.reuse_refresh_frames)

    def reset(self) -> None:
        """A new stream: the next frame is rendered whole."""
        super().reset()
        if self.lens.reuse is not None:
            self.lens.reuse.invalidate()

    def configure(self, config: RenderConfig) -> None:
        """A new [render] section while running: the lens is rebuilt only when its tables change
        (aperture shape, highlight boost); buffers are kept."""
        super().configure(config)
        old = self.lens.config
        if (old.blades, old.highlight_boost, old.highlight_threshold) != (
                config.blades, config.highlight_boost, config.highlight_threshold):
            reuse, self.lens = self.lens.reuse, Lens(config)
            self.lens.reuse = reuse
        else:
            self.lens.config = config
        self._reuse_from(config)

    def scaled(self, height: int) -> tuple[float, float]:
        """(aperture_px, max_coc_px) for a frame of this height."""
        s = height / REFERENCE_HEIGHT
        return self.config.aperture_px * s, self.config.max_coc_px * s

    def process(self, frame: np.ndarray, timestamp_ms: int, matte: np.ndarray, disparity: np.ndarray,
                focus: float) -> tuple[np.ndarray, np.ndarray]:
        self._begin(timestamp_ms)
        check_frame(frame)
        h, w = frame.shape[:2]
        check_matte(matte, (h, w))
        check_disparity(disparity, (h, w))
        if not self._outs or self._outs[0].shape != frame.shape:
            self._outs = [np.empty_like(frame)]
            self._held = None
            self._coc = np.empty((h, w), np.float32)
        out = self._outs[0]
        if out is self._held:
            if len(self._outs) == 1:
                self._outs.append(np.empty_like(frame))
            out = self._outs[1]
        aperture, max_coc = self.scaled(h)
        if not self.config.effect:
            coc_from_disparity(disparity, focus, aperture, max_coc, out=self._coc)
            np.copyto(out, frame)
        else:
            # the CoC is computed by the renderer's own pass over the frame
            try:
                self.lens.render_disparity(frame, disparity, focus, aperture, max_coc, matte, out, self._coc)
            except BaseException:
                if self.lens.reuse is not None:  # the tiles it planned to keep may be half-written
                    self.lens.reuse.invalidate()
                raise
        return out, self._coc
