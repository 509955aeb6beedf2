"""A loopback HTTP server whose routes are small test functions, recording when each request came.

The corpus-backed `LoopbackServer` serves fixed routes; politeness tests need per-test answers
(a robots.txt with a Crawl-delay, a 429 then a 200, a body that drips) and the arrival time of
every request, so that spacing can be asserted from the server's side.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from testkit.loopback import send

# (handler, how many times this exact path has been requested, this one included)
Route = Callable[[BaseHTTPRequestHandler, int], None]

PAGE = b"<html><head><title>t</title></head><body><p>" + b"word " * 50 + b"</p></body></html>"


@dataclass
class Arrival:
    path: str
    at: float  # time.monotonic() in the server thread (same clock as the test)
    headers: dict[str, str]


def page(h: BaseHTTPRequestHandler, n: int) -> None:
    send(h, 200, PAGE)


class ScriptedServer:
    """`with ScriptedServer({"/path": route, ...}) as srv:`; unknown paths get `default`."""

    def __init__(self, routes: dict[str, Route], default: Route | None = None) -> None:
        self.routes = routes
        self.default = default
        self.arrivals: list[Arrival] = []
        self._hits: dict[str, int] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                return

            def do_GET(self) -> None:
                with server._lock:
                    server.arrivals.append(Arrival(self.path, time.monotonic(), dict(self.headers.items())))
                    n = server._hits[self.path] = server._hits.get(self.path, 0) + 1
                route = server.routes.get(self.path, server.default)
                try:
                    if route is None:
                        send(self, 404, b"not found")
                    else:
                        route(self, n)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (e.g. its deadline): expected

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return self.base + path

    def times(self, path: str) -> list[float]:
        with self._lock:
            return [a.at for a in self.arrivals if a.path == path]

    def hits(self, path: str) -> int:
        return len(self.times(path))

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
