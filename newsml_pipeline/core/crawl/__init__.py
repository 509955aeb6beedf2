"""Crawling and sources: feeds, polite async fetching, robots.txt, extraction, canonical URLs.

Main entry point: `collect_articles(config.sources, crawl_cfg=config.crawl, state_dir=home,
fetched_at=now)` → (frame in the raw_articles contract, one SourceReport per source); then
`newsml_pipeline.core.data.article_store.ArticleStore.record` to store them.
"""

from newsml_pipeline.core.crawl.crawler import CrawledPage, CrawlStats, PageRequest, crawl_pages
from newsml_pipeline.core.crawl.extract import ExtractedPage, ExtractorPool, extract_html
from newsml_pipeline.core.crawl.feeds import FeedEntry, FeedError, ParsedFeed, parse_feed
from newsml_pipeline.core.crawl.fetcher import Fetcher, FetchResult
from newsml_pipeline.core.crawl.robots import RobotsCache
from newsml_pipeline.core.crawl.sources import (
    SourceError,
    SourceReport,
    collect_articles,
    hf_articles,
    local_articles,
    rss_articles_async,
)
from newsml_pipeline.core.crawl.state import PageCache
from newsml_pipeline.core.crawl.urls import article_id_for, canonicalize_url

__all__ = [
    "CrawlStats",
    "CrawledPage",
    "ExtractedPage",
    "ExtractorPool",
    "FeedEntry",
    "FeedError",
    "FetchResult",
    "Fetcher",
    "PageCache",
    "PageRequest",
    "ParsedFeed",
    "RobotsCache",
    "SourceError",
    "SourceReport",
    "article_id_for",
    "canonicalize_url",
    "collect_articles",
    "crawl_pages",
    "extract_html",
    "hf_articles",
    "local_articles",
    "parse_feed",
    "rss_articles_async",
]
