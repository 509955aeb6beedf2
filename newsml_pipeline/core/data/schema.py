"""Column contracts of the warehouse tables (DESIGN.md §2), as polars schemas.

Every writer builds its frame through `conform`, so a missing contract column is an error at the
writer rather than a surprise for a reader three assets downstream.
"""

from __future__ import annotations

import polars as pl

UTC_DT = pl.Datetime("us", "UTC")

RAW_ARTICLES: dict[str, pl.DataType] = {
    "article_id": pl.String(),  # stable: hash of the canonical URL (or source+id, or content)
    "url": pl.String(),  # canonical URL (nullable for local records without one)
    "source": pl.String(),  # config source name
    "title": pl.String(),
    "text": pl.String(),
    "published_at": UTC_DT,  # nullable
    "fetched_at": UTC_DT,
    "partition_date": pl.Date(),  # published date, else fetch date (UTC)
    "content_hash": pl.String(),  # sha1 of normalised text: exact duplicates share it
    "gold_label": pl.String(),  # trusted label carried by the source (nullable)
    "text_from_summary": pl.Boolean(),  # True where page extraction failed and the feed summary was used
    "near_duplicate_of": pl.String(),  # article_id of a near-identical article (nullable)
}

LABELED_ARTICLES: dict[str, pl.DataType] = {
    "article_id": pl.String(),
    "partition_date": pl.Date(),
    "label": pl.String(),  # null = abstain
    "confidence": pl.Float64(),
    "votes": pl.String(),  # JSON object: labeling function -> label or null
}

DATASET_SPLITS: dict[str, pl.DataType] = {
    "article_id": pl.String(),
    "split": pl.String(),  # train / val / test
    "label": pl.String(),
    "label_source": pl.String(),  # auto / gold
}

SCORED_ARTICLES: dict[str, pl.DataType] = {
    "article_id": pl.String(),
    "partition_date": pl.Date(),
    "model_version": pl.String(),
    "label": pl.String(),
    "confidence": pl.Float64(),
}


def conform(df: pl.DataFrame, schema: dict[str, pl.DataType], *, table: str) -> pl.DataFrame:
    """Cast contract columns to their types and put them first; extra columns are kept after them."""
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise ValueError(f"{table}: missing contract columns {missing}")
    head = [pl.col(c).cast(t) for c, t in schema.items()]
    rest = [c for c in df.columns if c not in schema]
    return df.select(head + rest)


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)
