from datetime import date, timedelta

import polars as pl
import pytest

from newsml_pipeline.core.data.splits import SplitError, build_splits, group_keys
from newsml_pipeline.settings import SplitsConfig

LABELS = ["a", "b", "c"]
TODAY = date(2026, 11, 20)


def frame(n: int, *, start: int = 0, gold_every: int = 1, dated: bool = False) -> pl.DataFrame:
    ids = [f"art{i:05d}" for i in range(start, start + n)]
    return pl.DataFrame(
        {
            "article_id": ids,
            "label": [LABELS[i % 3] for i in range(start, start + n)],
            "gold_label": [
                LABELS[(i + (i % 7 == 0)) % 3] if i % gold_every == 0 else None
                for i in range(start, start + n)
            ],
            "content_hash": [f"h{i}" for i in range(start, start + n)],
            "near_duplicate_of": [None] * n,
            "partition_date": [
                TODAY - timedelta(days=i % 120) if dated else None for i in range(start, start + n)
            ],
        },
        schema_overrides={"near_duplicate_of": pl.String, "partition_date": pl.Date},
    )


CFG = SplitsConfig(window_days=None, min_per_class_train=3, min_per_class_eval=2)


def test_adding_articles_never_moves_old_ones():
    base = frame(600)
    s1, _ = build_splits(base, splits_cfg=CFG, labels=LABELS, today=TODAY)
    s2, _ = build_splits(pl.concat([base, frame(400, start=600)]), splits_cfg=CFG, labels=LABELS, today=TODAY)
    joined = s1.join(s2, on="article_id", suffix="_new")
    assert joined.height == s1.height
    assert (joined["split"] == joined["split_new"]).all()
    # and the same input twice gives the same frame
    again, _ = build_splits(base, splits_cfg=CFG, labels=LABELS, today=TODAY)
    assert again.equals(s1)


def test_fractions_and_label_sources():
    out, report = build_splits(frame(3000, gold_every=2), splits_cfg=CFG, labels=LABELS, today=TODAY)
    evals = out.filter(pl.col("split") != "train")
    assert (evals["label_source"] == "gold").all()
    train = out.filter(pl.col("split") == "train")
    assert (train["label_source"] == "auto").all()
    # eval rows carry the gold label, train rows the auto-label (they differ for i % 7 == 0)
    src = frame(3000, gold_every=2)
    merged = out.join(src, on="article_id", suffix="_src")
    assert (
        merged.filter(pl.col("split") != "train")["label"]
        == merged.filter(pl.col("split") != "train")["gold_label"]
    ).all()
    assert (
        merged.filter(pl.col("split") == "train")["label"]
        == merged.filter(pl.col("split") == "train")["label_src"]
    ).all()
    n_gold = 1500
    assert report["rows_per_split"]["test"] == pytest.approx(0.15 * n_gold, rel=0.2)
    assert report["rows_per_split"]["val"] == pytest.approx(0.15 * n_gold, rel=0.2)
    for s in ("val", "test"):  # stratified in expectation: each class near its share
        for c in LABELS:
            assert report["counts"][s][c] == pytest.approx(report["rows_per_split"][s] / 3, rel=0.35)


def test_train_on_gold_uses_gold_labels_in_train():
    cfg = SplitsConfig(window_days=None, train_on_gold=True, min_per_class_train=3, min_per_class_eval=2)
    out, _ = build_splits(frame(900), splits_cfg=cfg, labels=LABELS, today=TODAY)
    assert (out["label_source"] == "gold").all()


def test_near_duplicate_groups_stay_in_one_split():
    df = frame(900)
    # chains: every 10th article has two near duplicates and one exact copy
    extra = []
    for i in range(0, 900, 10):
        root = f"art{i:05d}"
        extra += [
            {
                "article_id": f"nd{i}a",
                "label": "a",
                "gold_label": "a",
                "content_hash": f"x{i}a",
                "near_duplicate_of": root,
            },
            {
                "article_id": f"nd{i}b",
                "label": "a",
                "gold_label": "a",
                "content_hash": f"x{i}b",
                "near_duplicate_of": f"nd{i}a",
            },
            {
                "article_id": f"ex{i}",
                "label": "a",
                "gold_label": "a",
                "content_hash": f"x{i}b",
                "near_duplicate_of": None,
            },
        ]
    df = pl.concat(
        [
            df,
            pl.DataFrame(extra, schema={k: df.schema[k] for k in extra[0]}).with_columns(
                pl.lit(None, pl.Date).alias("partition_date")
            ),
        ]
    )
    out, _ = build_splits(df, splits_cfg=CFG, labels=LABELS, today=TODAY)
    assert out["article_id"].n_unique() == out.height == df.height
    per_group = out.group_by("group_key").agg(pl.col("split").n_unique().alias("n"))
    assert per_group["n"].max() == 1
    for i in range(0, 900, 10):
        members = out.filter(pl.col("article_id").is_in([f"art{i:05d}", f"nd{i}a", f"nd{i}b", f"ex{i}"]))
        assert members["group_key"].n_unique() == 1


def test_group_keys_are_stable_when_new_near_duplicates_arrive():
    old = group_keys(["r", "x"], ["h1", "h2"], [None, None])
    new = group_keys(["r", "x", "n1", "n2"], ["h1", "h2", "h3", "h1"], [None, None, "r", None])
    assert new[:2] == old and new[2] == new[3] == old[0]


def test_window_keeps_recent_partitions_only():
    cfg = SplitsConfig(window_days=30, min_per_class_train=1, min_per_class_eval=1)
    df = frame(3000, dated=True)
    out, report = build_splits(df, splits_cfg=cfg, labels=LABELS, today=TODAY)
    dates = out["partition_date"]
    assert dates.min() > TODAY - timedelta(days=30) and dates.max() <= TODAY
    assert report["dropped_outside_window"] > 0


def test_minimum_counts_fail_with_the_class_and_split_named():
    df = frame(300, gold_every=50)
    with pytest.raises(SplitError, match=r"class '[abc]' has \d+ (val|test) rows"):
        build_splits(df, splits_cfg=CFG, labels=LABELS, today=TODAY)


def test_trusted_frame_overrides_and_bad_input_is_named():
    df = frame(900).with_columns(pl.lit(None, pl.String).alias("gold_label"))
    trusted = pl.DataFrame({"article_id": df["article_id"], "label": df["label"]})
    out, report = build_splits(df, splits_cfg=CFG, labels=LABELS, today=TODAY, trusted=trusted)
    assert report["gold_rows_in_window"] == 900 and (out["split"] != "train").any()
    with pytest.raises(ValueError, match="not in the schema"):
        build_splits(
            df.with_columns(pl.lit("zzz").alias("label")), splits_cfg=CFG, labels=LABELS, today=TODAY
        )
