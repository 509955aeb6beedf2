"""Fetch + extract many article pages concurrently: the heart of the `rss` source.

Pages are fetched on the event loop (bounded by the fetcher) and each body goes straight to
the extraction pool, so the CPU-bound extraction of earlier pages overlaps the downloads of
later ones. The number of pages in flight is bounded so bodies never pile up in memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from newsml_pipeline.core.crawl.extract import ExtractedPage, ExtractorPool
from newsml_pipeline.core.crawl.fetcher import Fetcher, FetchResult
from newsml_pipeline.core.crawl.state import CachedPage, PageCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PageRequest:
    url: str
    title: str | None = None  # from the feed; when present the page's own title is not needed
    summary: str | None = None  # plain-text feed summary: the fallback text
    published: datetime | None = None  # from the feed; when present no date guessing is done


@dataclass
class CrawledPage:
    request: PageRequest
    final_url: str | None = None
    redirects: list[str] = field(default_factory=list)
    title: str | None = None
    text: str | None = None
    published: datetime | None = None
    text_from_summary: bool = False
    not_modified: bool = False  # served from the page cache after a 304
    error: str | None = None  # fetch/extraction problem (the row may still exist via the summary)
    status: int | None = None

    @property
    def has_text(self) -> bool:
        return bool(self.text)


@dataclass
class CrawlStats:
    pages: int = 0
    fetched: int = 0
    not_modified: int = 0
    extracted: int = 0
    from_summary: int = 0
    failed: int = 0  # no text at all
    elapsed_s: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _finish(page: CrawledPage, extracted: ExtractedPage | None) -> CrawledPage:
    req = page.request
    if extracted is not None and extracted.text:
        page.text = extracted.text
        page.title = req.title or extracted.title
        page.published = req.published or extracted.published
    elif req.summary:
        page.text = req.summary
        page.text_from_summary = True
        page.title = req.title or (extracted.title if extracted else None)
        page.published = req.published or (extracted.published if extracted else None)
    else:
        page.title = req.title
        page.published = req.published
    return page


async def _crawl_one(
    req: PageRequest,
    *,
    fetcher: Fetcher,
    extractor: ExtractorPool,
    cached: CachedPage | None,
    to_store: list[CachedPage],
    stats: CrawlStats,
) -> CrawledPage:
    page = CrawledPage(request=req)
    res: FetchResult = await fetcher.fetch(
        req.url,
        kind="page",
        etag=cached.etag if cached else None,
        last_modified=cached.last_modified if cached else None,
    )
    page.final_url, page.redirects, page.status = res.final_url, res.redirects, res.status
    if res.not_modified and cached is not None:
        stats.not_modified += 1
        page.not_modified = True
        page.final_url = cached.final_url or page.final_url
        return _finish(page, ExtractedPage(text=cached.text, title=cached.title, published=cached.published))
    if not res.ok or res.content is None:
        page.error = res.error or f"no content from {req.url}"
        return _finish(page, None)
    stats.fetched += 1
    need_meta = req.title is None or req.published is None
    try:
        extracted = await extractor.extract(res.content, url=res.final_url, with_metadata=need_meta)
    except Exception as e:  # noqa: BLE001 - a page that crashes the extractor is reported, not fatal
        log.warning("extraction failed for %s: %s", req.url, e)
        page.error = f"extraction failed for {req.url}: {type(e).__name__}: {e}"
        return _finish(page, None)
    if not extracted.text:
        page.error = f"no main text extracted from {req.url}"
    if (res.etag or res.last_modified) and extracted.text:
        to_store.append(
            CachedPage(
                url=req.url,
                etag=res.etag,
                last_modified=res.last_modified,
                final_url=res.final_url,
                title=extracted.title,
                text=extracted.text,
                published=extracted.published,
                stored_at=datetime.now(UTC),
            )
        )
    return _finish(page, extracted)


async def crawl_pages(
    requests: list[PageRequest],
    *,
    fetcher: Fetcher,
    extractor: ExtractorPool,
    cache: PageCache | None = None,
    max_in_flight: int | None = None,
) -> tuple[list[CrawledPage], CrawlStats]:
    """Fetch and extract every request; results come back in request order, one per request.

    A page whose fetch or extraction fails falls back to its feed summary (flagged
    `text_from_summary`) and carries the error; with no summary it has `text=None`.
    """
    stats = CrawlStats(pages=len(requests))
    start = time.monotonic()
    cached = cache.lookup([r.url for r in requests]) if cache is not None else {}
    to_store: list[CachedPage] = []
    limit = asyncio.Semaphore(max_in_flight or (fetcher.concurrency + 4 * max(1, extractor.workers)))
    done = 0

    async def bounded(req: PageRequest) -> CrawledPage:
        nonlocal done
        async with limit:
            page = await _crawl_one(
                req,
                fetcher=fetcher,
                extractor=extractor,
                cached=cached.get(req.url),
                to_store=to_store,
                stats=stats,
            )
        done += 1
        if done % 200 == 0:
            log.info(
                "crawled %d/%d pages (%.1f pages/s)", done, len(requests), done / (time.monotonic() - start)
            )
        return page

    pages = list(await asyncio.gather(*(bounded(r) for r in requests)))
    if cache is not None and to_store:
        cache.store(to_store)
    for p in pages:
        if p.text_from_summary:
            stats.from_summary += 1
        elif p.text:
            stats.extracted += 1
        else:
            stats.failed += 1
    stats.elapsed_s = time.monotonic() - start
    return pages, stats
