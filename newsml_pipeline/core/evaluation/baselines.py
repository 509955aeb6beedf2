"""The references a candidate is compared with, computed on the same gold test rows.

- `zero_shot` (default `gate.baseline`): the base sentence model used zero-shot, i.e. the
  labeling package's own `zero_shot_scores` (article embedding vs each category's name +
  description + keywords, no fine-tuning); the prediction is the most similar category (a
  baseline always answers; cosine similarities are not probabilities, so no calibration error).
- `keywords`: the keyword labeling function as the user configured it (it abstains where the
  keywords are silent; an abstention counts as a miss).
- `labeler`: the full auto-labeler (`label_articles`), abstentions included; always reported.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Literal

import numpy as np
import polars as pl

from newsml_pipeline.core.evaluation.predictions import ModelPredictions, check_test_rows
from newsml_pipeline.settings import LabelsConfig

log = logging.getLogger(__name__)

BaselineKind = Literal["zero_shot", "keywords", "labeler"]


def _texts(rows: pl.DataFrame) -> tuple[list[str], list[str]]:
    return [t or "" for t in rows["title"].to_list()], [t or "" for t in rows["text"].to_list()]


def zero_shot_predictions(rows: pl.DataFrame, *, labels_cfg: LabelsConfig) -> ModelPredictions:
    from newsml_pipeline.core.labeling.functions.zero_shot import configured_zero_shot_scores
    from newsml_pipeline.core.labeling.schema import LabelSchema

    t0 = time.perf_counter()
    schema = LabelSchema.from_config(labels_cfg)
    titles, texts = _texts(rows)
    sims = configured_zero_shot_scores(titles, texts, labels_cfg=labels_cfg, schema=schema)
    pred = [schema.names[i] for i in np.asarray(sims).argmax(axis=1)]
    return ModelPredictions("baseline:zero_shot", pred, None, seconds=time.perf_counter() - t0)


def keyword_predictions(rows: pl.DataFrame, *, labels_cfg: LabelsConfig) -> ModelPredictions:
    from newsml_pipeline.core.labeling.functions.keywords import keyword_votes
    from newsml_pipeline.core.labeling.pipeline import _lemmatizer
    from newsml_pipeline.core.labeling.schema import LabelSchema

    t0 = time.perf_counter()
    schema = LabelSchema.from_config(labels_cfg)
    titles, texts = _texts(rows)
    votes = keyword_votes(
        titles, texts, schema=schema, lemmatizer=_lemmatizer(), title_weight=labels_cfg.title_weight
    )
    pred = [schema.name_of(int(v)) for v in votes]
    return ModelPredictions("baseline:keywords", pred, None, seconds=time.perf_counter() - t0)


def labeler_predictions(rows: pl.DataFrame, *, labels_cfg: LabelsConfig) -> ModelPredictions:
    """The auto-labeler run on the test rows (gold labels are hidden from it)."""
    from newsml_pipeline.core.labeling.pipeline import label_articles

    t0 = time.perf_counter()
    ids = rows["article_id"].to_list() if "article_id" in rows.columns else None
    if ids is None or len(set(ids)) != len(ids):
        ids = [uuid.uuid4().hex for _ in range(rows.height)]
    raw = pl.DataFrame(
        {
            "article_id": ids,
            "title": rows["title"],
            "text": rows["text"],
            "url": rows["url"] if "url" in rows.columns else pl.Series([None] * rows.height, dtype=pl.String),
        }
    )
    labeled, _ = label_articles(raw, labels_cfg=labels_cfg)
    by_id = {r["article_id"]: r for r in labeled.iter_rows(named=True)}
    out = [by_id[i] for i in ids]
    return ModelPredictions(
        "labeler",
        [r["label"] for r in out],
        np.array([r["confidence"] for r in out], dtype=float),
        seconds=time.perf_counter() - t0,
    )


def baseline_predictions(
    rows: pl.DataFrame, *, kind: BaselineKind, labels_cfg: LabelsConfig
) -> ModelPredictions:
    """Predictions of the reference named by `gate.baseline` on the test rows."""
    check_test_rows(rows, labels_cfg.names)
    if kind == "zero_shot":
        preds = zero_shot_predictions(rows, labels_cfg=labels_cfg)
    elif kind == "keywords":
        preds = keyword_predictions(rows, labels_cfg=labels_cfg)
    elif kind == "labeler":
        preds = labeler_predictions(rows, labels_cfg=labels_cfg)
    else:
        raise ValueError(f"unknown gate.baseline {kind!r}; use zero_shot, keywords or labeler")
    log.info("baseline %s: %d rows in %.1fs", kind, rows.height, preds.seconds or 0)
    return preds
