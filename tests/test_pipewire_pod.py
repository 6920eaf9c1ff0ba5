"""The PipeWire camera's format descriptions and frame layouts, without a PipeWire session
(the session tests in test_pipewire.py read them back through real consumers)."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from realtime.io import pipewire_pod as pod


def test_offer_order_puts_the_preference_first_and_keeps_every_format():
    assert pod.offer_order("YUY2") == ["YUY2", "I420", "NV12", "UYVY", "BGRx", "RGBx"]
    assert sorted(pod.offer_order("I420")) == sorted(pod.SPA_FORMATS)
    with pytest.raises(ValueError, match="one of I420, YUY2"):
        pod.offer_order("MJPG")


@pytest.mark.parametrize("fmt", list(pod.SPA_FORMATS))
def test_an_offered_format_reads_back(fmt):
    blob = pod.enum_format(fmt, 1280, 720, (30000, 1001))
    assert len(blob) % 8 == 0 and struct.unpack_from("<I", blob)[0] == len(blob) - 8
    assert pod.parse_format(blob) == {"format": fmt, "width": 1280, "height": 720, "rate": (30000, 1001)}


def test_a_format_left_as_a_choice_reads_its_default():
    choice = pod._pod(19, struct.pack("<IIII", 3, 0, 4, 3) + struct.pack("<III", 4, 4, 2))  # Enum(YUY2; YUY2, I420)
    blob = pod._object(0x40003, pod.PARAM_FORMAT, [(0x20001, choice)])
    assert pod.parse_format(blob) == {"format": "YUY2"}
    with pytest.raises(ValueError):
        pod.parse_format(pod._int(3))


@pytest.mark.parametrize("size", [(320, 240), (322, 242)])
@pytest.mark.parametrize("fmt", list(pod.SPA_FORMATS))
def test_frames_are_laid_out_with_the_strides_consumers_assume(fmt, size):
    """322 wide: the chroma rows (161 bytes) are padded to 164 as GStreamer lays them out."""
    w, h = size
    rng = np.random.default_rng(1)
    bgr = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), np.uint8), (9, 9), 3)
    data = np.frombuffer(pod.frame_for(fmt, "BGR", bgr.tobytes(), w, h), np.uint8)
    planes, total = pod.layout(fmt, w, h)
    assert data.size == total
    tight = np.concatenate([data[o: o + s * n].reshape(n, s)[:, :r].reshape(-1) for o, s, n, r in planes])
    back = {"I420": lambda a: cv2.cvtColor(a.reshape(h * 3 // 2, w), cv2.COLOR_YUV2BGR_I420),
            "NV12": lambda a: cv2.cvtColor(a.reshape(h * 3 // 2, w), cv2.COLOR_YUV2BGR_NV12),
            "YUY2": lambda a: cv2.cvtColor(a.reshape(h, w, 2), cv2.COLOR_YUV2BGR_YUY2),
            "UYVY": lambda a: cv2.cvtColor(a.reshape(h, w, 2), cv2.COLOR_YUV2BGR_UYVY),
            "BGRx": lambda a: a.reshape(h, w, 4)[..., :3],
            "RGBx": lambda a: a.reshape(h, w, 4)[..., 2::-1]}[fmt](tight)
    diff = np.abs(back.astype(np.int16) - bgr).mean()
    assert diff == 0.0 if fmt in ("BGRx", "RGBx") else diff < 3.0, diff
    if w % 8 == 0:
        assert all(s == r for _, s, _, r in planes)


def test_a_yuv_frame_fed_in_the_node_format_goes_through_untouched():
    w, h = 64, 32
    i420 = np.arange(w * h * 3 // 2, dtype=np.uint8).tobytes()
    assert pod.frame_for("I420", "I420", i420, w, h) == i420
    black = pod.black("YUY2", w, h)
    assert np.abs(pod.to_bgr("YUY2", black, w, h).astype(int)).max() <= 1
