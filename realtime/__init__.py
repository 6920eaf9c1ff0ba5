"""portrait-cam: a real-time webcam portrait mode (matte, monocular depth, lens bokeh)."""

from .config import Preset, load_preset
from .errors import PortraitCamError
from .pipeline import Pipeline, Result

__all__ = ["Pipeline", "Result", "Preset", "load_preset", "PortraitCamError"]
__version__ = "0.1.0"
