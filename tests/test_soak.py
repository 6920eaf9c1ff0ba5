"""Soak test (slow, not run by default; ``python -m pytest -m slow`` or ``python run.py bench --soak``):
20,000 frames through the real pipeline with flat memory and no thread growth."""

from __future__ import annotations

import pytest

from realtime.devtools.bench import soak


@pytest.mark.slow
def test_soak_20000_frames_memory_and_threads_flat():
    r = soak("portrait", 20000, size=(640, 360))
    print(f"soak: RSS {r['rss_start_mb']:.0f} -> {r['rss_end_mb']:.0f} MB, growth {r['rss_growth_mb']:+.1f} MB, "
          f"threads {r['threads_start']} -> {r['threads_end']}, {r['seconds']:.0f} s")
    assert r["rss_growth_mb"] < 20.0
    assert r["threads_end"] <= r["threads_start"]
