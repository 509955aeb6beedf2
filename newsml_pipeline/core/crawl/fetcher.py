"""Polite async HTTP fetching: bounded concurrency, per-host rate limit, retries, size cap.

One `Fetcher` is shared by everything a crawl run downloads (feeds, robots.txt, pages) so the
concurrency bound and each host's rate limit hold across sources. `fetch` never raises for a
bad URL: the outcome (status, final URL, redirect hops, body or a one-line error) is in the
returned `FetchResult`, so one broken page never sinks a crawl.

Politeness is per host (a `_HostGate`): request starts are spaced max(1/per_host_rps,
robots.txt Crawl-delay) apart, and a 429/503 `Retry-After` holds back every request to that
host, not only the retry.

Redirects are followed here, not by httpx, so every hop is checked against the address policy
(no redirecting the crawler into the private network) and recorded. The check resolves the
host once and the connection is made to exactly the addresses that passed (`_PinnedBackend`),
so a DNS answer that changes between check and connect (DNS rebinding) cannot reach a private
address; the Host header and TLS SNI/certificate checks still use the hostname.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from newsml_pipeline.core.crawl.robots import RobotsCache

log = logging.getLogger(__name__)

FetchKind = Literal["page", "feed", "robots"]
# (ASCII hostname, port) -> its addresses, best first; raises OSError when it cannot resolve.
Resolver = Callable[[str, int], Awaitable[list[str]]]

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
_RETRY_AFTER_STATUS = {429, 503}


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


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or HTTP-date); None if absent/invalid."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's addresses for `host`, in its order of preference, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _HostGate:
    """One host's politeness: spaces request starts and holds them back after a Retry-After.

    `wait` queues same-host requests on a lock *before* they take a global concurrency slot, so
    a host that must be waited for (Crawl-delay, Retry-After) never parks slots other hosts need.
    """

    def __init__(self, host: str, interval: float, why: str) -> None:
        self.host = host
        self.interval = interval
        self.interval_why = why
        self.lock = asyncio.Lock()
        self.last_start: float | None = None
        self.hold_until = 0.0  # Retry-After: no request starts before this (monotonic)
        self.hold_why = ""
        self.blocked_until = 0.0  # Retry-After beyond the cap: requests fail fast until this
        self.blocked_why = ""
        self.crawl_delay_set = False

    def _next_at(self) -> tuple[float, str]:
        spaced = -1.0 if self.last_start is None else self.last_start + self.interval
        if self.hold_until > spaced:
            return self.hold_until, self.hold_why
        return spaced, self.interval_why

    def hold(self, seconds: float, why: str) -> None:
        self.hold_until = max(self.hold_until, time.monotonic() + seconds)
        self.hold_why = why
        log.info("politeness: holding requests to %s for %.2fs (%s)", self.host, seconds, why)

    def block(self, seconds: float, why: str) -> None:
        self.blocked_until = max(self.blocked_until, time.monotonic() + seconds)
        self.blocked_why = why
        log.warning("politeness: skipping %s for %.0fs (%s)", self.host, seconds, why)

    def set_crawl_delay(self, delay: float | None, *, cap: float) -> None:
        """Widen the spacing to robots.txt's Crawl-delay (at most `cap`); once per host."""
        if self.crawl_delay_set:
            return
        self.crawl_delay_set = True
        if delay is None:
            return
        used = min(delay, cap)
        if used > self.interval:
            self.interval = used
            self.interval_why = f"robots.txt Crawl-delay {delay:g}s" + (
                f" capped by crawl.max_crawl_delay_s={cap:g}" if delay > cap else ""
            )
            log.info("politeness: %s requests spaced %.2fs apart (%s)", self.host, used, self.interval_why)

    def _check_blocked(self) -> None:
        if time.monotonic() < self.blocked_until:
            raise FetchRefused(f"{self.host} is skipped for now: {self.blocked_why}")

    async def wait(self, sem: asyncio.Semaphore) -> None:
        """Return holding one slot of `sem`, at a moment this host may get its next request."""
        async with self.lock:
            while True:
                self._check_blocked()
                at, why = self._next_at()
                delay = at - time.monotonic()
                if delay > 0:
                    # Plain per_host_rps spacing happens on every request: DEBUG, not INFO.
                    level = logging.DEBUG if why == "per_host_rps" else logging.INFO
                    log.log(level, "politeness: waiting %.2fs for %s (%s)", delay, self.host, why)
                    await asyncio.sleep(delay)
                    continue
                await sem.acquire()
                if self._next_at()[0] <= time.monotonic():  # no Retry-After arrived meanwhile
                    self.last_start = time.monotonic()
                    return
                sem.release()


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects a hostname only to the addresses the address policy checked for it.

    httpcore hands `connect_tcp` the URL's hostname and would resolve it again; here it is
    mapped to the pinned addresses instead. TLS (SNI, certificate) and the Host header keep
    using the hostname, because httpcore takes those from the request, not from this call.
    """

    def __init__(self, inner: httpcore.AsyncNetworkBackend, pins: dict[str, list[str]]) -> None:
        self._inner = inner
        self._pins = pins

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addrs = self._pins.get(host.lower())
        if not addrs:
            raise httpcore.ConnectError(f"no checked address for host {host!r}; not resolving it again")
        error: Exception | None = None
        for addr in addrs:
            try:
                return await self._inner.connect_tcp(
                    addr, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                error = e
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("the crawler does not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _transport_with_backend(
    backend: httpcore.AsyncNetworkBackend, limits: httpx.Limits
) -> httpx.AsyncHTTPTransport:
    """httpx's own transport, over a connection pool that connects through `backend`.

    httpx (0.28) has no public way to pass an httpcore network backend (encode/httpx#3749 is
    still open), so the pool it built is swapped for an equal one that uses ours.
    """
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    if not isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
        raise RuntimeError("this httpx version has no AsyncHTTPTransport._pool; cannot pin addresses")
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=backend,
    )
    return transport


class Fetcher:
    """Shared async HTTP client for one crawl run; use as `async with Fetcher(...) as f`.

    `polite=False` drops the per-host rate limit and Crawl-delay (for loopback benchmarks only;
    Retry-After is still honoured); `allow_private=True` lets the crawler reach
    private/loopback/link-local addresses (and then connects as httpx would, unpinned).
    `resolver` and `network_backend` are seams for tests (a scripted DNS, a recording socket
    layer); `transport` replaces the whole httpx transport and with it the address pinning.
    """

    def __init__(
        self,
        *,
        concurrency: int = 16,
        per_host_rps: float = 1.0,
        timeout_s: float = 20.0,
        connect_timeout_s: float | None = None,
        total_timeout_s: float = 60.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_retry_after_s: float = 120.0,
        max_crawl_delay_s: float = 30.0,
        max_bytes: int = 5_000_000,
        max_redirects: int = 5,
        allow_private: bool = False,
        respect_robots: bool = True,
        user_agent: str = "newsml-pipeline/0.1",
        polite: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.concurrency = concurrency
        self.per_host_rps = per_host_rps
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s or timeout_s
        self.total_timeout_s = total_timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.max_crawl_delay_s = max_crawl_delay_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.allow_private = allow_private
        self.respect_robots = respect_robots
        self.user_agent = user_agent
        self.polite = polite
        self._transport = transport
        self._resolver = resolver or system_resolver
        self._network_backend = network_backend
        self._sem = asyncio.Semaphore(concurrency)
        self._gates: dict[str, _HostGate] = {}
        self._resolved: dict[str, str | None] = {}  # host -> refusal reason (None = public/allowed)
        self._pins: dict[str, list[str]] = {}  # host -> the checked addresses connections go to
        self._client: httpx.AsyncClient | None = None
        self.robots = RobotsCache(self, user_agent=user_agent)

    @classmethod
    def from_config(cls, crawl_cfg, *, allow_private: bool | None = None, polite: bool = True) -> Fetcher:
        """Build from a `CrawlConfig`; `allow_private` overrides `crawl.allow_private_hosts`."""
        return cls(
            concurrency=crawl_cfg.concurrency,
            per_host_rps=crawl_cfg.per_host_rps,
            timeout_s=crawl_cfg.timeout_s,
            connect_timeout_s=crawl_cfg.connect_timeout_s,
            total_timeout_s=crawl_cfg.total_timeout_s,
            retries=crawl_cfg.retries,
            backoff_s=crawl_cfg.backoff_s,
            max_retry_after_s=crawl_cfg.max_retry_after_s,
            max_crawl_delay_s=crawl_cfg.max_crawl_delay_s,
            max_bytes=crawl_cfg.max_bytes,
            max_redirects=crawl_cfg.max_redirects,
            allow_private=crawl_cfg.allow_private_hosts if allow_private is None else allow_private,
            respect_robots=crawl_cfg.respect_robots,
            user_agent=crawl_cfg.user_agent,
            polite=polite,
        )

    async def __aenter__(self) -> Fetcher:
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        transport = self._transport
        if transport is None and not (self.allow_private and self._network_backend is None):
            backend = self._network_backend or httpcore.AnyIOBackend()
            if not self.allow_private:
                backend = _PinnedBackend(backend, self._pins)
            transport = _transport_with_backend(backend, limits)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                connect=self.connect_timeout_s, read=self.timeout_s, write=self.timeout_s, pool=self.timeout_s
            ),
            follow_redirects=False,
            headers={"User-Agent": self.user_agent},
            limits=limits,
            transport=transport,
            trust_env=False,
        )
        return self

    async def __aexit__(self, *exc) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------ policy

    async def _refusal(self, url: str) -> str | None:
        """Why this URL may not be fetched (scheme, private address), or None if it may.

        Unless private hosts are allowed, the host's addresses are resolved once per run, all
        must be public, and they are pinned: connections go to them, not to a later DNS answer.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return f"unsupported scheme {parts.scheme!r}"
        if not parts.hostname:
            return "URL has no host"
        if self.allow_private:
            return None
        try:
            host = httpx.URL(url).raw_host.decode("ascii").lower()  # IDNA form, as httpcore connects
        except (httpx.InvalidURL, UnicodeError) as e:
            return f"invalid URL: {e}"
        if host in self._resolved:
            return self._resolved[host]
        reason: str | None = None
        try:
            ipaddress.ip_address(host)
            addrs = [host]
        except ValueError:
            try:
                addrs = await self._resolver(host, parts.port or (443 if parts.scheme == "https" else 80))
                if not addrs:
                    reason = f"cannot resolve host {host!r}: no addresses"
            except OSError as e:
                addrs = []
                reason = f"cannot resolve host {host!r}: {e}"
        for a in addrs:
            if not _is_public(a):
                reason = f"host {host!r} resolves to non-public address {a} (set crawl.allow_private_hosts to allow)"
                break
        self._resolved[host] = reason
        if reason is None:
            self._pins[host] = list(addrs)
        return reason

    def _gate(self, url: str) -> _HostGate:
        host = urlsplit(url).netloc.lower()
        gate = self._gates.get(host)
        if gate is None:
            # Impolite (loopback benchmark) runs still get a gate, so Retry-After is honoured.
            interval = 1.0 / self.per_host_rps if self.polite else 0.0
            gate = self._gates[host] = _HostGate(host, interval, "per_host_rps")
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
            if kind != "robots" and self.respect_robots:
                if not await self.robots.allowed(current):
                    raise FetchRefused(f"disallowed by robots.txt of {urlsplit(current).netloc}")
                if self.polite:
                    self._gate(current).set_crawl_delay(
                        self.robots.crawl_delay(current), cap=self.max_crawl_delay_s
                    )
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
        """One hop with retries on 5xx/429/timeouts/connection errors; returns a redirect Location.

        A Retry-After on 429/503 replaces the backoff and holds the whole host (its gate); one
        longer than `max_retry_after_s` ends the fetch and skips the host until it has passed.
        """
        for attempt in range(self.retries + 1):
            res.attempts += 1
            retryable: str | None = None
            held = False
            try:
                return await self._get_once(res, url, kind=kind, headers=headers)
            except _DeadlineExceeded as e:
                res.error = str(e)  # a server this slow would be as slow again: not retried
                return None
            except httpx.TimeoutException as e:
                retryable = f"timeout after {self.timeout_s}s fetching {url} ({type(e).__name__})"
            except httpx.TransportError as e:
                retryable = f"connection error fetching {url}: {type(e).__name__}: {e}"
            except _RetryableStatus as e:
                retryable = str(e)
                if e.retry_after is not None:
                    gate = self._gate(url)
                    why = f"Retry-After {e.retry_after:g}s on HTTP {e.status}"
                    if e.retry_after > self.max_retry_after_s:
                        gate.block(
                            e.retry_after, f"{why}, above crawl.max_retry_after_s={self.max_retry_after_s:g}"
                        )
                        res.error = (
                            f"{e} asks to retry after {e.retry_after:.0f}s, more than "
                            f"crawl.max_retry_after_s={self.max_retry_after_s:g}s: not waiting "
                            f"(after {attempt + 1} attempts)"
                        )
                        return None
                    gate.hold(e.retry_after, why)
                    held = True
            if attempt < self.retries:
                if held:  # the host gate makes this retry (and every other request there) wait
                    log.info(
                        "%s; retry %d/%d when the host's Retry-After has passed",
                        retryable,
                        attempt + 1,
                        self.retries,
                    )
                else:
                    delay = self.backoff_s * (2**attempt)
                    log.info("%s; retry %d/%d in %.2fs", retryable, attempt + 1, self.retries, delay)
                    await asyncio.sleep(delay)
            else:
                res.error = f"{retryable} (gave up after {attempt + 1} attempts)"
        return None

    async def _get_once(self, res: FetchResult, url: str, *, kind: FetchKind, headers: dict) -> str | None:
        assert self._client is not None
        await self._gate(url).wait(self._sem)
        try:
            deadline = asyncio.timeout(self.total_timeout_s)
            try:
                async with deadline:
                    async with self._client.stream("GET", url, headers=headers) as resp:
                        return await self._read(res, resp, url, kind=kind)
            except TimeoutError:
                if deadline.expired():
                    raise _DeadlineExceeded(
                        f"deadline of {self.total_timeout_s:g}s per request (crawl.total_timeout_s) "
                        f"exceeded fetching {url}"
                    ) from None
                raise
        finally:
            self._sem.release()

    async def _read(self, res: FetchResult, resp: httpx.Response, url: str, *, kind: FetchKind) -> str | None:
        """Judge one response (status, type, size) and read its body into `res`; returns a Location."""
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
            after = None
            if resp.status_code in _RETRY_AFTER_STATUS:
                after = parse_retry_after(resp.headers.get("retry-after"))
            raise _RetryableStatus(f"HTTP {resp.status_code} from {url}", resp.status_code, after)
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
    def __init__(self, message: str, status: int, retry_after: float | None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class _DeadlineExceeded(Exception):
    pass
