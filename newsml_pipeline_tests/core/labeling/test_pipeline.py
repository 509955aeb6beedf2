"""label_articles end to end on real BBC rows, and a schema switch through YAML only."""

import json
from datetime import date

import polars as pl
import yaml

from newsml_pipeline.core.data.schema import DATASET_SPLITS, LABELED_ARTICLES
from newsml_pipeline.core.data.splits import build_splits
from newsml_pipeline.core.labeling.pipeline import label_articles
from newsml_pipeline.settings import SplitsConfig, load_config


def bbc_frame(rows, per_class: int, mapping: dict[str, str] | None = None) -> pl.DataFrame:
    picked, seen = [], {}
    for r in rows:
        if r["duplicate_of"] or seen.get(r["label"], 0) >= per_class:
            continue
        seen[r["label"]] = seen.get(r["label"], 0) + 1
        picked.append(r)
    return pl.DataFrame(
        {
            "article_id": [r["id"] for r in picked],
            "title": [r["title"] for r in picked],
            "text": [r["text"] for r in picked],
            "url": [None] * len(picked),
            "gold_label": [(mapping or {}).get(r["label"], r["label"]) for r in picked],
            "partition_date": [None] * len(picked),
        },
        schema_overrides={"url": pl.String, "partition_date": pl.Date},
    )


def test_label_articles_on_bbc(bbc_rows):
    cfg = load_config(None)
    raw = bbc_frame(bbc_rows, per_class=12)
    labeled, report = label_articles(raw, labels_cfg=cfg.labels)
    assert labeled.columns[: len(LABELED_ARTICLES)] == list(LABELED_ARTICLES)
    assert labeled.height == raw.height and labeled["article_id"].to_list() == raw["article_id"].to_list()
    assert report["coverage"] >= 0.8 and report["accuracy_vs_gold"] >= 0.8, report
    assert set(report["functions"]) == set(cfg.labels.functions)
    assert set(cfg.labels.functions) == {
        "keywords",
        "url_section",
        "entities",
        "transductive",
        "keyword_expansion",
    }
    assert report["dependent_groups"] == [["keywords", "keyword_expansion"]]
    assert set(report["expanded_keywords"]) == set(cfg.labels.names)
    assert report["functions"]["url_section"]["coverage"] == 0.0  # BBC rows carry no URL
    votes = json.loads(labeled["votes"][0])
    assert set(votes) == set(report["functions"])
    abstained = labeled.filter(pl.col("label").is_null())
    assert (abstained["confidence"] < cfg.labels.min_confidence).all()
    # how well the best class fits each article (drift's no_fit signal): a cosine similarity
    fit = labeled["class_fit"]
    assert fit.dtype == pl.Float64 and fit.null_count() == 0
    assert ((fit > -1) & (fit <= 1)).all() and fit.n_unique() > 1


def test_empty_and_bad_input():
    cfg = load_config(None)
    empty, report = label_articles(
        pl.DataFrame(
            {"article_id": [], "title": [], "text": []},
            schema={c: pl.String for c in ("article_id", "title", "text")},
        ),
        labels_cfg=cfg.labels,
    )
    assert empty.height == 0 and report["n_articles"] == 0 and "class_fit" in empty.columns
    import pytest

    with pytest.raises(ValueError, match="lacks columns"):
        label_articles(pl.DataFrame({"article_id": ["x"]}), labels_cfg=cfg.labels)


def test_schema_switch_via_yaml_only(bbc_rows, tmp_path):
    schema = {
        "labels": {
            "min_confidence": 0.4,
            "categories": [
                {
                    "name": "world",
                    "description": "international affairs, governments and politics",
                    "keywords": [
                        "government",
                        "president",
                        "minister",
                        "election",
                        "war",
                        "country",
                        "talks",
                        "leader",
                        "party",
                        "police",
                    ],
                },
                {
                    "name": "sports",
                    "description": "sport results and athletes",
                    "keywords": [
                        "match",
                        "team",
                        "player",
                        "season",
                        "coach",
                        "win",
                        "champion",
                        "league",
                        "cup",
                        "race",
                    ],
                },
                {
                    "name": "business",
                    "description": "companies, markets and the economy",
                    "keywords": [
                        "company",
                        "market",
                        "shares",
                        "economy",
                        "profit",
                        "bank",
                        "investors",
                        "sales",
                        "trade",
                        "growth",
                    ],
                },
                {
                    "name": "sci-tech",
                    "description": "science, technology, computers and the internet",
                    "keywords": [
                        "technology",
                        "software",
                        "internet",
                        "computer",
                        "science",
                        "research",
                        "phone",
                        "online",
                        "digital",
                        "users",
                    ],
                },
            ],
        },
        "splits": {"window_days": None, "min_per_class_train": 1, "min_per_class_eval": 1},
    }
    path = tmp_path / "four.yaml"
    path.write_text(yaml.safe_dump(schema))
    cfg = load_config(path)
    mapping = {"politics": "world", "sport": "sports", "tech": "sci-tech", "business": "business"}
    raw = bbc_frame([r for r in bbc_rows if r["label"] != "entertainment"], per_class=30, mapping=mapping)
    labeled, report = label_articles(raw, labels_cfg=cfg.labels)
    assert set(report["class_distribution"]) == {"world", "sports", "business", "sci-tech"}
    assert set(labeled["label"].drop_nulls()) <= {"world", "sports", "business", "sci-tech"}
    assert report["accuracy_vs_gold"] >= 0.75, report
    # The columns the Dagster layer's SQL hands to build_splits (labeled joined with raw).
    joined = labeled.select("article_id", pl.col("label").alias("auto_label"), "confidence").join(
        raw.select(
            "article_id",
            "partition_date",
            "title",
            "text",
            "url",
            pl.lit("bbc").alias("source"),
            pl.col("article_id").alias("content_hash"),
            pl.lit(None, dtype=pl.String).alias("near_duplicate_of"),
            pl.col("gold_label").alias("source_gold_label"),
            pl.lit(None, dtype=pl.String).alias("feedback_label"),
        ),
        on="article_id",
    )
    splits, split_report = build_splits(
        joined, splits_cfg=SplitsConfig(**schema["splits"]), labels=cfg.labels.names, today=date(2026, 1, 1)
    )
    assert splits.columns[: len(DATASET_SPLITS)] == list(DATASET_SPLITS)
    assert set(splits["label"]) == {"world", "sports", "business", "sci-tech"}
    assert (splits.filter(pl.col("split") != "train")["label_source"] == "gold").all()
