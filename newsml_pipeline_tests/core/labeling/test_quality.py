import polars as pl

from newsml_pipeline.core.data import quality
from newsml_pipeline.settings import QualityConfig

LABELS = ["a", "b", "c"]


def test_coverage_balance_and_min_count():
    labeled = pl.DataFrame(
        {"article_id": [str(i) for i in range(10)], "label": ["a"] * 6 + ["b"] * 2 + [None] * 2}
    )
    cov = quality.check_coverage(labeled, min_coverage=0.9)
    assert not cov.passed and cov.metadata["coverage"] == 0.8 and cov.severity == "WARN"
    bal = quality.check_class_balance(labeled, labels=LABELS, min_class_share=0.1)
    assert not bal.passed and bal.metadata["low_classes"] == ["c"]
    cnt = quality.check_min_class_count(labeled, labels=LABELS, min_class_count=2)
    assert not cnt.passed and cnt.severity == "ERROR" and cnt.metadata["low_classes"] == ["c"]
    ok = quality.check_min_class_count(labeled, labels=["a", "b"], min_class_count=2)
    assert ok.passed


def test_duplicates_lengths_and_conflicts():
    raw = pl.DataFrame(
        {
            "article_id": ["1", "2", "3", "4"],
            "text": ["x" * 500, "x" * 500, "short", "y" * 5000],
            "content_hash": ["h", "h", "k", "m"],
            "near_duplicate_of": [None, None, None, "1"],
        }
    )
    exact, near = quality.check_duplicates(raw)
    assert not exact.passed and exact.metadata["exact_duplicates"] == 1
    assert not near.passed and near.metadata["near_duplicates"] == 1
    assert quality.check_duplicates(raw, max_share=0.5)[0].passed
    lengths = quality.check_text_lengths(raw, min_chars=100, max_chars=1000)
    assert not lengths.passed and lengths.metadata["too_short"] == 1 and lengths.metadata["too_long"] == 1
    labeled = pl.DataFrame({"article_id": ["1", "2", "3"], "label": ["a", "b", None]})
    trusted = pl.DataFrame({"article_id": ["1", "2", "3"], "label": ["a", "a", "c"]})
    conf = quality.check_feedback_conflicts(labeled, trusted)
    assert not conf.passed and conf.metadata["conflicts"] == 1 and conf.metadata["compared"] == 2
    all_checks = quality.run_quality_checks(
        raw=raw, labeled=labeled, labels=LABELS, quality_cfg=QualityConfig(), trusted=trusted
    )
    assert {c.name for c in all_checks} >= {
        "label_coverage",
        "class_balance",
        "min_class_count",
        "exact_duplicates",
        "text_lengths",
        "feedback_conflicts",
    }
