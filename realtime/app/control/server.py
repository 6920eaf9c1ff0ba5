"""The control page's web server: aiohttp in its own thread, off the frame loop.

Safe by default (the page controls a camera):

- it listens on 127.0.0.1 and ::1 only, unless the user names another address (``--control-bind``);
- every request, the page, its script, the API and the WebSocket alike, needs the run's random
  token (256 bits): in the URL's ``token`` query, or the ``SameSite=Strict; HttpOnly`` cookie the
  page sets on its first load. Without it the answer is a bare 403;
- the ``Host`` header must be ``127.0.0.1:PORT``, ``localhost:PORT`` or ``[::1]:PORT`` (or the
  bound address), so a DNS-rebinding site cannot talk to it; state-changing requests and the
  WebSocket handshake from another origin are refused;
- values are checked with the preset files' ranges (400 naming the allowed range);
- nothing a client does reaches the frame loop except through the session's submits: the loop
  never waits for the server; each viewer gets the newest preview picture when it has taken the
  last one (at most two in flight), a send that does not complete within seconds drops that
  viewer, and viewers are limited in number.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import socket
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from realtime.app.control import knobs
from realtime.app.controls import BINDINGS
from realtime.app.session import VIEWS
from realtime.core.errors import ConfigError, PortraitCamError

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765
SEND_TIMEOUT_S = 5.0   # a viewer that takes longer than this to take a message is dropped
MAX_VIEWERS = 16
STATUS_EVERY_S = 0.5
SOCKET_BUFFER = 128 * 1024  # bytes the kernel may queue for one viewer
IN_FLIGHT = 2          # preview pictures sent to a viewer and not yet acknowledged
STATIC = {"page.js": "application/javascript", "page.css": "text/css"}


def _aiohttp():
    try:
        from aiohttp import web
    except ImportError as e:
        raise ConfigError("the control page needs aiohttp: pip install -e '.[control]' "
                          "(or pip install aiohttp)") from e
    return web


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((host, port))
        s.listen(64)
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s


def _static(name: str) -> str:
    return resources.files("realtime.app.control").joinpath("static", name).read_text(encoding="utf-8")


class ControlServer:
    """The page for one running session (see the module docstring).

    ``keys`` runs a preview-window key (``Controller.handle_key``): the page offers the window's
    keys except ``h`` (the page shows its own help) and the quit keys (closing a tab, or a
    stray key in an OBS dock, must not stop the camera). ``presets_folder`` is where "save as
    preset" writes (None: saving is off).
    """

    def __init__(self, session, feed, *, port: int = DEFAULT_PORT, bind: str | None = None,
                 keys: Callable[[str], str] | None = None, presets_folder: Path | None = None) -> None:
        self.session = session
        self.feed = feed
        self.requested_port = int(port)
        self.bind = bind
        self.keys = keys
        self.key_chars = [k for b in BINDINGS for k in b.keys if k != "h"] if keys is not None else []
        self.key_help = [(" / ".join(b.keys), b.help) for b in BINDINGS if keys is not None] + [
            ("click", "focus on what is under the pointer")]
        self.presets_folder = presets_folder
        self.token = secrets.token_urlsafe(32)
        self.port = 0
        self._socks: list[socket.socket] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._wake: asyncio.Event | None = None
        self._sockets: set = set()
        self._unsubscribe: Callable[[], None] | None = None
        self.dropped_viewers = 0

    # -- lifetime (the caller's thread) -----------------------------------------------------------
    @property
    def url(self) -> str:
        host = self.bind if self.bind and self.bind not in ("0.0.0.0", "::", "") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/?token={self.token}"

    def start(self) -> str:
        """Listen and serve in a thread; returns the page's URL. ConfigError if the port is taken."""
        _aiohttp()
        hosts = [self.bind] if self.bind else ["127.0.0.1", "::1"]
        try:
            first = _listen(hosts[0], self.requested_port)
        except OSError as e:
            raise ConfigError(f"the control page cannot listen on {hosts[0]} port {self.requested_port} ({e.strerror}); "
                              "choose another port with --control PORT, or --control 0 for a free one") from e
        self._socks = [first]
        self.port = first.getsockname()[1]
        for host in hosts[1:]:
            try:
                self._socks.append(_listen(host, self.port))
            except OSError as e:  # no IPv6 loopback here: 127.0.0.1 is enough
                log.info("control page not on %s: %s", host, e)
        self._allowed_hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}"}
        if self.bind:
            b = f"[{self.bind}]" if ":" in self.bind else self.bind
            self._allowed_hosts.add(f"{b.lower()}:{self.port}")
        self._origins = {f"http://{h}" for h in self._allowed_hosts}
        self._cookie = f"portrait_cam_{self.port}"
        self._thread = threading.Thread(target=self._run, name="portrait-cam-control", daemon=True)
        self._thread.start()
        self._ready.wait(30.0)
        if self._error is not None:
            self.close()
            raise ConfigError(f"the control page could not start: {self._error}") from self._error
        self._unsubscribe = self.session.subscribe(lambda settings: self._kick())
        self.feed.on_picture(self._kick)
        return self.url

    def close(self) -> None:
        """Stop serving (idempotent): viewers are disconnected, the thread ends."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))
            except RuntimeError:  # the loop has already ended
                pass
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None
        for s in self._socks:
            s.close()
        self._socks = []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _kick(self) -> None:
        """Wake the viewers (from any thread): a new picture or new settings."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._wake_all)
        except RuntimeError:
            pass

    def _wake_all(self) -> None:
        ev, self._wake = self._wake, asyncio.Event()
        if ev is not None:
            ev.set()

    # -- the server's thread ----------------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:  # reported by start(), or logged if it happens later
            self._error = e
            if self._ready.is_set():
                log.error("control page stopped: %s", e)
        finally:
            self._ready.set()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _serve(self) -> None:
        web = _aiohttp()
        self._wake = asyncio.Event()
        self._stop = asyncio.get_running_loop().create_future()
        app = web.Application(middlewares=[self._make_guard()], client_max_size=64 * 1024)
        app.router.add_get("/", self._index)
        app.router.add_get("/page.js", self._asset)
        app.router.add_get("/page.css", self._asset)
        app.router.add_get("/frame.jpg", self._frame)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/ws", self._ws)
        for name, fn in (("settings", self._post_settings), ("preset", self._post_preset), ("view", self._post_view),
                         ("focus", self._post_focus), ("key", self._post_key), ("save", self._post_save)):
            app.router.add_post(f"/api/{name}", fn)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            for s in self._socks:
                await web.SockSite(runner, s).start()
            self._ready.set()
            await self._stop
        finally:
            for ws in list(self._sockets):
                await ws.close()
            await runner.cleanup()

    # -- security ---------------------------------------------------------------------------------
    def _forbidden(self):
        return _aiohttp().Response(status=403)

    def _token_of(self, request) -> str | None:
        return request.query.get("token") or request.cookies.get(self._cookie)

    def _make_guard(self):
        web = _aiohttp()

        @web.middleware
        async def guard(request, handler):
            if (request.headers.get("Host") or "").lower() not in self._allowed_hosts:
                return self._forbidden()  # DNS rebinding: a foreign name for our address
            token = self._token_of(request)
            if not token or not hmac.compare_digest(token.encode(), self.token.encode()):
                return self._forbidden()
            upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
            if request.method not in ("GET", "HEAD") or upgrade:
                origin = request.headers.get("Origin")
                if origin is not None and origin.lower() not in self._origins:
                    return self._forbidden()  # another site's page (cross-site request)
                if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
                    return self._forbidden()
            resp = await handler(request)
            if not getattr(resp, "prepared", False):
                resp.headers["Cache-Control"] = "no-store"
                resp.headers["Referrer-Policy"] = "no-referrer"
                resp.headers["X-Content-Type-Options"] = "nosniff"
            return resp
        return guard

    # -- pages ------------------------------------------------------------------------------------
    async def _index(self, request):
        web = _aiohttp()
        html = _static("index.html").replace("__TOKEN__", self.token)
        resp = web.Response(text=html, content_type="text/html")
        resp.headers["Content-Security-Policy"] = (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'")
        resp.set_cookie(self._cookie, self.token, httponly=True, samesite="Strict", path="/")
        return resp

    async def _asset(self, request):
        name = request.path.lstrip("/")
        return _aiohttp().Response(text=_static(name), content_type=STATIC[name])

    async def _frame(self, request):
        """The newest preview picture (waits up to two seconds for one while nobody watches)."""
        web = _aiohttp()
        seq, jpeg, _ = self.feed.latest()
        if not jpeg or self.feed.viewers == 0:
            self.feed.add_viewer()
            try:
                t0 = time.monotonic()
                while time.monotonic() - t0 < 2.0:
                    s2, j2, _ = self.feed.latest()
                    if s2 != seq and j2:
                        seq, jpeg = s2, j2
                        break
                    await asyncio.sleep(0.02)
            finally:
                self.feed.remove_viewer()
        if not jpeg:
            return web.json_response({"error": "no picture yet"}, status=503)
        return web.Response(body=jpeg, content_type="image/jpeg")

    def _settings_json(self) -> dict[str, Any]:
        s = self.session.settings()
        return {"type": "settings", "version": s.version, "preset": s.preset, "presets": list(s.presets),
                "values": knobs.values(self.session.preset), "effective": knobs.values(s.effective),
                "effect": s.effect, "view": s.view, "views": list(VIEWS), "focus": s.focus_override,
                "level": s.level, "level_label": s.level_label, "message": s.message}

    def _status_json(self) -> dict[str, Any]:
        s = self.session.settings()
        return {"type": "status", **self.session.status, "level": s.level, "level_label": s.level_label,
                "viewers": self.feed.viewers}

    def _hello_json(self) -> dict[str, Any]:
        return {"type": "hello", "knobs": knobs.schema(), "views": list(VIEWS), "keys": self.key_chars,
                "key_help": self.key_help, "can_save": self.presets_folder is not None}

    async def _state(self, request):
        return _aiohttp().json_response({**self._hello_json(), "settings": self._settings_json(),
                                         "status": self._status_json()})

    # -- changes ----------------------------------------------------------------------------------
    async def _body(self, request) -> Any:
        try:
            return await request.json()
        except (ValueError, UnicodeDecodeError) as e:
            raise ConfigError(f"the request body is not JSON ({e})") from None

    def _bad(self, message: str, status: int = 400):
        return _aiohttp().json_response({"error": message}, status=status)

    async def _change(self, request, fn: Callable[[Any], Any]):
        try:
            body = await self._body(request)
            result = fn(body)
        except ConfigError as e:
            return self._bad(str(e))
        except FileExistsError as e:
            return self._bad(str(e), 409)
        except (PortraitCamError, OSError) as e:
            return self._bad(str(e), 500)
        self._kick()
        return _aiohttp().json_response({"ok": True, **(result or {})})

    async def _post_settings(self, request):
        def go(body):
            changes = knobs.check(body)
            effect = changes.get("render", {}).pop("effect", None)
            if not changes.get("render"):
                changes.pop("render", None)
            if changes:
                self.session.change(changes)
            if effect is not None:
                self.session.set_effect(bool(effect))
            return {"values": knobs.values(self.session.preset)}
        return await self._change(request, go)

    async def _post_preset(self, request):
        def go(body):
            name = body.get("preset") if isinstance(body, dict) else None
            allowed = list(self.session.settings().presets)
            if name not in allowed:  # only presets offered: a page never names a file to read
                raise ConfigError(f"unknown preset {json.dumps(name)}; allowed: {', '.join(allowed)}")
            specs = self.session.preset_specs()
            return {"message": self.session.select_preset(specs[allowed.index(name)])}
        return await self._change(request, go)

    async def _post_view(self, request):
        def go(body):
            view = body.get("view") if isinstance(body, dict) else None
            if view not in VIEWS:
                raise ConfigError(f"unknown view {json.dumps(view)}; allowed: {', '.join(VIEWS)}")
            return {"message": self.session.set_view(view)}
        return await self._change(request, go)

    async def _post_focus(self, request):
        def go(body):
            if isinstance(body, dict) and body.get("auto") is True:
                return {"message": self.session.auto_focus()}
            try:
                x, y = float(body["x"]), float(body["y"])
            except (TypeError, KeyError, ValueError):
                raise ConfigError('send {"x": 0..1, "y": 0..1} (a point of the picture) or {"auto": true}') from None
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ConfigError(f"focus point {x:g},{y:g} is outside the picture; allowed 0..1 for x and y")
            _, _, view = self.feed.latest()
            if view == "side-by-side":  # two tiles of the same frame: either one focuses
                x = (2.0 * x) % 1.0 if x < 1.0 else 1.0
            self.session.focus_at(x, y)
            return {"message": f"focus at {x:.2f},{y:.2f}"}
        return await self._change(request, go)

    async def _post_key(self, request):
        def go(body):
            key = body.get("key") if isinstance(body, dict) else None
            if self.keys is None or key not in self.key_chars:
                raise ConfigError(f"unknown key {json.dumps(key)}; allowed: {' '.join(self.key_chars)}")
            return {"message": self.keys(key)}
        return await self._change(request, go)

    async def _post_save(self, request):
        def go(body):
            if self.presets_folder is None:
                raise ConfigError("saving presets is off for this run")
            if not isinstance(body, dict):
                raise ConfigError('send {"name": "my-look"}')
            path = knobs.save_preset(self.session.preset, self.presets_folder, body.get("name"),
                                     overwrite=body.get("overwrite") is True)
            self.session.add_preset(path)
            msg = self.session.say(f"saved {path}; load it with --preset {path}")
            return {"path": str(path), "message": msg}
        return await self._change(request, go)

    # -- the WebSocket: settings, status and preview pictures -------------------------------------
    async def _send(self, ws, data: bytes | str) -> None:
        coro = ws.send_bytes(data) if isinstance(data, bytes) else ws.send_str(data)
        await asyncio.wait_for(coro, SEND_TIMEOUT_S)

    async def _ws(self, request):
        web = _aiohttp()
        if len(self._sockets) >= MAX_VIEWERS:
            return self._bad(f"too many viewers (at most {MAX_VIEWERS})", 503)
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096)
        sock = request.transport.get_extra_info("socket") if request.transport is not None else None
        if sock is not None:  # what the kernel holds for one viewer is bounded too
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        await ws.prepare(request)
        self._sockets.add(ws)
        self.feed.add_viewer()
        acks = [0, 0]  # pictures acknowledged, pictures sent
        reader = asyncio.ensure_future(self._read_acks(ws, acks))
        sent_seq, sent_settings, sent_status = 0, None, 0.0
        try:
            await self._send(ws, json.dumps(self._hello_json()))
            while not ws.closed and not reader.done():
                wake = self._wake
                s = self._settings_json()
                if (s["version"], s["message"]) != sent_settings:
                    sent_settings = (s["version"], s["message"])
                    await self._send(ws, json.dumps(s))
                now = time.monotonic()
                if now - sent_status >= STATUS_EVERY_S:
                    sent_status = now
                    await self._send(ws, json.dumps(self._status_json()))
                seq, jpeg, _ = self.feed.latest()
                if jpeg and seq != sent_seq and acks[1] - acks[0] < IN_FLIGHT:
                    sent_seq = seq
                    acks[1] += 1
                    await self._send(ws, jpeg)
                try:
                    await asyncio.wait_for(wake.wait(), STATUS_EVERY_S)
                except asyncio.TimeoutError:
                    pass
        except (asyncio.TimeoutError, ConnectionError) as e:
            self.dropped_viewers += 1
            log.info("control page viewer dropped: %s", type(e).__name__)
        finally:
            self.feed.remove_viewer()
            self._sockets.discard(ws)
            reader.cancel()
            if not ws.closed:
                if request.transport is not None:
                    request.transport.abort()  # a viewer that stopped reading: no closing handshake
                try:
                    await asyncio.wait_for(ws.close(), 1.0)
                except (asyncio.TimeoutError, ConnectionError, RuntimeError):
                    pass
        return ws

    async def _read_acks(self, ws, acks: list[int]) -> None:
        """A viewer says "ack" once per picture it has shown; anything else (more acks than
        pictures, other messages) is a client to drop: it would only spend the server's time."""
        async for msg in ws:
            if msg.type != msg.type.TEXT or msg.data != "ack" or acks[0] >= acks[1]:
                self.dropped_viewers += 1
                log.info("control page viewer dropped: unexpected message")
                return
            acks[0] += 1
            self._wake_all()
