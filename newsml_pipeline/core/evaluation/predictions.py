"""Predictions of one model on the gold test rows, in a shape every metric and the gate accept.

Test rows are a polars frame with at least `title`, `text` and `label` (the gold label); `url`
is used by the auto-labeler when present. Every model is run on exactly these rows, in order.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from newsml_pipeline.core.training.inputs import format_input

log = logging.getLogger(__name__)

REQUIRED_TEST_COLUMNS = ("title", "text", "label")


@dataclass(frozen=True)
class ModelPredictions:
    """name: candidate / baseline:<kind> / labeler / champion; labels: None = abstained;
    confidence: [n] probability of the predicted label, or None when the model has none."""

    name: str
    labels: list[str | None]
    confidence: np.ndarray | None
    version: str | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.confidence is not None and len(self.confidence) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.confidence)} confidences for {len(self.labels)} labels")


def check_test_rows(rows: pl.DataFrame, labels: list[str]) -> None:
    """Raise with the reason when the test rows cannot be evaluated on (columns, null/unknown gold)."""
    missing = [c for c in REQUIRED_TEST_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"test rows lack columns {missing}; they have {rows.columns}")
    null = rows.filter(pl.col("label").is_null()).height
    if null:
        raise ValueError(f"{null} test rows have no gold label; evaluation uses trusted labels only")
    unknown = sorted(set(rows["label"].to_list()) - set(labels))
    if unknown:
        raise ValueError(f"test rows carry labels {unknown} outside the configured categories {labels}")


def from_proba(
    name: str,
    proba: np.ndarray,
    labels: list[str],
    *,
    version: str | None = None,
    seconds: float | None = None,
) -> ModelPredictions:
    """Argmax predictions + their probabilities from [n, k] class probabilities (columns = labels)."""
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or proba.shape[1] != len(labels):
        raise ValueError(f"{name}: probabilities of shape {proba.shape} do not match labels {labels}")
    idx = proba.argmax(axis=1)
    return ModelPredictions(
        name=name,
        labels=[labels[i] for i in idx],
        confidence=proba[np.arange(len(idx)), idx],
        version=version,
        seconds=seconds,
    )


def predict_model_dir(
    name: str,
    model_dir: str | Path,
    rows: pl.DataFrame,
    *,
    labels: list[str],
    max_length: int = 256,
    batch_size: int = 32,
    device: str | None = None,
    version: str | None = None,
) -> ModelPredictions:
    """Run a saved classifier (candidate or champion) over the test rows.

    Its class order may differ from `labels` (e.g. an older champion): columns are re-ordered
    by name, and a model lacking a configured class is an error (it cannot be compared fairly).
    """
    from newsml_pipeline.core.training.model_io import load_classifier, predict_proba

    t0 = time.perf_counter()
    model, tokenizer, model_labels = load_classifier(model_dir, device=device)
    missing = sorted(set(labels) - set(model_labels))
    if missing:
        raise ValueError(
            f"{name} model at {model_dir} has no output for classes {missing} (it knows {model_labels})"
        )
    texts = [format_input(t, x) for t, x in zip(rows["title"].to_list(), rows["text"].to_list(), strict=True)]
    proba = predict_proba(
        model, tokenizer, texts, batch_size=batch_size, max_length=max_length, device=device
    )
    proba = proba[:, [model_labels.index(lbl) for lbl in labels]]
    proba = proba / proba.sum(axis=1, keepdims=True)
    seconds = time.perf_counter() - t0
    log.info("%s: scored %d test rows in %.1fs", name, rows.height, seconds)
    return from_proba(name, proba, labels, version=version, seconds=seconds)
