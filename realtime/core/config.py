"""Presets: frozen dataclasses and Enums, loaded from ``configs/*.toml``.

A preset file holds only what differs from the defaults below (the defaults *are* the
``portrait`` look), optionally on top of another preset named by ``extends``::

    name = "subtle"
    extends = "portrait"
    [render]
    aperture_px = 30

Every key is checked at load time: an unknown key, a wrong type or an out-of-range value is a
:class:`~realtime.core.errors.ConfigError` whose message names the file, the key and what is
allowed. Nothing is silently clamped or "corrected".

Lengths in pixels (``aperture_px``, ``max_coc_px``, ...) are given for a 720-pixel-high frame
and scaled with the frame height, so a preset looks the same at 480p and 1080p.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import stat
import sys
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from realtime.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

REFERENCE_HEIGHT = 720  # lengths in presets are given for a frame this many pixels high


def knob(default: Any, lo: float | None = None, hi: float | None = None, doc: str = "") -> Any:
    """A dataclass field with an allowed closed range and a one-line description."""
    return field(default=default, metadata={"range": (lo, hi), "doc": doc})


class SegModel(str, enum.Enum):
    AUTO = "auto"            # landscape model for frames wider than 4:3, square otherwise
    LANDSCAPE = "landscape"  # selfie_segmentation_landscape.tflite, 144x256
    SQUARE = "square"        # selfie_segmentation.tflite, 256x256


class MatteRefine(str, enum.Enum):
    GUIDED = "guided"      # edge-aware upsampling guided by the full-resolution frame
    BILINEAR = "bilinear"  # plain bilinear upsampling of the model's confidence


class ModelResize(str, enum.Enum):
    AREA = "area"      # the frame area-averaged down to the model's input
    LINEAR = "linear"  # bilinear (OpenCV INTER_LINEAR)


class MatteQuality(str, enum.Enum):
    FAST = "fast"  # one model run per frame on the people's window (live sources)
    HIGH = "high"  # also the horizontally flipped window, averaged (file jobs)


class DepthBackend(str, enum.Enum):
    ONNXRUNTIME = "onnxruntime"
    OPENCV = "opencv"


class DepthFit(str, enum.Enum):
    LETTERBOX = "letterbox"  # whole frame, padded to the model's aspect ratio
    CROP = "crop"            # centre crop to the model's aspect ratio (edges reuse the nearest depth)


class FocusMode(str, enum.Enum):
    FACE = "face"      # nearest/largest face, person median when no face is seen
    PERSON = "person"  # median disparity of the person matte
    FIXED = "fixed"    # focus.disparity
    POINT = "point"    # disparity under (focus.point_x, focus.point_y), normalised coordinates


@dataclass(frozen=True)
class CaptureConfig:
    width: int = knob(1280, 16, 7680, "requested camera width (pixels)")
    height: int = knob(720, 16, 4320, "requested camera height (pixels)")
    fps: float = knob(30.0, 1.0, 240.0, "requested camera and output frame rate")
    fourcc: str = knob("MJPG", doc="camera pixel format to ask for (MJPG gives 720p30 on most USB webcams)")
    one_thread_share: float = knob(0.7, 0.0, 1.0, "live sources: the kernels run on one thread (less CPU, the other "
                                   "core left free) while a frame on one thread takes at most this share of the frame "
                                   "interval; 0 = always every thread")


@dataclass(frozen=True)
class SegmentationConfig:
    model: SegModel = knob(SegModel.AUTO, doc="which selfie segmentation model to run")
    model_path: str = knob("", doc="explicit model file; empty = the model store")
    refine: MatteRefine = knob(MatteRefine.GUIDED, doc="how the low-resolution confidence becomes a full-resolution matte")
    refine_radius_px: int = knob(24, 1, 128, "guided filter window radius, in pixels of a 720-pixel-high frame")
    refine_eps: float = knob(1e-3, 1e-6, 1.0, "guided filter regularisation (larger = smoother, less edge-following)")
    refine_guide_scale: float = knob(1.25, 1.0, 2.0, "the guided filter's guide is the frame area-averaged to this many times "
                                     "the model's input size (capped at the frame's), the confidence upsampled to it bilinearly")
    refine_detail: float = knob(1.0, 0.0, 1.0, "how much of the model's own shape is kept where colour does not explain it (0 = plain guided filter)")
    refine_protect: float = knob(8.0, 0.0, 100.0, "keeps the model's value where it is sure (p near 0 or 1), so no holes open inside the person; 0 = off")
    refine_contrast: float = knob(1.15, 1.0, 3.0, "steepens the matte's transition about alpha 1/2 (k (alpha - 1/2) + 1/2, clipped): a narrower soft band, "
                                  "the same outline; 1 = off")
    refine_smooth: bool = knob(True, doc="a 3x3 box mean of the filter's coefficients before they are applied, so no "
                               "step of their grid shows in the matte (He et al. average a and b over the window)")
    crop: bool = knob(True, doc="run the model on a window around the people (found by a whole-frame pass, then "
                      "followed from the previous matte) so they fill its input; false = the whole frame")
    crop_margin: float = knob(0.15, 0.0, 1.0, "the window reaches this share of the people's box beyond it on each side")
    crop_refresh_frames: int = knob(30, 1, 10000, "in a stream, a whole-frame pass every this many frames finds people "
                                    "who entered outside the window")
    first_frame_views: bool = knob(True, doc="on a first frame (a still photo, a frame after reset()) the model also "
                                   "runs on a tighter window around the people and on both windows mirrored, averaged "
                                   "(a still is not bound by a stream's per-frame budget; with crop on); streams' later frames are unchanged")
    first_frame_square_weight: float = knob(0.35, 0.0, 1.0, "a first frame wider than 4:3 and at most 1.6:1 (a 3:2 photo: "
                                            "between the two models' shapes) also gets its first-frame views from the square "
                                            "model, blended in with this weight (model auto, quality fast); 0 = off")
    fade_unsure_background: bool = knob(False, doc="unsure confidence far from the person's core (a plain backdrop the "
                                        "model holds at 0.6-0.9 beside the body) fades out between 3% and 8% of the "
                                        "model input's side from it, so it does not become a semi-transparent plate "
                                        "(off by default: it also fades people the model is unsure of, docs/matte.md)")
    resize: ModelResize = knob(ModelResize.AREA, doc="how the window is resized to the model's input")
    quality: MatteQuality = knob(MatteQuality.FAST, doc="fast = one model run per frame; high = also the mirrored "
                                 "window, averaged (file jobs: about twice the model's time)")


@dataclass(frozen=True)
class DepthConfig:
    enabled: bool = knob(True, doc="run the monocular depth model; off = uniform background blur")
    backend: DepthBackend = knob(DepthBackend.ONNXRUNTIME, doc="inference engine for the depth model")
    model_path: str = knob("", doc="explicit model file; empty = the model store")
    threads: int = knob(0, 0, 16, "onnxruntime intra-op threads for the depth model (0 = 2 when synchronous, "
                        "1 in its own thread, leaving the other core to the rest of the pipeline)")
    spin: bool = knob(True, doc="in the caller's thread (asynchronous off) with 2+ threads: onnxruntime's threads "
                      "spin-wait briefly between the steps of a run (faster on idle cores, a little slower when "
                      "other programs load them: docs/depth.md); never between runs, never in the model's own thread")
    fit: DepthFit = knob(DepthFit.LETTERBOX, doc="how a frame is fitted to the model's 320x192 input")
    every_n_frames: int = knob(1, 1, 30, "run the depth model on every n-th frame, reuse the last result between")
    still_interval: int = knob(30, 1, 30, "when the background did not change since the model last ran, run it "
                               "again only after this many frames (the stabiliser holds the depth between); "
                               "any change beyond still_change_share runs it on that frame; 1 = every frame")
    still_change_levels: float = knob(6.0, 0.0, 255.0, "luma change (levels, at model resolution) of a background cell "
                                      "since the model last ran that counts it as changed")
    still_change_share: float = knob(0.003, 0.0, 1.0, "share of the background's model-resolution cells changed by "
                                     "still_change_levels or more that runs the model at once")
    asynchronous: bool = knob(True, doc="run the depth model in its own thread (newest result wins, depth one frame "
                              "behind the matte); false = in the caller's thread, every frame in order")
    overlap: bool = knob(True, doc="with asynchronous: start the model on each frame before segmentation, on the "
                         "second core, and use that same frame's depth (no lag, both cores busy)")
    async_max_lag: int = knob(1, 1, 30, "in its own thread, the depth is at most this many model runs behind "
                              "(the caller waits rather than use older depth)")
    range_low_percentile: float = knob(2.0, 0.0, 49.0, "robust far end of the background's model output")
    range_high_percentile: float = knob(98.0, 51.0, 100.0, "robust near end of the background's model output")
    range_smoothing: float = knob(0.9, 0.0, 0.999, "smoothing of the range while it moves to a new value (0 = jump)")
    range_deadband: float = knob(0.08, 0.0, 0.5, "range changes smaller than this fraction of it are ignored")
    headroom: float = knob(0.25, 0.0, 0.9, "part of [0, 1] kept above the background's near end for the person")
    still_smoothing: float = knob(0.95, 0.0, 0.99, "per-pixel smoothing of the model output where the image is still")
    motion_low: float = knob(3.0, 0.0, 255.0, "luma change (levels, at model resolution) where smoothing starts to give way")
    motion_high: float = knob(12.0, 0.0, 255.0, "luma change (levels) from which depth follows the model at once")
    person_margin: float = knob(0.05, 0.0, 0.5, "the person is at least this much nearer than the background prior")
    person_prior_percentile: float = knob(75.0, 0.0, 100.0, "background percentile the person is assumed to be in front of")
    person_relief: float = knob(0.05, 0.0, 0.5, "how far the person's own depth may vary around the person's plane")
    person_min_cutoff_hz: float = knob(1.0, 0.01, 30.0, "One Euro filter of the person's plane: cutoff when still")
    person_beta: float = knob(2.0, 0.0, 100.0, "One Euro filter of the person's plane: speed coefficient")
    edge_smoothing: float = knob(0.9, 0.0, 0.99, "smoothing of small matte changes where the matte cuts the disparity")
    edge_follow: float = knob(0.5, 0.01, 1.0, "matte change from which the disparity edge follows at once")
    background_disparity: float = knob(0.25, 0.0, 1.0, "disparity given to the background when depth is off")
    fade_behind: bool = knob(True, doc="fade the matte where it is unsure, far from the person's core and the depth "
                             "model puts it behind the person (a backdrop the segmenter half kept would stay a sharp "
                             "plate; docs/matte.md); the pipeline carries the faded matte on")


@dataclass(frozen=True)
class FocusConfig:
    mode: FocusMode = knob(FocusMode.FACE, doc="what the lens focuses on")
    disparity: float = knob(0.8, 0.0, 1.0, "focus disparity in fixed mode (and when nothing is seen)")
    point_x: float = knob(0.5, 0.0, 1.0, "focus point x in point mode (0 = left, 1 = right)")
    point_y: float = knob(0.5, 0.0, 1.0, "focus point y in point mode (0 = top, 1 = bottom)")
    min_cutoff_hz: float = knob(0.5, 0.01, 30.0, "One Euro filter: cutoff when still (lower = steadier)")
    beta: float = knob(2.0, 0.0, 100.0, "One Euro filter: speed coefficient (higher = less lag when moving)")
    face_every_n_frames: int = knob(6, 1, 60, "run the face detector on every n-th frame, keep the last face between")
    face_still_factor: int = knob(3, 1, 10, "while the face stays put (its last two detections agree, it is still "
                                  "on the person's matte and as much person is in frame), run the detector this many "
                                  "times less often; 1 = never")
    face_input_width: int = knob(320, 128, 1920, "width of the downscaled image the face detector sees (pixels)")
    face_min_confidence: float = knob(0.5, 0.0, 1.0, "face detector score below which a detection is ignored")
    face_hold_ms: float = knob(500.0, 0.0, 10000.0, "keep focusing on the last face this long after it is lost")


@dataclass(frozen=True)
class TemporalConfig:
    """Per-pixel stabiliser of the matte and the disparity (see docs/temporal.md)."""

    enabled: bool = knob(True, doc="stabilise matte and disparity over time")
    matte_smoothing: float = knob(0.95, 0.0, 0.99, "smoothing of the matte where the image is still and the "
                                  "model agrees with itself (0 = none; 0.95 averages over ~20 frames)")
    depth_smoothing: float = knob(0.8, 0.0, 0.99, "smoothing of the disparity where the image is still and "
                                  "the depth agrees with itself")
    motion_threshold: float = knob(8.0, 0.5, 255.0, "change of a 4x4 tile's mean level (0..255, after the "
                                   "frame's global change) at which its pixels follow at once; smoothing "
                                   "fades out from half this value")
    matte_follow: float = knob(0.5, 0.01, 1.0, "change of alpha against the stabilised value at which a pixel "
                               "follows at once, whatever the image did; fades in from half this value")
    depth_follow: float = knob(0.3, 0.01, 1.0, "change of disparity against the stabilised value at which a "
                               "pixel follows at once; fades in from half this value")
    moving_share: float = knob(0.15, 0.01, 1.0, "share of the frame's 4x4 tiles in motion (a moving camera, a "
                               "person filling the frame) from which every pixel leans toward the current frame: "
                               "unregistered history lags there; the lean grows to global_follow at 1.75x this")
    global_follow: float = knob(0.75, 0.0, 1.0, "how far every pixel follows at once when the share of moving "
                                "tiles reaches 1.75x moving_share (0 = off, 1 = no smoothing then)")
    hysteresis: float = knob(0.1, 0.0, 0.45, "dead band around alpha 0.5: a still pixel changes side only when "
                             "its smoothed alpha leaves 0.5 +/- this (0 = off)")
    scene_cut_threshold: float = knob(0.2, 0.05, 1.0, "share of the luma histogram that changes between two "
                                      "frames for a scene cut (forgets the state)")
    reset_after_gap_ms: int = knob(1000, 0, 600000, "a gap this long between two frames forgets the state "
                                   "(the source paused or was switched; 0 = never)")


@dataclass(frozen=True)
class RenderConfig:
    effect: bool = knob(True, doc="render the lens blur; off = pass the frame through")
    aperture_px: float = knob(60.0, 0.0, 1000.0, "CoC in pixels per unit of disparity from the focus plane, at 720p")
    max_coc_px: float = knob(24.0, 0.0, 128.0, "largest blur radius in pixels at 720p (scaled with frame height)")
    blades: int = knob(0, 0, 16, "aperture blades (0 = round disk, otherwise 5..16)")
    highlight_boost: float = knob(3.0, 1.0, 20.0, "gain for bright out-of-focus points (1 = none)")
    highlight_threshold: float = knob(0.85, 0.0, 1.0, "sRGB level above which highlights are boosted")
    half_res_far: bool = knob(True, doc="render the blur layers at reduced resolution when the blur is large: "
                              "half at 720p, a third at 1080p (much faster, same look; small frames and small "
                              "blurs stay full resolution; false = always full resolution)")
    subject_near_px: float = knob(3.0, 0.0, 128.0, "CoC in front of the focus plane (px at 720p) up to which the "
                                  "subject (matte) stays sharp; beyond it a hand near the lens blurs")
    reuse_tiles: bool = knob(True, doc="on a still camera render again only the tiles whose frame, matte or CoC "
                             "changed beyond noise, and the blur's reach around them; the rest of the blurred "
                             "background is kept (a pan, a cut or a light switched on renders the whole frame)")
    reuse_change_levels: float = knob(4.0, 0.0, 255.0, "change of an 8x8 block's mean colour (levels) since its tile "
                                      "was last rendered that renders it again")
    reuse_refresh_frames: int = knob(30, 1, 600, "the whole frame is rendered at least every this many frames")


@dataclass(frozen=True)
class SafetyConfig:
    privacy: bool = knob(True, doc="fail closed: never show the unprocessed frame when a stage fails")
    stage_deadline_ms: float = knob(200.0, 10.0, 10000.0, "a stage slower than this counts as stalled")


@dataclass(frozen=True)
class Preset:
    name: str = "portrait"
    description: str = "Face in focus, background falls off with depth, round bokeh."
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    depth: DepthConfig = field(default_factory=DepthConfig)
    focus: FocusConfig = field(default_factory=FocusConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)

    source: str = field(default="", compare=False)  # where it was loaded from, for messages

    def replace(self, changes: Mapping[str, Mapping[str, Any]] | None = None, **top: Any) -> "Preset":
        """A copy with ``{"section": {"key": value}}`` changes, validated like a file."""
        return _apply(self, dict(changes or {}), origin="override", top=top)


_SECTION_TYPES = {
    "capture": CaptureConfig,
    "segmentation": SegmentationConfig,
    "depth": DepthConfig,
    "focus": FocusConfig,
    "temporal": TemporalConfig,
    "render": RenderConfig,
    "safety": SafetyConfig,
}
_TOP_KEYS = ("name", "description", "extends")


def _field_type(cls: type, name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def _convert(value: Any, typ: Any, key: str, meta: Mapping[str, Any], origin: str) -> Any:
    """Check one value against its declared type and range; returns the typed value."""
    where = f"{origin}: {key}"
    if isinstance(typ, type) and issubclass(typ, enum.Enum):
        allowed = ", ".join(repr(m.value) for m in typ)
        if isinstance(value, typ):
            return value
        if isinstance(value, str):
            try:
                return typ(value.lower())
            except ValueError:
                pass
        raise ConfigError(f"{where} = {value!r} is not allowed; use one of {allowed}")
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ConfigError(f"{where} must be a whole number, got {value!r}")
    elif typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(f"{where} is far out of range (a number with hundreds of digits)") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
    else:  # pragma: no cover - a field type the loader does not know is a programming error
        raise TypeError(f"config field {key} has unsupported type {typ!r}")
    lo, hi = meta.get("range", (None, None))
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        shown = repr(value) if abs(value) < 1e24 else "a number with dozens of digits or more"
        raise ConfigError(f"{where} = {shown} is out of range; allowed {lo}..{hi}")
    return value


def _apply_section(current: Any, table: Any, section: str, origin: str) -> Any:
    cls = type(current)
    if not isinstance(table, Mapping):
        raise ConfigError(f"{origin}: [{section}] must be a table of keys, got {table!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    changes = {}
    for key, value in table.items():
        if key not in fields:
            allowed = ", ".join(fields)
            raise ConfigError(f"{origin}: unknown key '{section}.{key}'; allowed keys in [{section}]: {allowed}")
        f = fields[key]
        changes[key] = _convert(value, _field_type(cls, key), f"{section}.{key}", f.metadata, origin)
    return dataclasses.replace(current, **changes)


def _apply(base: Preset, data: dict[str, Any], origin: str, top: Mapping[str, Any] | None = None) -> Preset:
    changes: dict[str, Any] = {}
    for key, value in {**data, **(top or {})}.items():
        if key in _SECTION_TYPES:
            changes[key] = _apply_section(getattr(base, key), value, key, origin)
        elif key in ("name", "description"):
            if not isinstance(value, str):
                raise ConfigError(f"{origin}: {key} must be a string, got {value!r}")
            changes[key] = value
        elif key == "extends":
            continue
        else:
            allowed = ", ".join([*_TOP_KEYS, *(f"[{s}]" for s in _SECTION_TYPES)])
            raise ConfigError(f"{origin}: unknown key '{key}'; allowed at the top level: {allowed}")
    result = dataclasses.replace(base, **changes)
    _check_consistency(result, origin)
    return result


def _check_consistency(p: Preset, origin: str) -> None:
    """Rules that involve more than one key."""
    if p.render.blades not in (0,) and p.render.blades < 5:
        raise ConfigError(f"{origin}: render.blades = {p.render.blades} is not allowed; use 0 (round) or 5..16")
    if p.depth.range_low_percentile >= p.depth.range_high_percentile:
        raise ConfigError(f"{origin}: depth.range_low_percentile must be below depth.range_high_percentile")
    if p.depth.motion_low >= p.depth.motion_high:
        raise ConfigError(f"{origin}: depth.motion_low ({p.depth.motion_low}) must be below "
                          f"depth.motion_high ({p.depth.motion_high})")


def presets_dir():
    """``configs/`` of a source checkout, else the copy installed as ``realtime.presets``."""
    here = Path(__file__).resolve().parents[2] / "configs"
    if here.is_dir():
        return here
    return resources.files("realtime.presets")


def builtin_presets() -> list[str]:
    """Names of the presets shipped in ``configs/``."""
    return sorted(p.name[:-5] for p in presets_dir().iterdir() if p.name.endswith(".toml"))


MAX_PRESET_BYTES = 1 << 20   # a preset is a few hundred bytes; anything near this is not a preset
MAX_EXTENDS_DEPTH = 16


def _read_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{origin}: TOML syntax error: {e}") from e
    except ValueError as e:  # e.g. an integer longer than Python converts (4300 digits)
        raise ConfigError(f"{origin}: a value cannot be read ({e})") from e
    except RecursionError:
        raise ConfigError(f"{origin}: arrays or tables are nested too deeply") from None


def _read_preset_file(path: Path) -> str:
    """The text of a preset file: a regular file of at most MAX_PRESET_BYTES, UTF-8 (a BOM is
    allowed). Devices, FIFOs and folders are refused without reading (``/dev/zero`` would never
    end, a FIFO would block)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as e:
        raise ConfigError(f"preset file {path} does not exist; give an existing .toml file or one of: "
                          f"{', '.join(builtin_presets())}") from e
    except OSError as e:
        raise ConfigError(f"preset file {path} cannot be read ({e.strerror or e})") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"preset file {path} is not a regular file (a folder, device or pipe); "
                              "give a .toml file")
        if st.st_size > MAX_PRESET_BYTES:
            raise ConfigError(f"preset file {path} is {st.st_size} bytes, more than a preset can be "
                              f"({MAX_PRESET_BYTES} bytes); give a .toml preset")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_PRESET_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"preset file {path} cannot be read ({e.strerror or e})") from e
    finally:
        os.close(fd)
    if len(data) > MAX_PRESET_BYTES:
        raise ConfigError(f"preset file {path} is larger than {MAX_PRESET_BYTES} bytes; give a .toml preset")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"preset file {path} is not UTF-8 text ({e.reason} at byte {e.start})") from e


