"""Polite async HTTP fetching: bounded concurrency, per-host rate limit, retries, size cap.

One `Fetcher` is shared by everything a crawl run downloads (feeds, robots.txt, pages) so the
concurrency bound and each host's rate limit hold across sources. `fetch` never raises for a
bad URL: the outcome (status, final URL, redirect hops, body or a one-line error) is in the
returned `FetchResult`, so one broken page never sinks a crawl.

Redirects are followed here, not by httpx, so every hop is checked against the address policy
(no redirecting the crawler into the private network) and recorded.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urljoin, urlsplit

import httpx

from newsml_pipeline.core.crawl.robots import RobotsCache

log = logging.getLogger(__name__)

FetchKind = Literal["page", "feed", "robots"]

_ACCEPT = {
    "page": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
    "feed": "application/rss+xml,application/atom+xml,application/feed+json,application/xml;q=0.9,"
    "text/xml;q=0.9,application/json;q=0.8,*/*;q=0.1",
    "robots": "text/plain,*/*;q=0.5",
}
_PAGE_TYPES = ("text/html", "application/xhtml+xml")
_FEED_TYPES = (
    "application/rss+xml",
    "application/atom+xml",
    "application/rdf+xml",
    "application/xml",
    "text/xml",
    "application/feed+json",
    "application/json",
    # Some real servers label feeds text/plain or text/html; parse_feed decides, not the header.
    "text/plain",
    "text/html",
)
_REDIRECT_CODES = {301, 302, 303, 307, 308}
_RETRY_STATUS = {429, 500, 502, 503, 504}


class FetchRefused(Exception):
    """A URL the policy forbids (private address, robots.txt, bad scheme); not retried."""


@dataclass
class FetchResult:
    url: str  # what was asked for
    status: int | None = None  # last HTTP status (None when no response arrived)
    final_url: str | None = None  # after redirects
    redirects: list[str] = field(default_factory=list)  # every hop's URL, in order, excluding the first
    content: bytes | None = None
    content_type: str | None = None  # media type without parameters, lowercase
    charset: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False  # 304 on a conditional GET: the caller's stored copy is current
    error: str | None = None  # one line: what went wrong, where
    attempts: int = 0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and (self.content is not None or self.not_modified)

    @property
    def text(self) -> str | None:
        if self.content is None:
            return None
        return self.content.decode(self.charset or "utf-8", errors="replace")


def _is_public(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


class _HostGate:
    """Spaces request starts to one host at least 1/rps seconds apart."""

    def __init__(self, rps: float) -> None:
        self.interval = 1.0 / rps
        self.lock = asyncio.Lock()
        self.next_at = 0.0

    async def wait(self) -> None:
        async with self.lock:
            now = time.monotonic()
            if now < self.next_at:
                await asyncio.sleep(self.next_at - now)
                now = time.monotonic()
            self.next_at = now + self.interval


class Fetcher:
    """Shared async HTTP client for one crawl run; use as `async with Fetcher(...) as f`.

    `polite=False` drops the per-host rate limit (for loopback benchmarks only);
    `allow_private=True` lets the crawler reach private/loopback/link-local addresses.
    """

    def __init__(
        self,
        *,
        concurrency: int = 16,
        per_host_rps: float = 1.0,
        timeout_s: float = 20.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_bytes: int = 5_000_000,
        max_redirects: int = 5,
        allow_private: bool = False,
        respect_robots: bool = True,
        user_agent: str = "newsml-pipeline/0.1",
        polite: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.concurrency = concurrency
        self.per_host_rps = per_host_rps
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.allow_private = allow_private
        self.respect_robots = respect_robots
        self.user_agent = user_agent
        self.polite = polite
        self._transport = transport
        self._sem = asyncio.Semaphore(concurrency)
        self._gates: dict[str, _HostGate] = {}
        self._resolved: dict[str, str | None] = {}  # host -> refusal reason (None = public/allowed)
        self._client: httpx.AsyncClient | None = None
        self.robots = RobotsCache(self, user_agent=user_agent)

    @classmethod
    def from_config(cls, crawl_cfg, *, allow_private: bool | None = None, polite: bool = True) -> Fetcher:
        """Build from a `CrawlConfig`; `allow_private` overrides `crawl.allow_private_hosts`."""
        return cls(
            concurrency=crawl_cfg.concurrency,
            per_host_rps=crawl_cfg.per_host_rps,
            timeout_s=crawl_cfg.timeout_s,
            retries=crawl_cfg.retries,
            backoff_s=crawl_cfg.backoff_s,
            max_bytes=crawl_cfg.max_bytes,
            max_redirects=crawl_cfg.max_redirects,
            allow_private=crawl_cfg.allow_private_hosts if allow_private is None else allow_private,
            respect_robots=crawl_cfg.respect_robots,
            user_agent=crawl_cfg.user_agent,
            polite=polite,
        )

    async def __aenter__(self) -> Fetcher:
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout_s),
            follow_redirects=False,
            headers={"User-Agent": self.user_agent},
            limits=limits,
            transport=self._transport,
            trust_env=False,
        )
        return self

    async def __aexit__(self, *exc) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------ policy

    async def _refusal(self, url: str) -> str | None:
        """Why this URL may not be fetched (scheme, private address), or None if it may."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return f"unsupported scheme {parts.scheme!r}"
        host = parts.hostname
        if not host:
            return "URL has no host"
        if self.allow_private:
            return None
        if host in self._resolved:
            return self._resolved[host]
        reason: str | None = None
        try:
            ipaddress.ip_address(host)
            addrs = [host]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
                )
                addrs = sorted({info[4][0] for info in infos})
            except OSError as e:
                addrs = []
                reason = f"cannot resolve host {host!r}: {e}"
        for a in addrs:
            if not _is_public(a):
                reason = f"host {host!r} resolves to non-public address {a} (set crawl.allow_private_hosts to allow)"
                break
        self._resolved[host] = reason
        return reason

    def _gate(self, url: str) -> _HostGate | None:
        if not self.polite:
            return None
        host = urlsplit(url).netloc.lower()
        gate = self._gates.get(host)
        if gate is None:
            gate = self._gates[host] = _HostGate(self.per_host_rps)
        return gate

    def _type_ok(self, kind: FetchKind, content_type: str | None) -> bool:
        if kind == "robots" or not content_type:
            return True  # no header: let the parser judge the bytes
        allowed = _PAGE_TYPES if kind == "page" else _FEED_TYPES
        return content_type in allowed or (kind == "feed" and content_type.endswith(("+xml", "+json")))

    # ------------------------------------------------------------ fetching

    async def fetch(
        self,
        url: str,
        *,
        kind: FetchKind = "page",
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> FetchResult:
        """GET `url` following redirects; never raises for a bad URL (see `FetchResult.error`).

        `etag` / `last_modified` (stored from an earlier fetch) make it a conditional GET:
        a 304 comes back as `not_modified=True` with no content.
        """
        if self._client is None:
            raise RuntimeError("Fetcher is not open; use `async with Fetcher(...) as fetcher:`")
        res = FetchResult(url=url)
        start = time.monotonic()
        try:
            await self._fetch_following(res, kind=kind, etag=etag, last_modified=last_modified)
        except FetchRefused as e:
            res.error = f"refused {url}: {e}"
        except Exception as e:  # noqa: BLE001 - one bad URL must never sink the crawl; reported in res.error
            log.exception("unexpected error fetching %s", url)
            res.error = f"{type(e).__name__} fetching {url}: {e}"
        res.elapsed_s = time.monotonic() - start
        if res.error:
            res.content = None
            log.info("fetch failed: %s", res.error)
        return res

    async def _fetch_following(
        self, res: FetchResult, *, kind: FetchKind, etag: str | None, last_modified: str | None
    ) -> None:
        current = res.url
        for _hop in range(self.max_redirects + 1):
            reason = await self._refusal(current)
            if reason:
                raise FetchRefused(reason)
            if kind != "robots" and self.respect_robots and not await self.robots.allowed(current):
                raise FetchRefused(f"disallowed by robots.txt of {urlsplit(current).netloc}")
            headers = {"Accept": _ACCEPT[kind]}
            if etag:
                headers["If-None-Match"] = etag
            if last_modified:
                headers["If-Modified-Since"] = last_modified
            location = await self._get_with_retries(res, current, kind=kind, headers=headers)
            if location is None:
                res.final_url = current
                return
            current = urljoin(current, location)
            res.redirects.append(current)
        res.final_url = current
        res.error = f"too many redirects (> {self.max_redirects}) starting at {res.url}"

    async def _get_with_retries(
        self, res: FetchResult, url: str, *, kind: FetchKind, headers: dict
    ) -> str | None:
        """One hop with retries on 5xx/429/timeouts/connection errors; returns a redirect Location."""
        for attempt in range(self.retries + 1):
            res.attempts += 1
            retryable: str | None = None
            try:
                return await self._get_once(res, url, kind=kind, headers=headers)
            except httpx.TimeoutException as e:
                retryable = f"timeout after {self.timeout_s}s fetching {url} ({type(e).__name__})"
            except httpx.TransportError as e:
                retryable = f"connection error fetching {url}: {type(e).__name__}: {e}"
            except _RetryableStatus as e:
                retryable = str(e)
            if attempt < self.retries:
                delay = self.backoff_s * (2**attempt)
                log.info("%s; retry %d/%d in %.2fs", retryable, attempt + 1, self.retries, delay)
                await asyncio.sleep(delay)
            else:
                res.error = f"{retryable} (gave up after {attempt + 1} attempts)"
        return None

    async def _get_once(self, res: FetchResult, url: str, *, kind: FetchKind, headers: dict) -> str | None:
        assert self._client is not None
        gate = self._gate(url)
        async with self._sem:
            if gate is not None:
                await gate.wait()
            async with self._client.stream("GET", url, headers=headers) as resp:
                res.status = resp.status_code
                if resp.status_code in _REDIRECT_CODES:
                    loc = resp.headers.get("location")
                    if not loc:
                        res.error = f"HTTP {resp.status_code} without Location at {url}"
                        return None
                    return loc
                if resp.status_code == 304:
                    res.not_modified = True
                    return None
                if resp.status_code in _RETRY_STATUS:
                    raise _RetryableStatus(f"HTTP {resp.status_code} from {url}")
                if resp.status_code >= 400:
                    res.error = f"HTTP {resp.status_code} from {url}"
                    return None
                ctype = resp.headers.get("content-type", "")
                media = ctype.split(";", 1)[0].strip().lower() or None
                res.content_type = media
                res.charset = resp.charset_encoding
                res.etag = resp.headers.get("etag")
                res.last_modified = resp.headers.get("last-modified")
                if not self._type_ok(kind, media):
                    res.error = f"unexpected content type {media!r} for a {kind} at {url}"
                    return None
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self.max_bytes:
                    res.error = f"too large: Content-Length {declared} > max_bytes {self.max_bytes} at {url}"
                    return None
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        res.error = f"too large: body exceeds max_bytes {self.max_bytes} at {url}"
                        return None
                    chunks.append(chunk)
                res.content = b"".join(chunks)
                return None


class _RetryableStatus(Exception):
    pass
