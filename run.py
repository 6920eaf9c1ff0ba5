#!/usr/bin/env python3
"""Thin entry point: ``python run.py --help``. Everything lives in :mod:`realtime.app.cli`."""

import sys

from realtime.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
