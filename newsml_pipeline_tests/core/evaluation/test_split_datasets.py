"""The splits as MLflow datasets: a day column logs without MLflow's per-column type warning."""

from __future__ import annotations

import logging
from datetime import date

import polars as pl
import pytest

from newsml_pipeline.core.registry.datasets import split_dataset


def test_a_date_column_becomes_a_datetime_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    frame = pl.DataFrame(
        {
            "article_id": ["a", "b", "c"],
            "partition_date": [date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 2)],
            "split": ["train", "train", "test"],
            "label": ["sport", "tech", "sport"],
        }
    )
    with caplog.at_level(logging.WARNING):
        train = split_dataset(frame, "train")
        entity = train._to_mlflow_entity()  # what log_split_inputs sends: schema and profile
    assert not [r for r in caplog.records if "partition_date" in r.getMessage()]
    assert train.name == "dataset_splits.train"
    assert train.df.height == 2 and train.df.schema["partition_date"] == pl.Datetime("us")
    assert "partition_date" in entity.schema
