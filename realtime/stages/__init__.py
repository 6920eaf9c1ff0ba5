"""The pipeline's stages (segmentation, depth, temporal, focus, render). May import
``realtime.core`` and ``shaders``; never ``realtime.io`` or ``realtime.app``."""
