"""A small HTTP endpoint over the Predictor (stdlib ThreadingHTTPServer: no extra dependency).

GET  /health    -> {"status": "ok", "model_version": ..., "labels": [...]}
POST /classify  -> body: one article object {"title"?, "text", "id"?} or a list of them;
                   answer: one result object, or {"results": [...]} for a list.
Every error is JSON {"error": message} with a 4xx code: 400 bad JSON / bad fields, 404 unknown
path, 405 wrong method, 411 no Content-Length, 413 body over `serving.max_body_bytes`,
415 not JSON; 500 (logged) if the model itself fails.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from newsml_pipeline.core.serving.predictor import InvalidRecordError, Predictor

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    server: NewsmlHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse the connection
    # Headers and body go out as separate writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms per request). TCP_NODELAY removes that stall.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, payload: Any) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": message})

    def _discard_body(self) -> None:
        """Read (and drop) a small declared body so a keep-alive connection stays in sync."""
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= self.server.max_body_bytes:
            self.rfile.read(int(length))
        else:
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.path == "/health":
            self._send(HTTPStatus.OK, self.server.predictor.health())
        elif self.path == "/classify":
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, "use POST /classify with a JSON article or list")
        else:
            self._error(
                HTTPStatus.NOT_FOUND, f"unknown path {self.path!r}; try GET /health or POST /classify"
            )

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        if self.path != "/classify":
            self._discard_body()
            self._error(HTTPStatus.NOT_FOUND, f"unknown path {self.path!r}; POST /classify")
            return
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self.close_connection = True
            self._error(HTTPStatus.LENGTH_REQUIRED, "Content-Length header is required")
            return
        if not length_header.isdigit():
            self.close_connection = True
            self._error(HTTPStatus.BAD_REQUEST, f"invalid Content-Length {length_header!r}")
            return
        length = int(length_header)
        limit = self.server.max_body_bytes
        if length > limit:
            self.close_connection = True  # do not read a huge body just to throw it away
            self._error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {length} bytes exceeds serving.max_body_bytes={limit}; send fewer articles per request",
            )
            return
        raw = self.rfile.read(length)
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        if ctype not in ("application/json", "text/json"):
            self._error(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"Content-Type must be application/json, got {ctype!r}"
            )
            return
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            self._error(HTTPStatus.BAD_REQUEST, f"body is not valid UTF-8 JSON: {e}")
            return
        single = isinstance(payload, dict)
        if not single and not isinstance(payload, list):
            self._error(
                HTTPStatus.BAD_REQUEST, f"expected an article object or a list, got {type(payload).__name__}"
            )
            return
        try:
            results = self.server.predictor.predict([payload] if single else payload)
        except InvalidRecordError as e:
            self._error(
                HTTPStatus.BAD_REQUEST, str(e) if not single else str(e).replace("article 0: ", "", 1)
            )
            return
        except Exception:
            log.exception("classification failed")
            self._error(
                HTTPStatus.INTERNAL_SERVER_ERROR, "the model failed on this request; see the server log"
            )
            return
        self._send(HTTPStatus.OK, results[0] if single else {"results": results})


class NewsmlHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, predictor: Predictor, *, host: str, port: int, max_body_bytes: int) -> None:
        self.predictor = predictor
        self.max_body_bytes = max_body_bytes
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def make_server(
    predictor: Predictor, *, host: str = "127.0.0.1", port: int = 8765, max_body_bytes: int | None = None
) -> NewsmlHTTPServer:
    """Bind (port 0 = any free port) but do not start serving; call serve_forever() or start_in_thread()."""
    limit = max_body_bytes if max_body_bytes is not None else predictor.serving_cfg.max_body_bytes
    return NewsmlHTTPServer(predictor, host=host, port=port, max_body_bytes=limit)


def start_in_thread(server: NewsmlHTTPServer) -> threading.Thread:
    """Serve in a daemon thread (tests, benchmarks); stop with server.shutdown(); server.server_close()."""
    thread = threading.Thread(target=server.serve_forever, name="newsml-http", daemon=True)
    thread.start()
    return thread
