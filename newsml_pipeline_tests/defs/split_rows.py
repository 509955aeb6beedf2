"""A warehouse whose splits can (or, with a class left out, cannot) be built: for readiness tests."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import polars as pl

from newsml_pipeline.core.data.warehouse import Warehouse

LABELS = ["business", "entertainment", "politics", "sport", "tech"]
DAY = date(2026, 11, 20)
# Config overrides: five one-keyword classes, gold evaluation, no window, no label-issue pass.
READY_SETTINGS: dict[str, Any] = dict(
    labels={"categories": [{"name": n, "description": f"{n} news", "keywords": [n]} for n in LABELS]},
    splits={"window_days": None, "drop_label_issues": False},
    gate={"evaluation": "gold", "min_test_rows": 1},
)


def write_articles(wh: Warehouse, classes: list[str], per_class: int = 40) -> None:
    """raw_articles + labeled_articles: `per_class` gold-labelled, auto-labelled rows per class."""
    rows = [(c, i) for c in classes for i in range(per_class)]
    ids = [f"{c}-{i:03d}" for c, i in rows]
    wh.replace_table(
        "raw_articles",
        pl.DataFrame(
            {
                "article_id": ids,
                "url": [f"https://example.org/{a}" for a in ids],
                "source": ["inbox"] * len(ids),
                "title": [f"{c} story {i}" for c, i in rows],
                "text": [f"all about {c}, item {i}" for c, i in rows],
                "partition_date": [DAY] * len(ids),
                "content_hash": ids,
                "near_duplicate_of": pl.Series([None] * len(ids), dtype=pl.String),
                "gold_label": [c for c, _ in rows],
            }
        ),
    )
    wh.replace_table(
        "labeled_articles",
        pl.DataFrame(
            {
                "article_id": ids,
                "partition_date": [DAY] * len(ids),
                "label": [c for c, _ in rows],
                "confidence": [0.9] * len(ids),
                "votes": [json.dumps({"keywords": c}) for c, _ in rows],
            }
        ),
    )
