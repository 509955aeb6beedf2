"""Retry-After, Crawl-delay and the per-request deadline, asserted from the server's side.

Only lower bounds on time are asserted (the machine is shared); each test would see its
requests arrive back to back, or its drip fetch succeed, without the behaviour it checks.
Start-to-start spacing seen by the server carries connection-setup jitter of the first
request (a new TCP connection vs a kept-alive one), hence `JITTER_S` there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from pydantic import ValidationError

from newsml_pipeline.core.crawl.fetcher import Fetcher, parse_retry_after
from newsml_pipeline.settings import CrawlConfig
from newsml_pipeline_tests.core.crawl.scripted import ScriptedServer, page, send

JITTER_S = 0.05


def _run(cfg: CrawlConfig, *urls: str, sequential: bool = False):
    async def go():
        async with Fetcher.from_config(cfg, allow_private=True) as f:
            if sequential:
                return [await f.fetch(u) for u in urls]
            return await asyncio.gather(*(f.fetch(u) for u in urls))

    return asyncio.run(go())


def _fast(crawl_cfg: CrawlConfig, **kw) -> CrawlConfig:
    return crawl_cfg.model_copy(update={"respect_robots": False, **kw})


# ------------------------------------------------------------ Retry-After


def test_parse_retry_after_both_forms():
    now = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 0 ", now=now) == 0.0
    assert parse_retry_after("Mon, 05 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Mon, 05 Jan 2026 11:00:00 GMT", now=now) == 0.0  # in the past: now
    for bad in (None, "", "soon", "-5", "1.5e3"):
        assert parse_retry_after(bad, now=now) is None, bad


def _busy_then_page(seconds: str):
    def route(h, n):
        if n == 1:
            return send(h, 429, b"slow down", Retry_After=seconds)
        return page(h, n)

    return route


def test_429_retry_after_seconds_delays_the_retry(crawl_cfg):
    with ScriptedServer({"/ra": _busy_then_page("1")}) as srv:
        (res,) = _run(_fast(crawl_cfg), srv.url("/ra"))
        first, second = srv.times("/ra")
    assert res.ok and res.attempts == 2
    assert second - first >= 1.0


def test_503_retry_after_http_date_delays_the_retry(crawl_cfg):
    def route(h, n):
        if n == 1:
            when = datetime.now(UTC) + timedelta(seconds=3)  # whole seconds on the wire: >= 2 s left
            return send(h, 503, b"maintenance", Retry_After=format_datetime(when, usegmt=True))
        return page(h, n)

    with ScriptedServer({"/date": route}) as srv:
        (res,) = _run(_fast(crawl_cfg), srv.url("/date"))
        first, second = srv.times("/date")
    assert res.ok and res.attempts == 2
    assert second - first >= 1.0


def test_retry_after_holds_the_whole_host_and_is_logged(crawl_cfg, caplog):
    with ScriptedServer({"/busy": _busy_then_page("1")}, default=page) as srv:
        with caplog.at_level(logging.INFO, logger="newsml_pipeline.core.crawl.fetcher"):
            busy, other = _run(
                _fast(crawl_cfg, retries=0), srv.url("/busy"), srv.url("/other"), sequential=True
            )
        (t_busy,), (t_other,) = srv.times("/busy"), srv.times("/other")
    assert not busy.ok and "429" in busy.error and other.ok
    assert t_other - t_busy >= 1.0  # a different page of the same host waited out the Retry-After
    held = [r.getMessage() for r in caplog.records if "holding requests to" in r.getMessage()]
    assert held and f"127.0.0.1:{srv.port}" in held[0] and "Retry-After 1s on HTTP 429" in held[0]


def test_retry_after_above_the_cap_gives_up_and_skips_the_host(crawl_cfg):
    with ScriptedServer({"/hour": _busy_then_page("3600")}, default=page) as srv:
        hour, other = _run(
            _fast(crawl_cfg, max_retry_after_s=5), srv.url("/hour"), srv.url("/other"), sequential=True
        )
        assert srv.hits("/other") == 0  # not sent: the host asked for an hour's quiet
    assert not hour.ok and hour.attempts == 1
    assert "retry after 3600s" in hour.error and "crawl.max_retry_after_s=5" in hour.error
    assert not other.ok and "skipped" in other.error and "Retry-After 3600s" in other.error


# ------------------------------------------------------------ Crawl-delay


def _robots(text: str):
    def route(h, n):
        send(h, 200, text.encode(), "text/plain")

    return route


def test_crawl_delay_spaces_pages_even_with_high_rps(crawl_cfg, caplog):
    cfg = crawl_cfg.model_copy(update={"per_host_rps": 1000.0})
    robots = {"/robots.txt": _robots("User-agent: *\nCrawl-delay: 1\nDisallow: /private/\n")}
    with ScriptedServer(robots, default=page) as srv:
        with caplog.at_level(logging.INFO, logger="newsml_pipeline.core.crawl.fetcher"):
            results = _run(cfg, srv.url("/a"), srv.url("/b"))
        starts = sorted(srv.times("/a") + srv.times("/b"))
        (t_robots,) = srv.times("/robots.txt")
    assert all(r.ok for r in results)
    assert starts[1] - starts[0] >= 1.0 - JITTER_S
    assert (
        starts[0] - t_robots >= 1.0 - JITTER_S
    )  # the robots.txt request counts as one of the host's requests
    msgs = " | ".join(r.getMessage() for r in caplog.records)
    assert "spaced 1.00s apart (robots.txt Crawl-delay 1s)" in msgs


def test_crawl_delay_is_capped(crawl_cfg, caplog):
    cfg = crawl_cfg.model_copy(update={"per_host_rps": 1000.0, "max_crawl_delay_s": 0.3})
    with ScriptedServer({"/robots.txt": _robots("User-agent: *\nCrawl-delay: 100\n")}, default=page) as srv:
        with caplog.at_level(logging.INFO, logger="newsml_pipeline.core.crawl.fetcher"):
            results = _run(cfg, srv.url("/a"), srv.url("/b"))
        a, b = sorted(srv.times("/a") + srv.times("/b"))
    assert all(r.ok for r in results)
    assert b - a >= 0.3 - JITTER_S
    msgs = " | ".join(r.getMessage() for r in caplog.records)
    assert "robots.txt Crawl-delay 100s capped by crawl.max_crawl_delay_s=0.3" in msgs


def test_crawl_delay_ignored_when_not_polite(crawl_cfg):
    """polite=False (loopback benchmarks) keeps its old meaning: no spacing at all."""
    with ScriptedServer({"/robots.txt": _robots("User-agent: *\nCrawl-delay: 100\n")}, default=page) as srv:

        async def go():
            async with Fetcher.from_config(crawl_cfg, allow_private=True, polite=False) as f:
                return await asyncio.gather(f.fetch(srv.url("/a")), f.fetch(srv.url("/b")))

        results = asyncio.run(go())  # with the delay honoured this would take 200 s (pytest timeout)
    assert all(r.ok for r in results)


# ------------------------------------------------------------ deadline


def test_dripping_server_hits_the_total_deadline(crawl_cfg):
    def drip(h, n):
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Content-Length", "100")
        h.end_headers()
        for _ in range(100):  # one byte every 0.3 s: never idle long enough for the read timeout
            h.wfile.write(b"x")
            h.wfile.flush()
            time.sleep(0.3)

    cfg = _fast(crawl_cfg, timeout_s=2.0, total_timeout_s=1.0, retries=2)
    with ScriptedServer({"/drip": drip}) as srv:
        (res,) = _run(cfg, srv.url("/drip"))
        hits = srv.hits("/drip")
    assert not res.ok and res.content is None
    assert "deadline of 1s per request (crawl.total_timeout_s) exceeded" in res.error
    assert res.attempts == 1 and hits == 1  # not retried
    assert res.elapsed_s >= 1.0


def test_phase_timeouts_are_explicit(crawl_cfg):
    cfg = crawl_cfg.model_copy(update={"timeout_s": 7.0, "connect_timeout_s": 3.0})

    async def go():
        async with Fetcher.from_config(cfg) as f:
            return f._client.timeout

    t = asyncio.run(go())
    assert (t.connect, t.read, t.write, t.pool) == (3.0, 7.0, 7.0, 7.0)


# ------------------------------------------------------------ config


@pytest.mark.parametrize(
    "bad",
    [
        {"total_timeout_s": 0},
        {"total_timeout_s": 4000},
        {"connect_timeout_s": 0},
        {"max_retry_after_s": -1},
        {"max_crawl_delay_s": -0.5},
        {"max_crawl_delay_s": 7200},
        {"max_retry_afer_s": 10},  # typo: extra keys are refused
    ],
)
def test_politeness_keys_are_validated(bad):
    with pytest.raises(ValidationError):
        CrawlConfig(**bad)


def test_politeness_defaults():
    cfg = CrawlConfig()
    assert (cfg.max_retry_after_s, cfg.max_crawl_delay_s, cfg.total_timeout_s) == (120.0, 30.0, 60.0)
    assert cfg.connect_timeout_s is None
