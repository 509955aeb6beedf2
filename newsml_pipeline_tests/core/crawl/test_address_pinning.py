"""No DNS-rebinding window: connections go to the address the policy checked, never re-resolved.

A scripted resolver plays a rebinding DNS: the first answer is public, every later one is
127.0.0.1. A recording network backend stands in for the socket layer and shows which address
each connection was opened to.
"""

from __future__ import annotations

import asyncio

import httpcore

from newsml_pipeline.core.crawl.fetcher import Fetcher
from newsml_pipeline_tests.core.crawl.scripted import ScriptedServer, page

PUBLIC = "93.184.216.34"


class RebindingResolver:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        return [PUBLIC] if len(self.calls) == 1 else ["127.0.0.1"]


class ToLoopback(httpcore.AsyncNetworkBackend):
    """Records the address asked for, then connects to the loopback test server instead."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.asked: list[tuple[str, int]] = []
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.asked.append((host, port))
        return await self._real.connect_tcp("127.0.0.1", self.port, timeout=timeout)

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise AssertionError("not used")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def test_connections_go_to_the_checked_address_not_a_rebound_one(crawl_cfg):
    resolver = RebindingResolver()
    with ScriptedServer({}, default=page) as srv:
        backend = ToLoopback(srv.port)
        base = f"http://news.example:{srv.port}"

        async def go():
            async with Fetcher(
                allow_private=False, per_host_rps=1000, resolver=resolver, network_backend=backend
            ) as f:
                return [await f.fetch(f"{base}/a"), await f.fetch(f"{base}/b")]

        results = asyncio.run(go())
        host_headers = {a.headers.get("Host") for a in srv.arrivals}
        paths = [a.path for a in srv.arrivals]
    assert all(r.ok for r in results), [r.error for r in results]
    assert paths == ["/robots.txt", "/a", "/b"]
    assert backend.asked and all(host == PUBLIC for host, _ in backend.asked)
    assert all(port == srv.port for _, port in backend.asked)
    assert resolver.calls == ["news.example"]  # resolved once per run; the rebound answer is never used
    assert host_headers == {f"news.example:{srv.port}"}  # the server still sees its hostname


class _TlsRecordingStream(httpcore.AsyncMockStream):
    def __init__(self, buffer: list[bytes], log: list) -> None:
        super().__init__(buffer)
        self.log = log

    async def write(self, buffer: bytes, timeout=None) -> None:
        self.log.append(("write", buffer))

    async def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        self.log.append(("tls", server_hostname))
        return self


class _TlsRecordingBackend(httpcore.AsyncMockBackend):
    def __init__(self) -> None:
        body = b"<html><body><p>pinned</p></body></html>"
        super().__init__(
            [b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(body), body]
        )
        self.log: list = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.log.append(("connect", host, port))
        return _TlsRecordingStream(list(self._buffer), self.log)


def test_https_keeps_sni_and_host_header_on_the_hostname():
    backend = _TlsRecordingBackend()

    async def go():
        async with Fetcher(
            allow_private=False, respect_robots=False, resolver=RebindingResolver(), network_backend=backend
        ) as f:
            return await f.fetch("https://News.Example/story")

    res = asyncio.run(go())
    assert res.ok and res.content == b"<html><body><p>pinned</p></body></html>"
    assert backend.log[0] == ("connect", PUBLIC, 443)
    assert backend.log[1] == ("tls", "news.example")  # SNI and certificate check use the name
    request = b"".join(entry[1] for entry in backend.log if entry[0] == "write")
    assert b"\r\nHost: news.example\r\n" in request


def test_a_private_first_answer_is_still_refused_before_any_connection():
    async def private(host: str, port: int) -> list[str]:
        return ["10.0.0.7"]

    backend = _TlsRecordingBackend()

    async def go():
        async with Fetcher(allow_private=False, resolver=private, network_backend=backend) as f:
            return await f.fetch("http://intranet.example/x")

    res = asyncio.run(go())
    assert not res.ok and "non-public address 10.0.0.7" in res.error
    assert backend.log == []


def test_allow_private_connects_by_hostname_as_before(crawl_cfg):
    """With crawl.allow_private_hosts the policy resolves nothing, so there is nothing to pin."""
    with ScriptedServer({}, default=page) as srv:
        backend = ToLoopback(srv.port)

        async def go():
            async with Fetcher(
                allow_private=True,
                respect_robots=False,
                resolver=RebindingResolver(),
                network_backend=backend,
            ) as f:
                return await f.fetch(f"http://localhost:{srv.port}/a")

        res = asyncio.run(go())
    assert res.ok and backend.asked == [("localhost", srv.port)]
