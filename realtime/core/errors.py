"""The project's exception hierarchy.

Every error the project raises on purpose derives from :class:`PortraitCamError` *and* from
the builtin a caller would naturally catch (``ValueError`` for bad values, ``TypeError`` for
bad dtypes, ``OSError`` for devices and files...). The CLI turns a ``PortraitCamError`` into
one line on stderr and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PortraitCamError(Exception):
    """Base of every error the project raises deliberately; ``str(e)`` is a full sentence."""


class ConfigError(PortraitCamError, ValueError):
    """A preset or command-line option is malformed, unknown or out of range."""


class FrameTypeError(PortraitCamError, TypeError):
    """An array crossing a stage boundary has the wrong dtype."""


class FrameShapeError(PortraitCamError, ValueError):
    """An array crossing a stage boundary has the wrong shape or layout."""


class TimestampError(PortraitCamError, ValueError):
    """Timestamps handed to a stage did not strictly increase."""


class ModelError(PortraitCamError, RuntimeError):
    """A model file could not be found, fetched, verified or loaded."""


class ModelUnavailableError(ModelError, FileNotFoundError):
    """No copy of a model is on disk and it cannot be downloaded (offline)."""


class ModelHashError(ModelError):
    """A model file's sha256 does not match the registry; the file is not used."""


class SourceError(PortraitCamError, OSError):
    """A camera, video, image or folder input could not be opened or read."""


class SinkError(PortraitCamError, OSError):
    """An output (virtual camera, preview, file, folder) could not be opened or written."""


class VirtualCameraUnavailableError(SinkError):
    """No v4l2loopback device exists (or it cannot be opened)."""


class StageError(PortraitCamError, RuntimeError):
    """A pipeline stage failed, stalled or returned garbage."""


class ClosedError(PortraitCamError, RuntimeError):
    """A stage or pipeline was used after ``close()``."""
