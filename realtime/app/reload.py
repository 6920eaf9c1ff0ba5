"""Live preset reload: edit the preset's TOML while running, it applies within a second.

:class:`PresetWatcher` is polled by the streaming loop once per frame (``poll()``); it looks at
the file at most every ``interval`` seconds. There is no watcher thread, on purpose: a new
preset must be applied between two frames on the loop's own thread anyway (``Pipeline.apply``
must not run during ``process``), so a thread would only hand its result over to the loop; and
polling from the loop makes the behaviour deterministic under test (an injectable clock).

Each look reads the whole file (a preset is a few hundred bytes: one open + read + hash every
0.25 s costs microseconds) and compares its hash with the last content seen. Reading rather
than trusting mtime and size catches two edits within one mtime tick, and reading by path
follows editors that save by writing a new file and renaming it over the old one.

- Content changed and loads: ``on_change(preset)`` at once.
- Content changed and does not load: reported through ``on_error(message)`` only if the content
  is still the same at the next look (an editor caught half-way through writing is not
  reported); the last good settings stay.
- The file vanished: reported if it is still missing after ``missing_grace`` seconds (a
  delete-and-recreate save is not reported).
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Callable

from realtime.core.config import Preset, load_preset, presets_dir
from realtime.core.errors import ConfigError, PortraitCamError

log = logging.getLogger(__name__)


def preset_file(spec: str | Path) -> Path:
    """The TOML file behind a preset spec: a path as given, a built-in name in ``configs/``."""
    s = str(spec)
    if s.endswith(".toml") or "/" in s or Path(s).is_file():
        return Path(s).expanduser()
    return Path(str(presets_dir().joinpath(f"{s}.toml")))


class PresetWatcher:
    """Watches one preset file; see the module docstring.

    ``spec`` is what was given to :func:`~realtime.core.config.load_preset` (a built-in name or a
    path); a built-in name watches its ``configs/NAME.toml``. The content present at
    construction (or at :meth:`watch`) is the baseline: it is not applied again.
    """

    def __init__(self, spec: str | Path, on_change: Callable[[Preset], object],
                 on_error: Callable[[str], object], interval: float = 0.25, *,
                 missing_grace: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if interval < 0:
            raise ValueError(f"interval must not be negative, got {interval}")
        self.on_change = on_change
        self.on_error = on_error
        self.interval = float(interval)
        self.missing_grace = float(missing_grace)
        self._clock = clock
        self._closed = False
        self.applied = 0   # presets handed to on_change
        self.errors = 0    # messages handed to on_error
        self.watch(spec)

    def watch(self, spec: str | Path, *, baseline: str | None | bool = True) -> None:
        """Watch another preset from now on (preset cycling). Its content now is the baseline,
        or ``baseline`` (a :meth:`digest` taken when that preset was loaded: an edit since then
        is applied at the next look)."""
        self.spec = spec
        self.path = preset_file(spec)
        self._seen = self._digest() if baseline is True else baseline  # content at the last look (None = missing)
        self._pending_error: tuple[str, str] | None = None  # (digest, message) awaiting confirmation
        self._missing_since: float | None = None
        self._missing_reported = False
        self._last_look = self._clock()

    @staticmethod
    def digest(spec: str | Path) -> str | None:
        """The content digest of a preset's file (None if it cannot be read)."""
        try:
            data = preset_file(spec).read_bytes()
        except OSError:
            return None
        return hashlib.blake2b(data, digest_size=16).hexdigest()

    def _digest(self) -> str | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:  # unreadable for a moment (permissions being changed...): like missing
            log.debug("cannot read %s: %s", self.path, e)
            return None
        return hashlib.blake2b(data, digest_size=16).hexdigest()

    def poll(self) -> bool:
        """Look at the file if ``interval`` has passed; True when a new preset was applied."""
        if self._closed:
            return False
        now = self._clock()
        if now - self._last_look < self.interval:
            return False
        self._last_look = now
        digest = self._digest()
        if digest is None:
            if self._missing_since is None:
                self._missing_since = now
            elif not self._missing_reported and now - self._missing_since >= self.missing_grace:
                self._missing_reported = True
                self._error(f"preset file {self.path} is gone; keeping the last good settings")
            return False
        if self._missing_since is not None and self._missing_reported:
            self._seen = None  # it came back: whatever it holds now is news
        self._missing_since = None
        self._missing_reported = False
        if digest == self._seen:
            if self._pending_error is not None and self._pending_error[0] == digest:
                self._error(self._pending_error[1])
                self._pending_error = None
            return False
        self._seen = digest
        self._pending_error = None
        try:
            preset = load_preset(self.spec)
        except ConfigError as e:
            self._pending_error = (digest, f"{e} (keeping the last good settings)")
            if self.interval == 0:  # nothing to wait for: report now
                self._error(self._pending_error[1])
                self._pending_error = None
            return False
        try:
            self.on_change(preset)
        except PortraitCamError as e:  # e.g. a model the new preset names cannot be loaded
            self._error(f"{self.path}: cannot apply the edited preset ({e}); keeping the last good settings")
            return False
        self.applied += 1
        return True

    def _error(self, message: str) -> None:
        self.errors += 1
        self.on_error(message)

    def close(self) -> None:
        """Stop watching (idempotent); later polls do nothing."""
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
