"""The splits a model saw, as MLflow datasets: the training run's inputs and the evaluation's test set.

MLflow 3 shows a run's dataset inputs (name, digest, schema, row count) on the run page and a
logged model's metrics per dataset on the model page, so "what was this trained and scored on"
is answered where people look, and two trainings on the same rows show the same digest.
"""

from __future__ import annotations

from typing import Any

import polars as pl

SPLITS = ("train", "val", "test")
DATASET_PREFIX = "dataset_splits"


def split_dataset(frame: pl.DataFrame, split: str) -> Any:
    """The `split` rows of a dataset_splits frame as an MLflow dataset (mlflow.data.PolarsDataset)
    named `dataset_splits.<split>`, labels as targets; MLflow computes the digest from the rows."""
    import mlflow.data

    rows = frame.filter(pl.col("split") == split) if "split" in frame.columns else frame
    # MLflow's schema has no date type: it maps a Date column to datetime itself, with a root-logger
    # warning per column and split (three lines in every retrain's log); cast it here, once.
    rows = rows.with_columns(pl.col(pl.Date).cast(pl.Datetime("us")))
    return mlflow.data.from_polars(
        rows, name=f"{DATASET_PREFIX}.{split}", targets="label" if "label" in rows.columns else None
    )


def log_split_inputs(client: Any, run_id: str, frame: pl.DataFrame) -> dict[str, Any]:
    """Log every split present in `frame` as an input of run `run_id` (an MlflowClient's), with the
    split as its context (train / val / test); returns the datasets by split."""
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    present = set(frame["split"].unique().to_list()) if "split" in frame.columns else set()
    datasets = {s: split_dataset(frame, s) for s in SPLITS if s in present}
    client.log_inputs(
        run_id,
        datasets=[
            # _to_mlflow_entity: what mlflow.log_input itself sends (name, digest, schema, profile)
            DatasetInput(ds._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, split)])
            for split, ds in datasets.items()
        ],
    )
    return datasets
