"""A small threaded HTTP server whose paths are answered by routes; localhost by default.

It is exposed to whatever can reach its port, so it guards itself: a request's line and
headers must arrive within ``read_timeout_s`` (a watcher closes connections that dawdle, so a
client sending one byte at a time cannot hold a thread), at most ``max_connections`` are open
at once (the next get ``503`` at once), the listen backlog is 128, and with a token or a login
configured every request must carry it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from edged.config.http import HttpConfig

log = logging.getLogger(__name__)

# answers a request (True), or leaves it to the next route (False)
Route = Callable[["Request", str], bool]

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 21\r\nRetry-After: 5\r\nConnection: close\r\n\r\ntoo many connections\n"
)


COOKIE = "edged_token"


def _cookie(header: str | None) -> str | None:
    """The token cookie's value in a Cookie header."""
    if not header:
        return None
    jar = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return None if morsel is None else morsel.value


class Request(BaseHTTPRequestHandler):
    server: WebServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # also bounds a send to a viewer that stopped reading
        self.connection.settimeout(self.server.access.read_timeout_s)

    def handle_one_request(self) -> None:
        # the request line and headers are read under the watcher's deadline
        self.server.watch(self.connection)
        try:
            super().handle_one_request()
        finally:
            self.server.unwatch(self.connection)

    def do_GET(self) -> None:
        self._answer(self.server.routes)

    def do_POST(self) -> None:
        self._answer(self.server.post_routes)

    def _answer(self, routes: Sequence[Route]) -> None:
        self.server.unwatch(self.connection)
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        cookie = _cookie(self.headers.get("Cookie"))
        if not self.server.allows(self.headers.get("Authorization"), parts.query, cookie):
            self.server.denied += 1
            self.send_response(401)
            self.send_header("WWW-Authenticate", self.server.challenge)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            body = b"authentication required\n"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        # a page opened with ?token= gets it as a cookie too, so that its scripts, styles
        # and pictures (which cannot send a header) are let in; SameSite keeps it from
        # requests that other sites' pages make
        self.give_cookie = "token=" in parts.query and cookie is None
        if self.command == "POST" and (why := self._refused_post()) is not None:
            self.close_connection = True  # its body, if any, is not read
            self.send(403, "text/plain; charset=utf-8", f"{why}\n".encode())
            return
        try:
            for route in routes:
                if route(self, path):
                    return
        except Exception:
            # a bug in one page must not look like a dead server; the traceback is logged
            log.exception("HTTP %s %s failed", self.command, path)
            self.send(500, "text/plain; charset=utf-8", b"internal error, see the log\n")
            return
        self.send("404 Not Found", "text/plain; charset=utf-8", f"no such page: {path}\n".encode())

    def _refused_post(self) -> str | None:
        """A change is taken only as JSON from a page of this server: a page elsewhere can
        make a browser post a form here (with its cookies or login), but not JSON, and its
        Origin names the other site."""
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return "a change must be sent as application/json"
        origin = self.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != self.headers.get("Host"):
            return f"a change from another site ({origin}) is refused"
        return None

    def body(self, limit: int = 1 << 20) -> bytes | None:
        """The request's body, or None (answered 411/413) when it has no length or a larger
        one than ``limit``."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            self.send(411, "text/plain; charset=utf-8", b"Content-Length required\n")
            return None
        if not 0 <= length <= limit:
            self.close_connection = True
            if length <= 2 * limit:
                # read what is on its way first: closing on a client still sending resets the
                # connection, and the client sees a broken pipe instead of the 413
                left = length
                while left > 0:
                    chunk = self.rfile.read(min(1 << 16, left))
                    if not chunk:
                        break
                    left -= len(chunk)
            self.send(413, "text/plain; charset=utf-8", f"at most {limit} bytes\n".encode())
            return None
        return self.rfile.read(length)

    give_cookie = False

    def end_headers(self) -> None:
        token = self.server.access.token
        if self.give_cookie and token is not None:
            self.send_header(
                "Set-Cookie",
                f"{COOKIE}={token.get_secret_value()}; Path=/; HttpOnly; SameSite=Strict",
            )
        super().end_headers()

    def send(self, status: str | int, content_type: str, body: bytes) -> None:
        code = int(str(status).split()[0])
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class WebServer(ThreadingHTTPServer):
    """``stopping`` is set by ``close``, so a long answer (a stream) can end. ``busy``
    (connections refused at the cap), ``expired`` (closed by the read deadline) and
    ``denied`` (requests without the right credentials) count what was turned away."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        host: str,
        port: int,
        routes: Sequence[Route],
        access: HttpConfig | None = None,
        post_routes: Sequence[Route] = (),
    ) -> None:
        super().__init__((host, port), Request)
        self.routes = list(routes)
        self.post_routes = list(post_routes)
        self.access = access or HttpConfig(host=host, insecure=True)
        self.stopping = threading.Event()
        self.busy = self.expired = self.denied = 0
        self._slots = threading.BoundedSemaphore(self.access.max_connections)
        self._deadlines: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._last_busy_log = -float("inf")
        self._thread = threading.Thread(target=self.serve_forever, name=f"http-{port}", daemon=True)
        self._watcher = threading.Thread(target=self._watch, name=f"http-{port}-w", daemon=True)
        a = self.access
        self._token = None if a.token is None else a.token.get_secret_value().encode()
        self._basic = None
        if a.username is not None and a.password is not None:
            self._basic = f"{a.username}:{a.password.get_secret_value()}".encode()
        self.challenge = 'Basic realm="edged"' if self._basic else 'Bearer realm="edged"'

    def start(self) -> None:
        self._thread.start()
        self._watcher.start()

    def close(self) -> None:
        self.stopping.set()
        if self._thread.is_alive():  # shutdown() waits for a loop that never started
            self.shutdown()
        self.server_close()

    # -- who may ask ------------------------------------------------------------------------

    def allows(self, authorization: str | None, query: str, cookie: str | None = None) -> bool:
        """No credentials configured: everyone. Otherwise the token (as a bearer,
        ``?token=`` for a browser's <img>, or the cookie a page opened with it got) or the
        basic-auth login."""
        if self._token is None and self._basic is None:
            return True
        scheme, _, value = (authorization or "").partition(" ")
        value = value.strip()
        if self._token is not None:
            offered = [value] if scheme.lower() == "bearer" else []
            offered += parse_qs(query).get("token", [])
            offered += [] if cookie is None else [cookie]
            if any(hmac.compare_digest(o.encode(), self._token) for o in offered):
                return True
        if self._basic is not None and scheme.lower() == "basic":
            try:
                login = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(login, self._basic)
        return False

    # -- how many, how slow -----------------------------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        self.busy += 1
        now = time.monotonic()
        if now - self._last_busy_log >= 60:
            self._last_busy_log = now
            log.warning(
                "HTTP on port %d: %d connections open, the most allowed (max_connections);"
                " refusing more (%d so far)",
                self.server_address[1],
                self.access.max_connections,
                self.busy,
            )
        try:
            request.settimeout(0.5)
            request.sendall(_BUSY)
        except OSError:
            pass  # it went away; it was refused either way
        self.shutdown_request(request)

    def watch(self, conn: socket.socket) -> None:
        with self._lock:
            self._deadlines[conn] = time.monotonic() + self.access.read_timeout_s

    def unwatch(self, conn: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(conn, None)

    def _watch(self) -> None:
        period = min(0.5, self.access.read_timeout_s / 4)
        while not self.stopping.wait(period):
            now = time.monotonic()
            with self._lock:
                late = [c for c, t in self._deadlines.items() if t <= now]
                for conn in late:
                    del self._deadlines[conn]
            for conn in late:
                self.expired += 1
                # the handler's read returns at once, and its thread ends (OSError: the
                # client closed it already)
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
