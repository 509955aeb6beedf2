"""Loopback server and crawl settings shared by the crawl tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from newsml_pipeline.core.crawl.fetcher import Fetcher
from newsml_pipeline.settings import CrawlConfig
from testkit.loopback import LoopbackServer


@pytest.fixture(scope="session")
def server(corpora: Path):
    srv = LoopbackServer(corpora, slow_s=2.0).start()
    yield srv
    srv.stop()


@pytest.fixture
def crawl_cfg() -> CrawlConfig:
    """Fast failure settings for loopback tests (real defaults are slower and politer)."""
    return CrawlConfig(
        concurrency=8,
        per_host_rps=1000.0,
        timeout_s=0.5,
        retries=2,
        backoff_s=0.01,
        max_bytes=1_000_000,
        allow_private_hosts=True,
        extract_workers=1,
    )


def fetch(cfg: CrawlConfig, url: str, **kw):
    """Run one fetch through a fresh Fetcher (allowing loopback unless told otherwise)."""
    allow = kw.pop("allow_private", True)
    kind = kw.pop("kind", "page")

    async def go():
        async with Fetcher.from_config(cfg, allow_private=allow) as f:
            return await f.fetch(url, kind=kind, **kw), f

    return asyncio.run(go())
