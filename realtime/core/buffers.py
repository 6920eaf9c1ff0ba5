"""Allocate once per frame size: the one style every stage uses for its working arrays.

A stage's buffers are a small class whose ``__init__`` allocates everything one frame size needs
(typed attributes, no string keys); :class:`PerSize` holds the current instance and builds a new
one only when the key (the frame size and whatever else shapes the arrays) changes, so no frame
of a steady stream allocates anything.

(The debug views' ``realtime.app.debugviews.Buffers`` is a different thing on purpose: a pool of
display scratch arrays by name, shared by independent view functions and the control page's
previews at several sizes, not the working set of one stage.)
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class PerSize(Generic[T]):
    """The buffers ``build(*key)`` made for the last key asked for, rebuilt when the key changes."""

    def __init__(self, build: Callable[..., T]) -> None:
        self._build = build
        self._key: tuple | None = None
        self.current: T | None = None
        self.fresh = False  # the last get() built new buffers (a new size: temporal state starts over)

    def get(self, *key) -> T:
        if key != self._key or self.current is None:
            self.current = self._build(*key)
            self._key = key
            self.fresh = True
        else:
            self.fresh = False
        return self.current

    def clear(self) -> None:
        """Drop the buffers; the next :meth:`get` builds new ones."""
        self._key = None
        self.current = None
