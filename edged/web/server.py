"""A small threaded HTTP server whose paths are answered by routes; localhost by default."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

# answers a request (True), or leaves it to the next route (False)
Route = Callable[["Request", str], bool]


class Request(BaseHTTPRequestHandler):
    server: WebServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path)
        try:
            for route in self.server.routes:
                if route(self, path):
                    return
        except Exception:
            # a bug in one page must not look like a dead server; the traceback is logged
            log.exception("HTTP GET %s failed", path)
            self.send(500, "text/plain; charset=utf-8", b"internal error, see the log\n")
            return
        self.send("404 Not Found", "text/plain; charset=utf-8", f"no such page: {path}\n".encode())

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
    """``stopping`` is set by ``close``, so a long answer (a stream) can end."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, routes: Sequence[Route]) -> None:
        super().__init__((host, port), Request)
        self.routes = list(routes)
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, name=f"http-{port}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.stopping.set()
        if self._thread.is_alive():  # shutdown() waits for a loop that never started
            self.shutdown()
        self.server_close()