def load_preset(name_or_path: str | Path = "portrait", _seen: tuple[tuple[str, str], ...] = ()) -> Preset:
    """Load a preset by name (``configs/NAME.toml``) or from a ``.toml`` file path."""
    spec = str(name_or_path)
    if spec.endswith(".toml") or "/" in spec or Path(spec).is_file():
        path = Path(spec).expanduser()
        origin = str(path)
        key = os.path.realpath(path)  # ../toml/self.toml is the same file as self.toml
        text = _read_preset_file(path)
    else:
        names = builtin_presets()
        if spec not in names:
            raise ConfigError(f"unknown preset '{spec}'; choose one of: {', '.join(names)} (or give a .toml file)")
        origin = f"configs/{spec}.toml"
        builtin = presets_dir().joinpath(f"{spec}.toml")
        key = os.path.realpath(builtin) if isinstance(builtin, Path) else origin
        text = builtin.read_text(encoding="utf-8-sig")
    seen_keys = [k for k, _ in _seen]
    if key in seen_keys:
        raise ConfigError(f"{origin}: 'extends' forms a loop: {' -> '.join([*(o for _, o in _seen), origin])}")
    if len(_seen) >= MAX_EXTENDS_DEPTH:
        raise ConfigError(f"{origin}: 'extends' chain is longer than {MAX_EXTENDS_DEPTH} presets")
    data = _read_toml(text, origin)
    extends = data.get("extends")
    if extends is not None:
        if not isinstance(extends, str):
            raise ConfigError(f"{origin}: extends must be a preset name or file, got {extends!r}")
        if not (extends.endswith(".toml") or "/" in extends) or Path(extends).is_absolute():
            base_spec: str | Path = extends
        else:  # a relative file is relative to the preset that names it
            base_spec = Path(origin).parent / extends
        base = load_preset(base_spec, (*_seen, (key, origin)))
    else:
        base = Preset()
    data.setdefault("name", Path(origin).stem)
    preset = _apply(base, data, origin)
    return dataclasses.replace(preset, source=origin)


def describe_knobs() -> list[tuple[str, str, str, str]]:
    """(key, default, allowed, doc) for every knob; used by the docs and ``--help``."""
    rows = []
    for section, cls in _SECTION_TYPES.items():
        for f in dataclasses.fields(cls):
            typ = _field_type(cls, f.name)
            default = f.default.value if isinstance(f.default, enum.Enum) else f.default
            if isinstance(typ, type) and issubclass(typ, enum.Enum):
                allowed = " | ".join(m.value for m in typ)
            elif typ is bool:
                allowed = "true | false"
            elif typ is str:
                allowed = "text"
            else:
                lo, hi = f.metadata.get("range", (None, None))
                allowed = f"{lo}..{hi}"
            rows.append((f"{section}.{f.name}", repr(default).lower() if isinstance(default, bool) else repr(default),
                         allowed, f.metadata.get("doc", "")))
    return rows
