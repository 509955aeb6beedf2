"""Each fetch path against the loopback server: errors are results, never exceptions."""

from __future__ import annotations

import asyncio
import time

from newsml_pipeline.core.crawl.fetcher import Fetcher
from newsml_pipeline_tests.core.crawl.conftest import fetch


def test_good_page(server, crawl_cfg):
    res, _ = fetch(crawl_cfg, server.url("/pages/0"))
    assert res.ok and res.status == 200 and res.content == server.pages[0]["html"]
    assert res.content_type == "text/html" and res.redirects == []


def test_404_is_an_error_without_retry(server, crawl_cfg):
    res, _ = fetch(crawl_cfg, server.url("/missing?t=404"))
    assert not res.ok and res.status == 404 and "HTTP 404" in res.error
    assert res.attempts == 1 and server.hits["/missing?t=404"] == 1


def test_500_then_success_is_retried(server, crawl_cfg):
    res, _ = fetch(crawl_cfg, server.url("/flaky/a"))
    assert res.ok and res.status == 200 and res.attempts == 2
    assert server.hits["/flaky/a"] == 2


def test_persistent_5xx_gives_up_after_retries(server, crawl_cfg):
    res, _ = fetch(crawl_cfg, server.url("/always500/x"))
    assert not res.ok and "503" in res.error and "gave up after 3 attempts" in res.error
    assert server.hits["/always500/x"] == 1 + crawl_cfg.retries


def test_slow_host_times_out(server, crawl_cfg):
    cfg = crawl_cfg.model_copy(update={"retries": 0, "timeout_s": 0.3})
    start = time.monotonic()
    res, _ = fetch(cfg, server.url("/slow"))
    assert not res.ok and "timeout" in res.error
    assert time.monotonic() - start < 1.5


def test_robots_disallow_and_robots_fetched_once(server, crawl_cfg):
    async def go():
        async with Fetcher.from_config(crawl_cfg, allow_private=True) as f:
            return await asyncio.gather(
                f.fetch(server.url("/private/secret")), f.fetch(server.url("/pages/1"))
            )

    before = server.hits["/robots.txt"]
    blocked, ok = asyncio.run(go())
    assert not blocked.ok and "robots.txt" in blocked.error and blocked.status is None
    assert ok.ok
    assert server.hits["/robots.txt"] == before + 1


def test_robots_ignored_when_configured_off(server, crawl_cfg):
    res, _ = fetch(crawl_cfg.model_copy(update={"respect_robots": False}), server.url("/private/other"))
    assert res.ok


def test_non_html_content_type_is_refused(server, crawl_cfg):
    res, _ = fetch(crawl_cfg, server.url("/binary"))
    assert not res.ok and "application/pdf" in res.error and res.content is None


def test_oversized_page_by_header_and_while_streaming(server, crawl_cfg):
    by_header, _ = fetch(crawl_cfg, server.url("/big"))
    assert not by_header.ok and "Content-Length" in by_header.error
    streamed, _ = fetch(crawl_cfg, server.url("/big-stream"))
    assert not streamed.ok and "exceeds max_bytes" in streamed.error and streamed.content is None


def test_redirect_chain_is_followed_and_recorded(server, crawl_cfg):
    res, _ = fetch(crawl_cfg, server.url("/redirect/3"))
    assert res.ok and res.final_url == server.url("/pages/3")
    assert res.redirects == [server.url("/redirect/2"), server.url("/redirect/1"), server.url("/pages/3")]
    too_many, _ = fetch(crawl_cfg.model_copy(update={"max_redirects": 1}), server.url("/redirect/3"))
    assert not too_many.ok and "too many redirects" in too_many.error


def test_conditional_get_304(server, crawl_cfg):
    first, _ = fetch(crawl_cfg, server.url("/etag"))
    assert first.ok and first.etag == '"v1"'
    again, _ = fetch(crawl_cfg, server.url("/etag"), etag=first.etag)
    assert again.ok and again.not_modified and again.status == 304 and again.content is None


def test_private_and_loopback_addresses_refused_unless_allowed(server, crawl_cfg):
    for url in (
        server.url("/pages/0"),
        "http://localhost:9/x",
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest",
    ):
        res, _ = fetch(crawl_cfg, url, allow_private=False)
        assert not res.ok and "non-public address" in res.error, url
        assert res.status is None
    assert server.hits["/pages/0?never"] == 0


def test_unresolvable_host_is_an_error_not_an_exception(crawl_cfg):
    res, _ = fetch(crawl_cfg, "http://no-such-host.invalid/x", allow_private=False)
    assert not res.ok and "resolve" in res.error


def test_per_host_rate_limit_spaces_requests(server, crawl_cfg):
    cfg = crawl_cfg.model_copy(update={"per_host_rps": 10.0, "respect_robots": False})

    async def go():
        async with Fetcher.from_config(cfg, allow_private=True) as f:
            start = time.monotonic()
            await asyncio.gather(*(f.fetch(server.url(f"/pages/{i}")) for i in range(6)))
            return time.monotonic() - start

    assert asyncio.run(go()) >= 0.45  # 6 requests at 10/s: starts at 0, .1, ..., .5
