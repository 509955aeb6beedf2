"""A small warehouse for labelling-page tests: raw_articles, labeled_articles and a review_queue
with the contract columns of the `review_queue` asset (written here, the asset is not needed)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from newsml_pipeline.core.data.schema import LABELED_ARTICLES, RAW_ARTICLES, conform
from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.labeling.review_queue import QUEUE_SCHEMA

DAY = date(2026, 11, 30)
# the asset's own column contract
REVIEW_QUEUE = QUEUE_SCHEMA


def write_articles(wh: Warehouse, ids: list[str], *, gold: dict[str, str] | None = None) -> None:
    gold = gold or {}
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    raw = pl.DataFrame(
        {
            "article_id": ids,
            "url": [f"https://news.example.com/story/{i}" for i in ids],
            "source": ["inbox"] * len(ids),
            "title": [f"Title of {i}" for i in ids],
            "text": [f"Body text of article {i}. " * 20 for i in ids],
            "published_at": [now] * len(ids),
            "fetched_at": [now] * len(ids),
            "partition_date": [DAY] * len(ids),
            "content_hash": [f"hash-{i}" for i in ids],
            "gold_label": [gold.get(i) for i in ids],
            "text_from_summary": [False] * len(ids),
            "near_duplicate_of": [None] * len(ids),
        }
    )
    wh.replace_table("raw_articles", conform(raw, RAW_ARTICLES, table="raw_articles"))


def write_labeled(wh: Warehouse, ids: list[str], *, label: str = "business") -> None:
    rows = pl.DataFrame(
        {
            "article_id": ids,
            "partition_date": [DAY] * len(ids),
            "label": [label] * len(ids),
            "confidence": [0.6] * len(ids),
            "votes": ["{}"] * len(ids),
        }
    )
    wh.replace_table("labeled_articles", conform(rows, LABELED_ARTICLES, table="labeled_articles"))


def write_queue(wh: Warehouse, ids: list[str], *, suggested: list[str | None] | None = None) -> None:
    """Queue rows in the given order (rank 1 = first); url null for the last one."""
    n = len(ids)
    suggested = suggested or [None] * n
    rows = pl.DataFrame(
        {
            "article_id": ids,
            "partition_date": [DAY] * n,
            "title": [f"Title of {i}" for i in ids],
            "lead": [f"Lead of {i}." for i in ids],
            "url": [f"https://news.example.com/story/{i}" for i in ids[:-1]] + [None],
            "suggested_label": suggested,
            "confidence": [0.41 if s else None for s in suggested],
            "uncertainty": [0.9 - 0.01 * k for k in range(n)],
            "cluster": list(range(n)),
            "reason": ["uncertain"] * n,
            "rank": list(range(1, n + 1)),
        },
        schema=REVIEW_QUEUE,
    )
    wh.replace_table("review_queue", rows)


def make_home(home: Path, ids: list[str], *, queue: list[str] | None = None, **kw) -> Warehouse:  # noqa: ANN003
    wh = Warehouse(home / "warehouse.duckdb")
    write_articles(wh, ids, **kw)
    write_labeled(wh, ids)
    write_queue(wh, queue if queue is not None else ids)
    return wh
