"""A lean HTTP client for latency figures: hand-built HTTP/1.1 on one kept-alive socket.

httpx spends about a millisecond of its own Python per request (request building, its transport
layers, response decoding), and even the standard library's `http.client` about a quarter of one
(its header parsing goes through the email package), which an "HTTP minus predictor" figure would
charge to the server. Here a request is one bytes template and an answer is read by its
Content-Length, so what remains is the server's: parsing, validation, batching hand-off, response
building and the loopback round trip (bench/serve.py and bench/serve_profile.py report httpx's
figure beside it).
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlsplit


def request_bytes(host: str, path: str, payload: bytes) -> bytes:
    """One HTTP/1.1 POST of a JSON body (keep-alive is HTTP/1.1's default)."""
    return (
        b"POST "
        + path.encode()
        + b" HTTP/1.1\r\nHost: "
        + host.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(payload)).encode()
        + b"\r\n\r\n"
        + payload
    )


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """(status, lower-cased headers) of a response head; the body is read by its Content-Length."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    if "content-length" not in headers:
        raise RuntimeError(f"answer without Content-Length (status {status}); this client reads only those")
    return status, headers


class LeanClient:
    """POST JSON to one server over one persistent connection (reconnects if the server closed it)."""

    def __init__(self, base_url: str, *, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"LeanClient speaks plain http to host:port, got {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._buf = b""

    def _roundtrip(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.sock is None:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._buf = b""
        self.sock.sendall(request)
        buf = self._buf
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the server closed the connection")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        status, headers = parse_head(head)
        n = int(headers["content-length"])
        while len(rest) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the server closed the connection mid-answer")
            rest += chunk
        self._buf = rest[n:]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, rest[:n]

    def post_json(self, path: str, payload: Any) -> Any:
        """The decoded JSON answer; RuntimeError naming the status when it is not 200."""
        request = request_bytes(self.host, path, json.dumps(payload).encode())
        try:
            status, _, data = self._roundtrip(request)
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            # the server closed an idle keep-alive connection: one fresh connection, one retry
            self.close()
            status, _, data = self._roundtrip(request)
        if status != 200:
            raise RuntimeError(f"POST {path} answered {status}: {data[:300]!r}")
        return json.loads(data)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> LeanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def post_keepalive(
    reader: Any, writer: Any, host: str, path: str, payload: bytes
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 POST on an open asyncio stream pair; (status, lower-cased headers, body).

    Hand-built request and a Content-Length body read: the load generator shares the machine's
    cores with the server, and httpx's per-request Python (about a millisecond) would take CPU
    from the server it measures."""
    writer.write(request_bytes(host, path, payload))
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status, headers = parse_head(head)
    body = await reader.readexactly(int(headers["content-length"]))
    return status, headers, body
