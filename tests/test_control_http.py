"""The control page's server at the HTTP level, with the real pipeline streaming a talking-head
clip in real time: every security rule (token, Host, Origin, ranges, a client that never
reads), the API that changes the session, the WebSocket feed and "save as preset".
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA
from realtime.app.control import knobs
from realtime.app.control.preview import PreviewFeed
from realtime.app.control.server import ControlServer
from realtime.app.controls import Controller
from realtime.app.loop import run_stream
from realtime.app.session import Session
from realtime.core.config import load_preset
from realtime.io.sinks import Sink
from realtime.io.sources import LiveSource, ReplayReader
from realtime.pipeline import Pipeline

CLIP = DATA / "talking" / "1.mp4"
SIZE = (320, 180)


class Counter(Sink):
    """Counts frames the loop delivered; the test stops the loop through it."""

    def write(self, out) -> None:
        self.written += 1


class Env:
    def __init__(self, tmp: Path) -> None:
        self.preset_file = tmp / "look.toml"
        self.preset_file.write_text('extends = "portrait"\nname = "look"\n')
        self.pipe = Pipeline(load_preset(self.preset_file))
        self.pipe.warmup(SIZE)
        self.session = Session(self.pipe, live_reload=True, reload_interval=0.1)
        self.governor = self.session.governor(30.0, window=1, cooldown_s=0.0)
        self.controller = Controller(self.pipe, session=self.session)
        self.feed = PreviewFeed(self.session)
        self.saved = tmp / "presets"
        self.server = ControlServer(self.session, self.feed, port=0, keys=self.controller.handle_key,
                                    presets_folder=self.saved)
        self.url = self.server.start()
        parts = urllib.parse.urlsplit(self.url)
        self.port = parts.port
        self.token = urllib.parse.parse_qs(parts.query)["token"][0]
        self.source = LiveSource(ReplayReader(CLIP, size=SIZE, fps=30))
        self.counter = Counter()
        self.report = []
        self.thread = threading.Thread(target=self._loop, name="portrait-cam-test-loop")
        self.thread.start()

    def _loop(self) -> None:
        self.report.append(run_stream(self.pipe, self.source, [self.feed, self.counter], session=self.session))

    def close(self) -> None:
        self.server.close()
        self.counter.quit_requested = True
        self.thread.join(30)
        self.feed.close()
        self.source.close()
        self.pipe.close()

    def request(self, method: str, path: str, body=None, *, token: str | None = "", host: str | None = None,
                headers: dict | None = None) -> tuple[int, bytes, http.client.HTTPResponse]:
        token = self.token if token == "" else token
        if token is not None:
            path += ("&" if "?" in path else "?") + "token=" + urllib.parse.quote(token)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.putrequest(method, path, skip_host=True)
            conn.putheader("Host", host or f"127.0.0.1:{self.port}")
            data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
            for k, v in {**({"Content-Type": "application/json"} if data else {}), **(headers or {})}.items():
                conn.putheader(k, v)
            if data is not None:
                conn.putheader("Content-Length", str(len(data)))
            conn.endheaders(data)
            resp = conn.getresponse()
            return resp.status, resp.read(), resp
        finally:
            conn.close()

    def state(self) -> dict:
        status, body, _ = self.request("GET", "/api/state")
        assert status == 200
        return json.loads(body)

    def wait(self, cond, limit: float = 10.0):
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            v = cond()
            if v:
                return v
            time.sleep(0.05)
        raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = Env(tmp_path_factory.mktemp("control"))
    e.wait(lambda: e.counter.written > 3, 60)  # the loop's threads exist before the first test looks
    yield e
    e.close()
    e.session.close()
    assert e.report and e.report[0].frames > 0


# -- security ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path,method", [("/", "GET"), ("/page.js", "GET"), ("/frame.jpg", "GET"),
                                         ("/api/state", "GET"), ("/ws", "GET"), ("/api/settings", "POST"),
                                         ("/nowhere", "GET")])
def test_no_token_or_a_wrong_token_is_a_bare_403(env, path, method):
    body = {"render.aperture_px": 5} if method == "POST" else None
    for token in (None, "x", env.token[:-1], env.token + "0", env.token.upper()):
        status, data, resp = env.request(method, path, body, token=token)
        assert status == 403 and data == b"", (path, token)
        assert resp.getheader("Set-Cookie") is None
    assert env.session.preset.render.aperture_px != 5


def test_the_token_cookie_after_the_first_load(env):
    status, html, resp = env.request("GET", "/")
    assert status == 200 and b"<title>portrait-cam</title>" in html
    cookie = resp.getheader("Set-Cookie")
    assert f"portrait_cam_{env.port}={env.token}" in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    jar = {"Cookie": f"portrait_cam_{env.port}={env.token}"}
    assert env.request("GET", "/api/state", token=None, headers=jar)[0] == 200
    assert env.request("GET", "/api/state", token=None, headers={"Cookie": f"portrait_cam_{env.port}=nope"})[0] == 403
    assert "default-src 'none'" in resp.getheader("Content-Security-Policy")  # no CDN, nothing foreign


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1", "127.0.0.1:1",
                                  "localhost.evil.example:{port}", "192.168.1.2:{port}", ""])
def test_foreign_host_is_refused(env, host):
    status, data, _ = env.request("GET", "/api/state", host=host.format(port=env.port) or " ")
    assert status == 403 and data == b""


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "LOCALHOST:{port}"])
def test_own_hosts_are_served(env, host):
    assert env.request("GET", "/api/state", host=host.format(port=env.port))[0] == 200


def test_foreign_origin_cannot_change_anything(env):
    before = env.session.preset.render.max_coc_px
    for origin in ("http://evil.example", "http://127.0.0.1:1", f"https://127.0.0.1:{env.port}", "null"):
        status, data, _ = env.request("POST", "/api/settings", {"render.max_coc_px": 3.0},
                                      headers={"Origin": origin})
        assert status == 403 and data == b""
    status, _, _ = env.request("POST", "/api/settings", {"render.max_coc_px": 3.0},
                               headers={"Origin": f"http://localhost:{env.port}", "Sec-Fetch-Site": "cross-site"})
    assert status == 403
    time.sleep(0.2)
    assert env.session.preset.render.max_coc_px == before
    status, _, _ = env.request("POST", "/api/settings", {"render.max_coc_px": before + 1},
                               headers={"Origin": f"http://localhost:{env.port}", "Sec-Fetch-Site": "same-origin"})
    assert status == 200 and env.session.preset.render.max_coc_px == before + 1
    # a WebSocket from another site's page is refused at the handshake
    sock, status = ws_connect(env, origin="http://evil.example")
    sock.close()
    assert status == 403


@pytest.mark.parametrize("body,allowed", [
    ({"render.aperture_px": 1000.5}, "allowed 0..1000"),
    ({"render.aperture_px": -1}, "allowed 0..1000"),
    ({"render.max_coc_px": 500}, "allowed 0..128"),
    ({"render.highlight_boost": 0.5}, "allowed 1..20"),
    ({"temporal.matte_smoothing": 1.0}, "allowed 0..0.99"),
    ({"render.blades": 3}, "0 (round) or 5..16"),
    ({"render.blades": 6.5}, "whole number"),
    ({"focus.mode": "nose"}, "face"),
    ({"render.aperture_px": "wide"}, "must be a number"),
    ({"render.aperture_px": True}, "must be a number"),
    ({"render.effect": "yes"}, "true"),
    ({"depth.model_path": "/etc/passwd"}, "allowed: focus.mode"),
    ([], "JSON object"),
])
def test_out_of_range_values_are_a_400_with_the_allowed_range(env, body, allowed):
    before = env.session.preset
    status, data, _ = env.request("POST", "/api/settings", body)
    assert status == 400, data
    assert allowed in json.loads(data)["error"]
    assert env.session.preset == before


def test_bad_requests_are_400_not_crashes(env):
    assert env.request("POST", "/api/settings", b"{not json")[0] == 400
    assert env.request("POST", "/api/settings", b"\xff\xfe")[0] == 400
    assert env.request("POST", "/api/settings", b"x" * 100_000)[0] == 413  # bodies are bounded
    assert env.request("POST", "/api/focus", {"x": 2, "y": 0.5})[0] == 400
    assert env.request("POST", "/api/focus", {"x": "a"})[0] == 400
    assert env.request("POST", "/api/view", {"view": "../etc"})[0] == 400
    assert env.request("POST", "/api/preset", {"preset": "/etc/passwd"})[0] == 400
    assert env.request("POST", "/api/key", {"key": "q"})[0] == 400  # quitting is not the page's to do
    assert env.request("POST", "/api/save", {"name": "../escape"})[0] == 400
    env.wait(lambda: env.counter.written > 0)
    n = env.counter.written
    env.wait(lambda: env.counter.written > n + 5)  # the video kept going


# -- the API changes the session ----------------------------------------------------------------

def test_knobs_apply_and_show_their_values(env):
    status, data, _ = env.request("POST", "/api/settings", {"render.aperture_px": 33.5, "render.blades": 6,
                                                            "focus.mode": "person", "temporal.matte_smoothing": 0.5})
    assert status == 200
    env.wait(lambda: env.pipe.preset.render.aperture_px == 33.5)
    p = env.pipe.preset
    assert p.render.blades == 6 and p.focus.mode.value == "person" and p.temporal.matte_smoothing == 0.5
    s = env.state()["settings"]
    assert s["values"]["render.aperture_px"] == 33.5 and s["values"]["render.blades"] == 6
    # a key changes it too, and the page's state shows that
    env.controller.handle_key("+")
    env.wait(lambda: env.state()["settings"]["values"]["render.aperture_px"] > 33.5)
    assert env.request("POST", "/api/settings", {"render.effect": False})[0] == 200
    env.wait(lambda: env.pipe.preset.render.effect is False)
    assert env.request("POST", "/api/key", {"key": "e"})[0] == 200
    env.wait(lambda: env.pipe.preset.render.effect is True)
    assert env.request("POST", "/api/preset", {"preset": "subtle"})[0] == 200
    env.wait(lambda: env.pipe.preset.name == "subtle")
    assert env.state()["settings"]["preset"] == "subtle"
    assert env.request("POST", "/api/preset", {"preset": "portrait"})[0] == 200
    env.wait(lambda: env.pipe.preset.name == "portrait")


def test_the_page_shows_changes_from_the_file_and_the_governor(env):
    """Values changed elsewhere show on the page: the preset file edited, the quality governor
    stepping down (the user's value stays, the running one is reduced)."""
    env.request("POST", "/api/preset", {"preset": "look"})
    env.wait(lambda: env.state()["settings"]["preset"] == "look")
    env.preset_file.write_text('extends = "portrait"\nname = "look"\n[render]\nmax_coc_px = 40\n')
    env.wait(lambda: env.state()["settings"]["values"]["render.max_coc_px"] == 40.0)
    assert env.pipe.preset.render.max_coc_px == 40.0
    for i in range(3):
        env.governor.observe(500.0, now=1000.0 + i)  # far behind: three levels down (radius -25%)
    s = env.wait(lambda: (st := env.state())["settings"]["level"] == 3 and st)
    assert s["settings"]["values"]["render.max_coc_px"] == 40.0
    assert s["settings"]["effective"]["render.max_coc_px"] == 30.0 and "radius" in s["settings"]["level_label"]
    assert s["status"]["level"] == 3
    for i in range(3):
        env.governor.observe(0.1, now=2000.0 + 10.0 * i)  # headroom: back up
    env.wait(lambda: env.state()["settings"]["level"] < 3)
    env.governor.level = 0
    env.session.set_level(0)
    env.request("POST", "/api/preset", {"preset": "portrait"})
    env.wait(lambda: env.state()["settings"]["preset"] == "portrait" and env.state()["settings"]["level"] == 0)


def test_click_focus_view_and_auto_focus(env):
    assert env.request("POST", "/api/focus", {"x": 0.05, "y": 0.1})[0] == 200
    env.wait(lambda: isinstance(env.pipe.focus.override, float))
    a = env.wait(lambda: env.state()["settings"]["focus"])
    assert env.request("POST", "/api/view", {"view": "disparity"})[0] == 200
    env.wait(lambda: env.feed.latest()[2] == "disparity" or (env.request("GET", "/frame.jpg"), False)[1])
    assert env.request("POST", "/api/focus", {"auto": True})[0] == 200
    env.wait(lambda: env.pipe.focus.override is None)
    assert env.request("POST", "/api/view", {"view": "output"})[0] == 200
    assert 0.0 <= a <= 1.0


def test_frame_is_a_small_jpeg_of_the_output(env):
    import cv2

    status, data, resp = env.request("GET", "/frame.jpg")
    assert status == 200 and resp.getheader("Content-Type") == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[1] <= 480 and img.std() > 5


def test_save_as_preset_writes_a_file_that_loads(env):
    env.session.change({"render": {"aperture_px": 44.0, "blades": 7}})
    status, data, _ = env.request("POST", "/api/save", {"name": "my-look"})
    assert status == 200, data
    path = Path(json.loads(data)["path"])
    assert path == env.saved / "my-look.toml" and path.is_file()
    p = load_preset(path)
    assert p.render.aperture_px == 44.0 and p.render.blades == 7 and p.name == "my-look"
    assert sorted(x.name for x in env.saved.iterdir()) == ["my-look.toml"]  # no temporary left
    # not overwritten unless asked
    env.session.change({"render": {"aperture_px": 45.0}})
    status, data, _ = env.request("POST", "/api/save", {"name": "my-look"})
    assert status == 409 and load_preset(path).render.aperture_px == 44.0
    assert env.request("POST", "/api/save", {"name": "my-look", "overwrite": True})[0] == 200
    assert load_preset(path).render.aperture_px == 45.0
    assert "my-look" in env.state()["settings"]["presets"]


def test_saved_preset_text_round_trips_every_builtin():
    for name in ("portrait", "subtle", "blur-only"):
        p = load_preset(name)
        text = knobs.preset_toml(p, name)
        import tomllib

        data = tomllib.loads(text)
        assert data["render"]["aperture_px"] == p.render.aperture_px and data["name"] == name


# -- the WebSocket feed and slow clients ----------------------------------------------------------

def ws_connect(env, origin: str | None = None, token: str | None = "") -> tuple[socket.socket, int]:
    token = env.token if token == "" else token
    s = socket.create_connection(("127.0.0.1", env.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET /ws{'' if token is None else '?token=' + token} HTTP/1.1", f"Host: 127.0.0.1:{env.port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if origin:
        lines.append(f"Origin: {origin}")
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            break
        head += chunk
    return s, int(head.split(b" ")[1]) if head else 0


def ws_text(payload: bytes) -> bytes:
    """One masked client text frame."""
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_read(s: socket.socket) -> tuple[int, bytes]:
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf
    b0, b1 = exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(exact(2), "big")
    elif n == 127:
        n = int.from_bytes(exact(8), "big")
    return b0 & 0x0F, exact(n)


def test_websocket_needs_the_token(env):
    for token in (None, "wrong"):
        s, status = ws_connect(env, token=token)
        s.close()
        assert status == 403


def test_websocket_sends_hello_settings_status_and_pictures(env):
    s, status = ws_connect(env)
    assert status == 101
    seen, pictures = set(), 0
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 10 and pictures < 10:
            op, data = ws_read(s)
            if op == 1:
                seen.add(json.loads(data)["type"])
            elif op == 2:
                assert data[:2] == b"\xff\xd8"  # a JPEG
                pictures += 1
                s.sendall(ws_text(b"ack"))
    finally:
        s.close()
    assert {"hello", "settings", "status"} <= seen and pictures >= 10


def test_a_client_that_never_reads_cannot_stall_the_video(env):
    """Clients that never read (one silent, one acknowledging pictures it never read, one HTTP
    request left half-sent, one picture request never read): the loop keeps its pace and a good
    viewer keeps getting pictures. A client that acknowledges more than it got is dropped."""
    env.wait(lambda: env.counter.written > 10)
    t0, n0 = time.monotonic(), env.counter.written
    time.sleep(2.0)
    rate_alone = (env.counter.written - n0) / (time.monotonic() - t0)
    silent, status = ws_connect(env)
    acker, status2 = ws_connect(env)
    assert status == status2 == 101
    half = socket.create_connection(("127.0.0.1", env.port))
    half.sendall(f"POST /api/settings?token={env.token} HTTP/1.1\r\nHost: 127.0.0.1:{env.port}\r\n"
                 "Content-Length: 100000\r\n\r\n{".encode())
    unread = socket.create_connection(("127.0.0.1", env.port))
    unread.sendall(f"GET /frame.jpg?token={env.token} HTTP/1.1\r\nHost: 127.0.0.1:{env.port}\r\n\r\n".encode())
    good, _ = ws_connect(env)
    good.settimeout(0.05)
    good_pictures = 0
    t0, n0 = time.monotonic(), env.counter.written
    last_ack = 0.0
    try:
        while time.monotonic() - t0 < 8.0:
            if time.monotonic() - last_ack > 0.5:
                last_ack = time.monotonic()
                try:
                    acker.sendall(ws_text(b"ack"))
                except OSError:
                    pass  # dropped: fine
            try:
                while True:
                    op, _ = ws_read(good)
                    if op == 2:
                        good_pictures += 1
                        good.sendall(ws_text(b"ack"))
            except (socket.timeout, TimeoutError):
                pass
        rate_with_bad = (env.counter.written - n0) / (time.monotonic() - t0)
        # over-acknowledging is a protocol error: dropped at once
        flood, _ = ws_connect(env)
        d = env.server.dropped_viewers
        flood.sendall(ws_text(b"ack") * 10)
        env.wait(lambda: env.server.dropped_viewers > d, 5)
        flood.close()
    finally:
        for s in (silent, acker, half, unread, good):
            s.close()
    assert good_pictures >= 10, good_pictures
    assert rate_with_bad > 0.5 * rate_alone, (rate_alone, rate_with_bad)


def test_preview_pictures_once_per_frame_whatever_the_viewers(env):
    """At most one picture per frame and max_fps on average, the same for 1 or 10 viewers;
    every frame of a slower, jittery stream; nothing at all without a viewer."""
    from realtime.io.sinks import OutputFrame

    frame = np.ascontiguousarray(np.random.default_rng(1).integers(0, 255, (360, 640, 3), dtype=np.uint8))
    out = OutputFrame(frame, None, None, "", 0, 0.0)

    def feed_for(viewers: int, times: list[float]) -> PreviewFeed:
        clock = [0.0]
        feed = PreviewFeed(env.session, max_fps=15.0, clock=lambda: clock[0])
        for _ in range(viewers):
            feed.add_viewer()
        composed = []
        real_compose = feed._compose
        feed._compose = lambda o, v: composed.append(1) or real_compose(o, v)  # counts pictures made
        for t in times:
            clock[0] = t
            feed.write(out)
            wait = time.monotonic()
            while (feed._pending is not None or feed.encoded < len(composed)) and time.monotonic() - wait < 2:
                time.sleep(0.001)  # the encoder has made it
        feed.made = len(composed)
        feed.close()
        return feed

    fast = [i / 30.0 for i in range(90)]  # 3 s at 30 fps
    one, ten = feed_for(1, fast), feed_for(10, fast)
    assert one.made == ten.made and 44 <= one.made <= 47 and one.encoded == one.made and ten.encoded == ten.made
    rng = np.random.default_rng(2)
    slow = list(np.cumsum(rng.uniform(1 / 15.0, 1 / 9.0, 60)))  # 9..15 fps, irregular
    assert feed_for(1, slow).made == 60
    assert feed_for(0, fast).made == 0
    assert one.latest()[1][:2] == b"\xff\xd8" and len(one.latest()[1]) > 1000


def test_status_shows_fail_closed_and_its_reason(env):
    """A stage failing is shown live (state and reason), and its end too."""
    from realtime.core.errors import StageError

    def broken(*a, **k):
        raise StageError("render stage: injected fault for the control page test")

    env.pipe.renderer.process = broken  # the instance's method, seen by the next frame
    try:
        st = env.wait(lambda: (s := env.state()["status"])["fail_closed"] and s, 15)
        assert "injected fault" in st["fail_reason"]
    finally:
        del env.pipe.renderer.process
    env.wait(lambda: not env.state()["status"]["fail_closed"], 15)
