"""portrait-cam: a real-time webcam portrait mode (matte, monocular depth, lens bokeh)."""

from realtime.core.config import Preset, load_preset
from realtime.core.errors import PortraitCamError
from realtime.pipeline import Pipeline, Result

__all__ = ["Pipeline", "Result", "Preset", "load_preset", "PortraitCamError"]
__version__ = "0.1.0"
