"""A re-scored day does not feed the drift sensor the same articles twice."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.monitoring.rescoring import keep_first_scoring
from newsml_pipeline.core.monitoring.sensor_logic import read_new_scored_rows

DAY = date(2026, 11, 20)
T0 = datetime(2026, 11, 21, 1, tzinfo=UTC)


def _scored(ids: list[str], *, version: str, at: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "article_id": ids,
            "partition_date": [DAY] * len(ids),
            "model_version": [version] * len(ids),
            "label": ["sport"] * len(ids),
            "confidence": [0.9] * len(ids),
            "auto_label": ["sport"] * len(ids),
            "scored_at": [at] * len(ids),
        },
        schema_overrides={"scored_at": pl.Datetime("us", "UTC")},
    )


def _rewrite(wh: Warehouse, new: pl.DataFrame) -> None:
    previous = wh.query(
        "SELECT article_id, model_version, scored_at FROM scored_articles WHERE partition_date = ?", [DAY]
    )
    wh.replace_partition(
        "scored_articles",
        keep_first_scoring(new, previous),
        partition_column="partition_date",
        partition_key=DAY,
    )


def test_rescoring_with_the_same_model_adds_nothing_to_the_stream(tmp_path) -> None:
    wh = Warehouse(tmp_path / "wh.duckdb")
    wh.replace_partition(
        "scored_articles",
        _scored(["a", "b"], version="1", at=T0),
        partition_column="partition_date",
        partition_key=DAY,
    )
    consumed = read_new_scored_rows(wh, cursor=None, limit=100)
    last = consumed.row(-1, named=True)
    cursor = f'{{"scored_at": "{last["scored_at"].isoformat()}", "article_id": "{last["article_id"]}"}}'

    # a backfill re-scores the day an hour later, and a late article joined it
    _rewrite(wh, _scored(["a", "b", "c"], version="1", at=T0 + timedelta(hours=1)))
    new = read_new_scored_rows(wh, cursor=cursor, limit=100)
    assert new["article_id"].to_list() == ["c"]

    # a new champion re-scores it: that is a new stream, every row is new
    _rewrite(wh, _scored(["a", "b", "c"], version="2", at=T0 + timedelta(hours=2)))
    assert sorted(read_new_scored_rows(wh, cursor=cursor, limit=100)["article_id"].to_list()) == [
        "a",
        "b",
        "c",
    ]


def test_keep_first_scoring_keeps_columns_and_order() -> None:
    new = _scored(["b", "a"], version="1", at=T0 + timedelta(hours=1))
    out = keep_first_scoring(new, _scored(["a"], version="1", at=T0))
    assert out.columns == new.columns
    assert out["article_id"].to_list() == ["b", "a"]
    assert out["scored_at"].to_list() == [T0 + timedelta(hours=1), T0]
    assert keep_first_scoring(new, new.head(0)).equals(new)
