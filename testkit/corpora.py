"""The shared corpora as the benchmarks read them (`../shared/corpora`, never copied into the repo).

`NEWSML_SHARED` points at the shared folder when the checkout is not beside it. The tests import
this module too, so benchmarks and tests always read the same data; JSONL reads through the
package's one reader (core/records.py)."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from newsml_pipeline.core.records import read_jsonl

SHARED = Path(os.environ.get("NEWSML_SHARED", Path(__file__).resolve().parents[2] / "shared")).resolve()
CORPORA = SHARED / "corpora"
BBC_CORPUS = CORPORA / "bbc_news" / "bbc_news.jsonl.gz"


def read_jsonl_gz(path: Path, limit: int | None = None) -> list[dict]:
    """The first `limit` rows (all by default), read as a stream so a small sample stays cheap."""
    return read_jsonl(path, limit=limit)


def load_bbc(path: Path = BBC_CORPUS, *, limit: int | None = None, unique: bool = False) -> pl.DataFrame:
    """BBC articles with their gold topic (`unique`: exact duplicates of another article dropped)."""
    rows = [
        {
            "article_id": r["id"],
            "title": r["title"],
            "text": r["text"],
            "url": r.get("url"),
            "gold_label": r["label"],
        }
        for r in read_jsonl_gz(path)
        if not (unique and r.get("duplicate_of"))
    ]
    return pl.DataFrame(rows[:limit] if limit else rows, schema_overrides={"url": pl.String})
