"""Review queue selection: one pick per cluster, the most uncertain, classes that need gold first."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from newsml_pipeline.core.labeling.review_queue import QUEUE_SCHEMA, select_for_review

DAY = date(2026, 11, 20)


def _cands(confidences: list[float | None], labels: list[str | None]) -> pl.DataFrame:
    n = len(confidences)
    return pl.DataFrame(
        {
            "article_id": [f"a{i}" for i in range(n)],
            "partition_date": [DAY] * n,
            "title": [f"title {i}" for i in range(n)],
            "text": [f"Lead paragraph {i}.\nMore text." for i in range(n)],
            "url": [None] * n,
            "suggested_label": labels,
            "confidence": confidences,
        },
        schema_overrides={"confidence": pl.Float64, "suggested_label": pl.String, "url": pl.String},
    )


def _blobs(sizes: list[int], seed: int = 0) -> np.ndarray:
    """Well separated groups of unit vectors, in order."""
    rng = np.random.default_rng(seed)
    centres = np.eye(8)[: len(sizes)] * 10
    pts = np.concatenate(
        [c + rng.normal(scale=0.1, size=(n, 8)) for c, n in zip(centres, sizes, strict=True)]
    )
    return pts / np.linalg.norm(pts, axis=1, keepdims=True)


def test_one_pick_per_cluster_the_most_uncertain() -> None:
    conf = [0.9, 0.4, 0.95, 0.8, 0.3, 0.99, 0.7, 0.6, 0.97]
    cands = _cands(conf, ["sport"] * 9)
    emb = _blobs([3, 3, 3])
    q = select_for_review(cands, emb, budget=3, need={"sport": 0})
    assert q.schema == pl.Schema(QUEUE_SCHEMA)
    assert sorted(q["article_id"].to_list()) == ["a1", "a4", "a7"]  # the least confident of each group
    assert q["rank"].to_list() == [1, 2, 3]
    assert q["article_id"][0] == "a4"  # the most uncertain overall comes first
    assert q["cluster"].n_unique() == 3
    assert q["lead"][0] == "Lead paragraph 4."


def test_a_class_that_needs_gold_wins_a_close_call() -> None:
    cands = _cands([0.50, 0.55, 0.9, 0.9], ["business", "tech", "sport", "sport"])
    emb = _blobs([2, 2])
    q = select_for_review(
        cands, emb, budget=2, need={"tech": 5, "business": 0, "sport": 0}, coverage_weight=0.5
    )
    assert "a1" in q["article_id"].to_list()  # tech needs labels: 0.45 + 0.5 beats business's 0.5
    assert "class 'tech' needs 5 more" in q.filter(pl.col("article_id") == "a1")["reason"].item()


def test_abstained_articles_are_fully_uncertain_and_budget_is_kept() -> None:
    cands = _cands([None, 0.6, 0.7, 0.8], [None, "sport", "sport", "sport"])
    q = select_for_review(cands, _blobs([4]), budget=1, need={})
    assert q["article_id"].to_list() == ["a0"] and q["uncertainty"].item() == 1.0
    assert "abstained" in q["reason"].item()
    big = select_for_review(cands, _blobs([1, 1, 1, 1]), budget=10, need={})
    assert big.height == 4  # never more than there are candidates
    assert select_for_review(cands.head(0), np.zeros((0, 8)), budget=5, need={}).is_empty()


def test_same_input_same_queue() -> None:
    rng = np.random.default_rng(1)
    cands = _cands(rng.uniform(0.3, 1.0, size=60).tolist(), ["sport", "tech", "business"] * 20)
    emb = rng.normal(size=(60, 16))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    a = select_for_review(cands, emb, budget=10, need={"tech": 3})
    b = select_for_review(cands, emb, budget=10, need={"tech": 3})
    assert a.equals(b) and a.height == 10
