"""Public API kept where the README documents it: ``from realtime.render import
coc_from_disparity, render_bokeh``. The renderer lives in :mod:`realtime.stages.render`."""

from realtime.stages.render import Renderer, coc_from_disparity, render_bokeh

__all__ = ["Renderer", "coc_from_disparity", "render_bokeh"]
