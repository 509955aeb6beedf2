"""The shared corpora as the benchmarks read them (`../shared/corpora`, never copied into the repo).

`NEWSML_SHARED` points at the shared folder when the checkout is not beside it. The tests load
this module too, so benchmarks and tests always read the same data."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import polars as pl

SHARED = Path(os.environ.get("NEWSML_SHARED", Path(__file__).resolve().parents[2] / "shared")).resolve()
CORPORA = SHARED / "corpora"
BBC_CORPUS = CORPORA / "bbc_news" / "bbc_news.jsonl.gz"


def read_jsonl_gz(path: Path, limit: int | None = None) -> list[dict]:
    """The first `limit` rows (all by default), read as a stream so a small sample stays cheap."""
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


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
