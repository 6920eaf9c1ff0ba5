"""Imports every kernel module so their warm-ups are registered (see :func:`shaders.warmup`)."""

from . import bokeh  # noqa: F401
from . import depth  # noqa: F401
from . import matte  # noqa: F401
from . import temporal  # noqa: F401
