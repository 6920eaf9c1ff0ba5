"""Importing MediaPipe without the parts nothing here uses.

``import mediapipe`` imports every task: its vision package imports its drawing helpers, which
import matplotlib's pyplot, and its audio package imports ``sounddevice``, which looks for
PortAudio by running ``ldconfig`` and the C compiler: most of importing MediaPipe, and so a
good part of a warm start (docs/cost.md, "Cold start"). :func:`mediapipe` imports it with those
modules loaded lazily (``importlib.util.LazyLoader``): they are real modules that execute the
moment anything touches one of their attributes; the segmenter and the face detector never do.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from types import ModuleType

LAZY = frozenset({"mediapipe.tasks.python.vision.drawing_utils", "mediapipe.tasks.python.vision.drawing_styles",
                  "mediapipe.tasks.python.audio"})
_lock = threading.Lock()


class _LazyFinder(importlib.abc.MetaPathFinder):
    """Finds the modules of :data:`LAZY` where the path finder would, with a lazy loader."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in LAZY:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def mediapipe() -> ModuleType:
    """The ``mediapipe`` package (imported on the first call, its drawing helpers lazily)."""
    mod = sys.modules.get("mediapipe")
    if mod is not None:
        return mod
    with _lock:
        finder = _LazyFinder()
        sys.meta_path.insert(0, finder)
        try:
            import mediapipe as mp
        finally:
            sys.meta_path.remove(finder)
    return mp
