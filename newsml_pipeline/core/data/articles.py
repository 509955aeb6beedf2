"""Article identity helpers: content hashes (exact duplicates share one) and partition dates.

Storing and deduplicating articles is `article_store`'s job; near-duplicates are `near_duplicates`'.
"""

from __future__ import annotations

import hashlib

import polars as pl


def normalise_text(text: str) -> str:
    return " ".join(text.lower().split())


def content_hash(text: str | None) -> str:
    """sha1 of the whitespace-normalised lowercase text: exact duplicates share it."""
    return hashlib.sha1(normalise_text(text or "").encode("utf-8")).hexdigest()


def with_partition_date(df: pl.DataFrame) -> pl.DataFrame:
    """Set `partition_date`: the UTC date of `published_at`, else of `fetched_at`."""
    return df.with_columns(
        pl.coalesce(
            pl.col("published_at").dt.convert_time_zone("UTC").dt.date(),
            pl.col("fetched_at").dt.convert_time_zone("UTC").dt.date(),
        ).alias("partition_date")
    )
