"""What a crawl remembers between runs: each page's validators and its extracted article.

A conditional GET (If-None-Match / If-Modified-Since) that comes back 304 saves the download
and the extraction, but the partition that is being re-materialized still needs the article's
row. So the extraction result is stored next to the ETag/Last-Modified it belongs to, and a 304
re-uses it. Stored in a small DuckDB file under NEWSML_HOME (`Settings.crawl_state_path`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from newsml_pipeline.core.data.warehouse import Warehouse

log = logging.getLogger(__name__)

_TABLE = "page_cache"
_SCHEMA: dict[str, pl.DataType] = {
    "url": pl.String(),
    "etag": pl.String(),
    "last_modified": pl.String(),
    "final_url": pl.String(),
    "title": pl.String(),
    "text": pl.String(),
    "published": pl.Datetime("us", "UTC"),
    "stored_at": pl.Datetime("us", "UTC"),
}


@dataclass(frozen=True)
class CachedPage:
    url: str  # the URL as requested (the key)
    etag: str | None
    last_modified: str | None
    final_url: str | None
    title: str | None
    text: str | None
    published: datetime | None
    stored_at: datetime


class PageCache:
    """Validators + extracted articles by requested URL, in a DuckDB file (short connections)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = Warehouse(self.path)

    def lookup(self, urls: list[str]) -> dict[str, CachedPage]:
        """Stored pages for these URLs (missing ones are simply absent)."""
        if not urls or not self.path.exists() or not self._db.table_exists(_TABLE):
            return {}
        df = self._db.query(f"SELECT * FROM {_TABLE} WHERE url = ANY(?)", [sorted(set(urls))])
        return {r["url"]: CachedPage(**{k: r[k] for k in _SCHEMA}) for r in df.iter_rows(named=True)}

    def store(self, pages: list[CachedPage]) -> None:
        """Insert or replace pages (only worth it for pages that sent an ETag or Last-Modified)."""
        if not pages:
            return
        rows = {k: [getattr(p, k) for p in pages] for k in _SCHEMA}
        df = pl.DataFrame(rows, schema=_SCHEMA).unique(subset="url", keep="last", maintain_order=True)
        self._db.upsert(_TABLE, df, key="url")
        log.debug("page cache %s: stored %d pages", self.path, len(df))
