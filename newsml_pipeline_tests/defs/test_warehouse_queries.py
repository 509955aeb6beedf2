"""The assets' own warehouse queries give the same answers on DuckDB and on Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from newsml_pipeline.core.data.splits import build_evaluated_splits
from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.monitoring.sensor_logic import ScoredCursor, read_new_scored_rows
from newsml_pipeline.defs.review import candidates_of_day, trusted_counts
from newsml_pipeline.defs.training import SPLITS_TABLE, labeled_with_raw, split_rows_with_text
from newsml_pipeline.settings import GateConfig, SplitsConfig
from newsml_pipeline_tests.core.data.test_splits import LABELS, TODAY, _frame


def _fill(wh: Warehouse, frame: pl.DataFrame) -> None:
    raw = frame.select(
        "article_id", "url", "source", "title", "text", "partition_date", "content_hash",
        "near_duplicate_of", gold_label="source_gold_label",
        fetched_at=pl.lit(datetime(2026, 11, 20, tzinfo=UTC)),
    )  # fmt: skip
    labeled = frame.select(
        "article_id", "partition_date", label="auto_label", confidence="confidence", votes=pl.lit("{}")
    )
    feedback = frame.filter(pl.col("feedback_label").is_not_null()).select(
        "article_id", label="feedback_label"
    )
    for day in raw["partition_date"].unique().sort():
        part = pl.col("partition_date") == day
        wh.replace_partition(
            "raw_articles", raw.filter(part), partition_column="partition_date", partition_key=day
        )
        wh.replace_partition(
            "labeled_articles", labeled.filter(part), partition_column="partition_date", partition_key=day
        )
    wh.replace_table("label_feedback", feedback)
    t0 = datetime(2026, 11, 20, 6, tzinfo=UTC)
    scored = frame.select(
        "article_id", "partition_date", model_version=pl.lit("3"), label="auto_label", confidence="confidence",
        auto_label="auto_label",
        scored_at=pl.lit(t0) + pl.duration(seconds=pl.int_range(pl.len()) // 2),  # ties broken by id
    )  # fmt: skip
    wh.append("scored_articles", scored)


def _run(wh: Warehouse, frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    _fill(wh, frame)
    inputs = labeled_with_raw(wh).sort("article_id")
    splits, report = build_evaluated_splits(
        inputs,
        splits_cfg=SplitsConfig(drop_label_issues=False),
        gate_cfg=GateConfig(evaluation="gold"),
        labels=LABELS,
        today=TODAY,
    )
    wh.replace_table(SPLITS_TABLE, splits)
    stream, cursor = [], None
    while (page := read_new_scored_rows(wh, cursor=cursor, limit=97)).height:
        stream.append(page)
        cursor = ScoredCursor(*page.select("scored_at", "article_id").row(-1))
    return {
        "inputs": inputs.select(sorted(inputs.columns)),
        "splits": split_rows_with_text(wh),
        "sizes": pl.DataFrame([report["sizes"]]),
        "candidates": candidates_of_day(wh, TODAY - timedelta(days=1)),
        "trusted": pl.DataFrame(sorted(trusted_counts(wh).items()), orient="row"),
        "stream": pl.concat(stream),
    }


def test_splits_scoring_and_drift_queries_agree_across_backends(tmp_path, postgres_server) -> None:
    frame = _frame(800, seed=3)
    duck = _run(Warehouse(tmp_path / "w.duckdb"), frame)
    pg = _run(Warehouse(postgres_server.create_database()), frame)
    assert duck["inputs"].height == 800 and duck["splits"].height > 400
    assert duck["candidates"].height > 0 and duck["trusted"].height == len(LABELS)
    assert duck["stream"].height == 800 and duck["stream"]["article_id"].n_unique() == 800
    for name, d in duck.items():
        p = pg[name]
        if "scored_at" in d.columns:  # DuckDB calls its session zone Etc/UTC
            d = d.with_columns(pl.col("scored_at").dt.convert_time_zone("UTC"))
        assert d.equals(p), f"{name} differs between DuckDB and Postgres:\n{d}\n{p}"
