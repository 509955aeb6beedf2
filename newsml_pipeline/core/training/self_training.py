"""Self-training rounds: the candidate relabels the confident part of its own train pool.

Auto-labels are noisy; a model trained on them is often right where they are wrong (it averages
over many articles). After round 0 (the ordinary training), each round predicts the train rows,
takes the candidate's label where its probability is at least `min_confidence`, and trains again
on that. What may change and what may not:

- only `train` rows whose `label_source` is `auto` (or absent, outside the pipeline) are
  relabelled; val/test rows and gold train rows (`splits.train_on_gold`) are never touched;
- at most `max_share` of the train rows change label in one round (most confident first), so one
  over-confident class cannot swallow the pool;
- the model kept is the round with the best val macro-F1 (ties: the earlier round), so a round
  that hurts on val is not deployed.

`training.self_training.rounds: 0` (the default) is plain training. Each round is reported (rows
relabelled, label changes, val score) for MLflow and the asset metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from newsml_pipeline.core.training.fine_tune import RunLogger, TrainResult, train_classifier
from newsml_pipeline.core.training.inputs import format_input
from newsml_pipeline.settings import SelfTrainingConfig, TrainingConfig

logger = logging.getLogger(__name__)

RELABELLED_SOURCE = "self_training"  # label_source of a row whose label the candidate changed


@dataclass(frozen=True)
class RoundReport:
    """One round: round 0 is the plain training (nothing relabelled before it)."""

    round: int
    n_train: int
    relabelled: int  # train rows at or above min_confidence, given the candidate's label
    changes: int  # of those, rows whose label changed in this round
    changed_from_auto: int  # train rows whose label now differs from the original auto-label
    eligible: int  # train rows that may be relabelled (auto-labelled train rows)
    val_macro_f1: float | None
    test_macro_f1: float | None
    model_dir: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SelfTrainingResult:
    result: TrainResult  # of the selected round
    selected_round: int
    rounds: list[RoundReport]

    def rows(self) -> list[dict[str, Any]]:
        return [r.to_dict() | {"selected": r.round == self.selected_round} for r in self.rounds]


def eligible_mask(frame: pl.DataFrame) -> np.ndarray:
    """[n] bool: train rows whose label came from the auto-labeller (or a previous round)."""
    is_train = (frame["split"] == "train").to_numpy()
    if "label_source" not in frame.columns:
        return is_train
    src = frame["label_source"].fill_null("auto").to_numpy()
    return is_train & np.isin(src, ["auto", RELABELLED_SOURCE])


def relabel_confident(
    frame: pl.DataFrame,
    proba: np.ndarray,
    *,
    labels: list[str],
    min_confidence: float,
    max_share: float,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """The frame with confident eligible rows carrying the candidate's label, and counts.

    frame: [n] rows with split, label (and label_source); proba: [n, k] candidate probabilities
    over `labels`, same row order (rows that are not eligible may hold anything). Changed rows get
    label_source "self_training" when the column exists.
    """
    proba = np.asarray(proba, dtype=float)
    if proba.shape != (frame.height, len(labels)):
        raise ValueError(
            f"probabilities of shape {proba.shape} for {frame.height} rows and {len(labels)} labels"
        )
    if not 0 < min_confidence <= 1 or not 0 < max_share <= 1:
        raise ValueError(f"min_confidence {min_confidence} and max_share {max_share} must be in (0, 1]")
    eligible = eligible_mask(frame)
    top = proba.argmax(axis=1)
    conf = proba.max(axis=1)
    pred = np.array(labels, dtype=object)[top]
    current = np.array(frame["label"].to_list(), dtype=object)
    confident = eligible & (conf >= min_confidence)
    would_change = np.flatnonzero(confident & (pred != current))
    cap = int(np.floor(max_share * int((frame["split"] == "train").sum())))
    # most confident changes first; ties by row order (deterministic)
    ranked = would_change[np.argsort(-conf[would_change], kind="stable")][:cap]
    # A class is never emptied: training needs every class in train (it could not predict it).
    train_counts: dict[str, int] = {}
    for lab in current[(frame["split"] == "train").to_numpy()]:
        train_counts[lab] = train_counts.get(lab, 0) + 1
    keep_list = []
    for i in ranked:
        if train_counts.get(current[i], 0) <= 1:
            continue
        train_counts[current[i]] -= 1
        train_counts[pred[i]] = train_counts.get(pred[i], 0) + 1
        keep_list.append(i)
    keep = np.array(keep_list, dtype=np.int64)
    new = current.copy()
    new[keep] = pred[keep]
    out = frame.with_columns(pl.Series("label", new.tolist(), dtype=pl.String))
    if "label_source" in frame.columns and len(keep):
        source = np.array(frame["label_source"].to_list(), dtype=object)
        source[keep] = RELABELLED_SOURCE
        out = out.with_columns(pl.Series("label_source", source.tolist(), dtype=pl.String))
    counts = {
        "eligible": int(eligible.sum()),
        "relabelled": int(confident.sum()) - (len(would_change) - len(keep)),
        "changes": len(keep),
        "capped": len(would_change) - len(keep),  # confident disagreements left as they were
    }
    return out, counts


def predict_train_rows(
    model_dir: str | Path, frame: pl.DataFrame, *, labels: list[str], max_length: int, batch_size: int
) -> np.ndarray:
    """[n, k] probabilities of the saved candidate over every row of `frame`, columns = labels."""
    from newsml_pipeline.core.training.model_io import load_classifier, predict_proba

    model, tokenizer, model_labels = load_classifier(model_dir)
    texts = [
        format_input(t, x) for t, x in zip(frame["title"].to_list(), frame["text"].to_list(), strict=True)
    ]
    proba = predict_proba(model, tokenizer, texts, batch_size=batch_size, max_length=max_length)
    return proba[:, [model_labels.index(lbl) for lbl in labels]]


class _OffsetLogger:
    """Per-epoch metrics of round r logged at steps after those of the earlier rounds."""

    def __init__(self, inner: RunLogger, offset: int) -> None:
        self.inner, self.offset = inner, offset

    def log_metrics(self, metrics: dict[str, float], *, step: int) -> None:
        self.inner.log_metrics(metrics, step=step + self.offset)


TrainFn = Callable[[pl.DataFrame, Path, RunLogger | None], TrainResult]
PredictFn = Callable[[TrainResult, pl.DataFrame], np.ndarray]


def self_train(
    frame: pl.DataFrame,
    *,
    labels: list[str],
    training_cfg: TrainingConfig,
    output_dir: str | Path,
    run_logger: RunLogger | None = None,
    data_window: str | None = None,
    train_fn: TrainFn | None = None,
    predict_fn: PredictFn | None = None,
) -> SelfTrainingResult:
    """Round 0 = train_classifier on `frame` into `output_dir`; rounds 1..N relabel and retrain
    (into `output_dir/self_training/round-<r>`). Returns the best-val round's result and a report
    per round. `train_fn` / `predict_fn` replace the training and the prediction (benchmarks
    reuse a trained round 0)."""
    st: SelfTrainingConfig = training_cfg.self_training
    output_dir = Path(output_dir)

    def default_train(f: pl.DataFrame, out: Path, rl: RunLogger | None) -> TrainResult:
        return train_classifier(
            f,
            labels=labels,
            training_cfg=training_cfg,
            output_dir=out,
            run_logger=rl,
            data_window=data_window,
        )

    def default_predict(result: TrainResult, f: pl.DataFrame) -> np.ndarray:
        return predict_train_rows(
            result.model_dir,
            f,
            labels=labels,
            max_length=training_cfg.max_length,
            batch_size=training_cfg.eval_batch_size,
        )

    train = train_fn or default_train
    predict = predict_fn or default_predict
    original = np.array(frame["label"].to_list(), dtype=object)
    current = frame
    results: list[TrainResult] = []
    reports: list[RoundReport] = []
    counts = {"eligible": int(eligible_mask(frame).sum()), "relabelled": 0, "changes": 0}
    for r in range(st.rounds + 1):
        if r > 0:
            train_only = current.filter(pl.col("split") == "train")
            proba_train = predict(results[-1], train_only)
            proba = np.zeros((current.height, len(labels)))
            proba[(current["split"] == "train").to_numpy()] = proba_train
            current, counts = relabel_confident(
                current, proba, labels=labels, min_confidence=st.min_confidence, max_share=st.max_share
            )
            logger.info("self-training round %d: %s", r, counts)
        out = output_dir if r == 0 else output_dir / "self_training" / f"round-{r}"
        rl = None if run_logger is None else _OffsetLogger(run_logger, r * training_cfg.epochs)
        res = train(current, out, rl)
        results.append(res)
        labels_now = np.array(current["label"].to_list(), dtype=object)
        is_train = (current["split"] == "train").to_numpy()
        reports.append(
            RoundReport(
                round=r,
                n_train=res.n_train,
                relabelled=counts["relabelled"],
                changes=counts["changes"],
                changed_from_auto=int((labels_now[is_train] != original[is_train]).sum()),
                eligible=counts["eligible"],
                val_macro_f1=_metric(res, "val_macro_f1"),
                test_macro_f1=_metric(res, "test_macro_f1"),
                model_dir=str(res.model_dir),
            )
        )
        logger.info("self-training round %d: %s", r, reports[-1])
    scores = [rep.val_macro_f1 if rep.val_macro_f1 is not None else -1.0 for rep in reports]
    best = int(np.argmax(scores))  # first maximum: ties keep the earlier round
    return SelfTrainingResult(result=results[best], selected_round=best, rounds=reports)


def _metric(result: TrainResult, key: str) -> float | None:
    v = result.metrics.get(key)
    return None if v is None else float(v)
