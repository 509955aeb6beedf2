"""A lean HTTP client for latency figures: one keep-alive HTTP/1.1 connection through the standard
library's `http.client`.

httpx spends about a millisecond of its own Python per request (request building, its transport
layers, response decoding), which an "HTTP minus predictor" figure would charge to the server.
This client costs ~0.1 ms, so what remains is the server's: parsing, validation, batching hand-off,
response building and the loopback round trip (bench/serve.py and bench/serve_profile.py report
both clients' figures).
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit


class LeanClient:
    """POST JSON to one server over one persistent connection (reconnects if the server closed it)."""

    def __init__(self, base_url: str, *, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"LeanClient speaks plain http to host:port, got {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout = timeout
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def post_json(self, path: str, payload: Any) -> Any:
        """The decoded JSON answer; RuntimeError naming the status when it is not 200."""
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        try:
            self.conn.request("POST", path, body=body, headers=headers)
            resp = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # the server closed an idle keep-alive connection: one fresh connection, one retry
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.conn.request("POST", path, body=body, headers=headers)
            resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"POST {path} answered {resp.status}: {data[:300]!r}")
        return json.loads(data)

    def close(self) -> None:
        self.conn.close()

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
    writer.write(
        b"POST "
        + path.encode()
        + b" HTTP/1.1\r\nHost: "
        + host.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(payload)).encode()
        + b"\r\n\r\n"
        + payload
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    if "content-length" not in headers:
        raise RuntimeError(f"answer without Content-Length (status {status}); this client reads only those")
    body = await reader.readexactly(int(headers["content-length"]))
    return status, headers, body
