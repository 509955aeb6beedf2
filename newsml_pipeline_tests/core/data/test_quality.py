"""Each data-quality check passes on good data, fails on bad data, and never passes on nothing."""

from __future__ import annotations

import polars as pl
import pytest

from newsml_pipeline.core.data.articles import content_hash
from newsml_pipeline.core.data.quality import (
    check_class_balance,
    check_coverage,
    check_duplicates,
    check_label_conflicts,
    check_min_class_count,
    check_text_lengths,
    run_quality_checks,
)
from newsml_pipeline.settings import QualityConfig

LABELS = ["business", "sport", "tech"]
CFG = QualityConfig(
    min_coverage=0.8, min_class_share=0.1, min_class_count=3, min_text_chars=20, max_text_chars=200
)


def _labeled(labels: list[str | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {"article_id": [f"a{i}" for i in range(len(labels))], "label": labels},
        schema_overrides={"label": pl.String},
    )


def test_coverage() -> None:
    good = check_coverage(_labeled(["sport"] * 9 + [None]), cfg=CFG)
    assert good.passed and good.metadata["coverage"] == 0.9
    bad = check_coverage(_labeled(["sport"] * 7 + [None] * 3), cfg=CFG)
    assert not bad.passed and bad.severity == "WARN" and "70.0%" in bad.description


def test_class_balance() -> None:
    ok = check_class_balance(
        _labeled(["business"] * 4 + ["sport"] * 3 + ["tech"] * 3), labels=LABELS, cfg=CFG
    )
    assert ok.passed
    skewed = check_class_balance(
        _labeled(["business"] * 95 + ["sport"] * 5 + [None] * 10), labels=LABELS, cfg=CFG
    )
    assert not skewed.passed and skewed.severity == "WARN"
    assert skewed.metadata["below_min_share"] == ["sport", "tech"]
    assert skewed.metadata["counts"] == {"business": 95, "sport": 5, "tech": 0}
    outside = check_class_balance(
        _labeled(["business", "sport", "tech", "weather"] * 5), labels=LABELS, cfg=CFG
    )
    assert not outside.passed and outside.metadata["outside_schema"] == ["weather"]


def test_min_class_count_is_an_error() -> None:
    ok = check_min_class_count(_labeled(["business", "sport", "tech"] * 3), labels=LABELS, cfg=CFG)
    assert ok.passed and ok.severity == "ERROR"
    bad = check_min_class_count(_labeled(["business"] * 10 + ["sport"] * 2), labels=LABELS, cfg=CFG)
    assert not bad.passed and bad.severity == "ERROR"
    assert bad.metadata["below_min"] == {"sport": 2, "tech": 0}
    assert "sport has 2, tech has 0 (needs ≥ 3)" in bad.description


def _raw(texts: list[str], near: list[str | None] | None = None) -> pl.DataFrame:
    n = len(texts)
    return pl.DataFrame(
        {
            "article_id": [f"a{i}" for i in range(n)],
            "text": texts,
            "content_hash": [content_hash(t) for t in texts],
            "near_duplicate_of": near or [None] * n,
        },
        schema_overrides={"near_duplicate_of": pl.String},
    )


def test_duplicates() -> None:
    texts = [f"article number {i} about things" for i in range(40)]
    assert check_duplicates(_raw(texts), cfg=CFG).passed
    dup_texts = texts + [texts[0], texts[0].upper(), texts[1]]  # content_hash ignores case
    near = [None] * 40 + [None, None, None]
    near[5] = "a4"
    res = check_duplicates(_raw(dup_texts, near), cfg=CFG)
    assert res.metadata["exact_duplicates"] == 3 and res.metadata["near_duplicates"] == 1
    assert not res.passed and res.severity == "WARN"  # 4/43 > 5%
    assert {"article_id": "a40", "content_hash": content_hash(texts[0])} in res.metadata["exact_examples"]
    assert res.metadata["near_examples"] == [{"article_id": "a5", "near_duplicate_of": "a4"}]


def test_label_conflicts() -> None:
    labeled = _labeled(["business", "sport", "tech", None, "sport"] * 4)
    gold = pl.DataFrame(
        {"article_id": labeled["article_id"], "label": ["business", "sport", "tech", "tech", "sport"] * 4}
    )
    assert check_label_conflicts(labeled, gold, cfg=CFG).passed
    gold_bad = gold.with_columns(
        pl.when(pl.col("article_id").is_in(["a0", "a5", "a10", "a15", "a1"]))
        .then(pl.lit("tech"))
        .otherwise(pl.col("label"))
        .alias("label")
    )
    res = check_label_conflicts(labeled, gold_bad, cfg=CFG)
    assert not res.passed and res.severity == "WARN"
    assert res.metadata["compared"] == 16 and res.metadata["conflicts"] == 5
    assert res.metadata["top_confusions"][0] == {"gold": "tech", "auto": "business", "count": 4}
    assert res.metadata["examples"][0] == {"article_id": "a0", "auto_label": "business", "gold_label": "tech"}


def test_text_lengths() -> None:
    ok = check_text_lengths(_raw(["x" * 50] * 30), cfg=CFG)
    assert ok.passed and ok.metadata["median_chars"] == 50
    res = check_text_lengths(_raw(["x" * 50] * 20 + ["short", "y" * 500]), cfg=CFG)
    assert not res.passed and res.metadata["too_short"] == 1 and res.metadata["too_long"] == 1
    assert res.metadata["short_examples"] == [{"article_id": "a20", "chars": 5}]


@pytest.mark.parametrize(
    "call",
    [
        lambda: check_coverage(_labeled([]), cfg=CFG),
        lambda: check_class_balance(_labeled([None, None]), labels=LABELS, cfg=CFG),
        lambda: check_min_class_count(_labeled([]), labels=LABELS, cfg=CFG),
        lambda: check_duplicates(_raw([]), cfg=CFG),
        lambda: check_text_lengths(_raw([]), cfg=CFG),
        lambda: check_label_conflicts(
            _labeled(["sport"]), pl.DataFrame({"article_id": ["zz"], "label": ["sport"]}), cfg=CFG
        ),
    ],
)
def test_empty_input_fails_clearly(call) -> None:
    res = call()
    assert not res.passed and "no " in res.description and "empty" in res.description


def test_missing_column_is_a_clear_error() -> None:
    with pytest.raises(
        ValueError, match=r"quality check 'duplicates': input lacks columns \['near_duplicate_of'\]"
    ):
        check_duplicates(pl.DataFrame({"article_id": ["a"], "content_hash": ["h"]}), cfg=CFG)


def test_run_quality_checks_on_real_bbc_rows(bbc_rows: list[dict]) -> None:
    rows = bbc_rows[:400]
    raw = _raw([r["text"] for r in rows])
    labeled = _labeled([r["label"] for r in rows])
    gold = pl.DataFrame({"article_id": labeled["article_id"], "label": [r["label"] for r in rows]})
    labels = sorted({r["label"] for r in rows})
    results = {
        r.name: r
        for r in run_quality_checks(raw=raw, labeled=labeled, gold=gold, labels=labels, cfg=QualityConfig())
    }
    assert set(results) == {
        "coverage",
        "class_balance",
        "min_class_count",
        "duplicates",
        "text_lengths",
        "label_conflicts",
    }
    assert results["coverage"].passed and results["label_conflicts"].metadata["conflicts"] == 0
    assert results["text_lengths"].metadata["median_chars"] > 1000
