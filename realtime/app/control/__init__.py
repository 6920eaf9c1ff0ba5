"""The browser control page (``run.py --control``): a local web page with the live preview, the
knobs, click-to-focus and the status, for laptops and OBS docks.

May import ``realtime.core`` and ``realtime.app``; nothing imports it but the CLI. Its web
library (aiohttp) is the optional extra ``control``.
"""
