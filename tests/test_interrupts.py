"""The interrupt guard: a Ctrl-C that a library turned into its own error is still an interrupt."""

from __future__ import annotations

import os
import signal

import pytest

from realtime.app.interrupts import interrupt_guard


def test_an_error_raised_by_the_interrupt_counts_as_the_interrupt():
    with pytest.raises(KeyboardInterrupt):
        with interrupt_guard():
            try:
                os.kill(os.getpid(), signal.SIGINT)  # the guard's handler raises KeyboardInterrupt here
            except KeyboardInterrupt as e:  # what an extension module's import does with it
                raise ImportError("initialization failed") from e


def test_an_error_without_an_interrupt_stays_itself():
    with pytest.raises(ImportError):
        with interrupt_guard():
            raise ImportError("a missing module")
