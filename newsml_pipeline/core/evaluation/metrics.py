"""Classification metrics on gold rows: accuracy, macro-F1, per-class P/R/F1, confusion matrix,
expected calibration error, and a paired bootstrap interval for metric(A) - metric(B).

Arrays in, arrays out. Predictions may contain `None` (an abstaining labeler): such a row counts
as wrong for its true class and is never credited to any class.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from newsml_pipeline.settings import category_slug

log = logging.getLogger(__name__)

MetricName = Literal["macro_f1", "accuracy"]
ABSTAIN = "<abstain>"


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Scores:
    """Everything measured for one model on one set of gold rows.

    `confusion[i][j]` counts rows of true class `labels[i]` predicted as `labels[j]`; abstentions
    are counted separately in `abstained` (they are not a column of the matrix).
    """

    labels: list[str]
    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion: list[list[int]]
    coverage: float  # share of rows with a (non-abstaining) prediction
    abstained: int
    ece: float | None = None  # None when the model gives no confidences
    extra: dict[str, float] = field(default_factory=dict)

    def metric(self, name: str) -> float:
        if name == "macro_f1":
            return self.macro_f1
        if name == "accuracy":
            return self.accuracy
        raise ValueError(f"unknown metric {name!r}; expected 'macro_f1' or 'accuracy'")

    def to_dict(self) -> dict:
        return asdict(self)

    def flat_metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat name -> number dict, suitable for mlflow.log_metrics / Dagster metadata.

        Per-class keys use the category's slug (`f1_sci_tech` for `Sci/Tech`): MLflow refuses
        characters such as `&` in metric names; `class_slugs` maps them back to the names."""
        out = {
            f"{prefix}accuracy": self.accuracy,
            f"{prefix}macro_f1": self.macro_f1,
            f"{prefix}coverage": self.coverage,
        }
        if self.ece is not None:
            out[f"{prefix}ece"] = self.ece
        for name, c in self.per_class.items():
            slug = category_slug(name)
            out[f"{prefix}f1_{slug}"] = c.f1
            out[f"{prefix}precision_{slug}"] = c.precision
            out[f"{prefix}recall_{slug}"] = c.recall
        return out


def _as_label_array(values: Sequence[str | None], *, what: str) -> np.ndarray:
    arr = np.array([ABSTAIN if v is None else str(v) for v in values], dtype=object)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a flat sequence of labels, got shape {arr.shape}")
    return arr


def _check_inputs(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> None:
    if len(labels) < 2:
        raise ValueError(f"need at least two labels, got {list(labels)}")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} rows but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("no rows to evaluate")
    known = set(labels)
    bad_true = sorted({str(v) for v in y_true if v not in known})
    if bad_true:
        raise ValueError(f"gold labels outside the label schema {list(labels)}: {bad_true}")
    bad_pred = sorted({str(v) for v in y_pred if v not in known and v != ABSTAIN})
    if bad_pred:
        raise ValueError(f"predicted labels outside the label schema {list(labels)}: {bad_pred}")


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, *, n_bins: int = 15) -> float:
    """ECE with equal-width confidence bins: sum_b |acc_b - conf_b| * n_b / n.

    confidence: [n] the probability the model gave its predicted class; correct: [n] bool.
    """
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    if confidence.shape != correct.shape or confidence.ndim != 1:
        raise ValueError(f"confidence {confidence.shape} and correct {correct.shape} must be equal 1-d")
    if len(confidence) == 0:
        raise ValueError("no rows to compute calibration error on")
    if not np.all(np.isfinite(confidence)) or confidence.min() < 0 or confidence.max() > 1:
        raise ValueError("confidences must be finite probabilities in [0, 1]")
    # bin b holds (edges[b], edges[b+1]]; confidence 0 goes to the first bin.
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=confidence, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=correct.astype(float), minlength=n_bins)
    nz = counts > 0
    gap = np.abs(acc_sum[nz] / counts[nz] - conf_sum[nz] / counts[nz])
    return float(np.sum(gap * counts[nz]) / len(confidence))


def score_predictions(
    y_true: Sequence[str],
    y_pred: Sequence[str | None],
    *,
    labels: Sequence[str],
    confidence: Sequence[float] | np.ndarray | None = None,
    n_bins: int = 15,
) -> Scores:
    """Score one model's predictions against gold labels (sklearn for the basic metrics).

    confidence: optional [n] probability of each predicted label, for the calibration error.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = list(labels)
    t = _as_label_array(y_true, what="y_true")
    p = _as_label_array(y_pred, what="y_pred")
    _check_inputs(t, p, labels)
    prec, rec, f1, support = precision_recall_fscore_support(
        t, p, labels=labels, average=None, zero_division=0
    )
    cm = confusion_matrix(t, p, labels=labels)
    abstained = int(np.sum(p == ABSTAIN))
    ece = None
    if confidence is not None:
        conf = np.asarray(confidence, dtype=float)
        if conf.shape != (len(t),):
            raise ValueError(f"confidence has shape {conf.shape}, expected ({len(t)},)")
        answered = p != ABSTAIN
        if answered.any():
            ece = expected_calibration_error(conf[answered], (p == t)[answered], n_bins=n_bins)
    return Scores(
        labels=labels,
        n=len(t),
        accuracy=float(accuracy_score(t, p)),
        macro_f1=float(np.mean(f1)),
        per_class={
            name: ClassScores(float(prec[i]), float(rec[i]), float(f1[i]), int(support[i]))
            for i, name in enumerate(labels)
        },
        confusion=cm.astype(int).tolist(),
        coverage=float(1.0 - abstained / len(t)),
        abstained=abstained,
        ece=ece,
    )


def scores_from_proba(
    y_true: Sequence[str], proba: np.ndarray, *, labels: Sequence[str], n_bins: int = 15
) -> tuple[Scores, list[str]]:
    """Score a probabilistic model; proba is [n, k] with columns in `labels` order.

    Returns the scores and the argmax predictions (so callers can bootstrap on them).
    """
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or proba.shape[1] != len(labels):
        raise ValueError(
            f"proba has shape {proba.shape}, expected (n, {len(labels)}) for labels {list(labels)}"
        )
    idx = proba.argmax(axis=1)
    pred = [labels[i] for i in idx]
    conf = proba[np.arange(len(idx)), idx]
    return score_predictions(y_true, pred, labels=labels, confidence=conf, n_bins=n_bins), pred


# ---------------------------------------------------------------- confusion matrix rendering


def confusion_markdown(scores: Scores) -> str:
    """Markdown table: rows are true classes, columns predicted (plus an abstain column if any)."""
    labels = scores.labels
    show_abstain = scores.abstained > 0
    header = ["true \\ predicted", *labels] + (["(abstain)"] if show_abstain else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, name in enumerate(labels):
        row = [str(v) for v in scores.confusion[i]]
        if show_abstain:
            row.append(str(scores.per_class[name].support - sum(scores.confusion[i])))
        lines.append(f"| **{name}** | " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot_confusion(scores: Scores, path: str | Path, *, title: str = "confusion matrix") -> Path:
    """Write the confusion matrix as a PNG (matplotlib Agg: works headless) and return its path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cm = np.array(scores.confusion)
    k = len(scores.labels)
    size = max(4.0, 0.8 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    try:
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(k), scores.labels, rotation=45, ha="right")
        ax.set_yticks(range(k), scores.labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title}\nacc {scores.accuracy:.3f}  macro-F1 {scores.macro_f1:.3f}  n={scores.n}")
        threshold = cm.max() / 2 if cm.size else 0
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    color="white" if cm[i, j] > threshold else "black",
                )
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path


# ---------------------------------------------------------------- paired bootstrap


@dataclass(frozen=True)
class BootstrapInterval:
    """metric(A) - metric(B) on the same rows, with a percentile interval over paired resamples."""

    metric: str
    diff: float  # on the full sample
    low: float
    high: float
    confidence: float
    n_samples: int
    seed: int
    prob_a_better: float  # share of resamples where A > B

    def to_dict(self) -> dict:
        return asdict(self)


def _encode(values: np.ndarray, labels: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(labels)}
    # ABSTAIN (and anything unknown, already rejected by _check_inputs) -> column k.
    return np.array([index.get(v, len(labels)) for v in values], dtype=np.int64)


def _metric_from_counts(
    weights: np.ndarray, true_oh: np.ndarray, pred_oh: np.ndarray, metric: str
) -> np.ndarray:
    """Metric for each row of `weights` ([B, n] resample counts) without looping in Python."""
    hit = true_oh * pred_oh  # [n, k]
    tp = weights @ hit  # [B, k]
    if metric == "accuracy":
        return tp.sum(axis=1) / weights.sum(axis=1)
    if metric != "macro_f1":
        raise ValueError(f"unknown metric {metric!r}; expected 'macro_f1' or 'accuracy'")
    n_true = weights @ true_oh
    n_pred = weights @ pred_oh
    denom = n_true + n_pred
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp, dtype=float), where=denom > 0)
    return f1.mean(axis=1)


def paired_bootstrap(
    y_true: Sequence[str],
    pred_a: Sequence[str | None],
    pred_b: Sequence[str | None],
    *,
    labels: Sequence[str],
    metric: MetricName = "macro_f1",
    n_samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> BootstrapInterval:
    """Paired bootstrap of metric(A) - metric(B): both models are rescored on the same resampled
    rows, so the interval reflects the difference, not two independent noises. Seeded: the same
    inputs and seed give the same interval.
    """
    labels = list(labels)
    t = _as_label_array(y_true, what="y_true")
    a = _as_label_array(pred_a, what="pred_a")
    b = _as_label_array(pred_b, what="pred_b")
    _check_inputs(t, a, labels)
    _check_inputs(t, b, labels)
    if n_samples < 1:
        raise ValueError("n_samples must be >= 1")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    k = len(labels)
    eye = np.eye(k + 1)[:, :k]  # abstain row -> all zeros
    t_oh = eye[_encode(t, labels)]
    a_oh = eye[_encode(a, labels)]
    b_oh = eye[_encode(b, labels)]
    n = len(t)
    full = np.ones((1, n))
    diff = float(
        _metric_from_counts(full, t_oh, a_oh, metric)[0] - _metric_from_counts(full, t_oh, b_oh, metric)[0]
    )
    rng = np.random.default_rng(seed)
    diffs = []
    chunk = max(1, min(n_samples, 2_000_000 // max(n, 1)))
    done = 0
    while done < n_samples:
        m = min(chunk, n_samples - done)
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=m).astype(float)
        diffs.append(_metric_from_counts(w, t_oh, a_oh, metric) - _metric_from_counts(w, t_oh, b_oh, metric))
        done += m
    d = np.concatenate(diffs)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(d, [alpha, 1 - alpha])
    return BootstrapInterval(
        metric=metric,
        diff=diff,
        low=float(low),
        high=float(high),
        confidence=confidence,
        n_samples=n_samples,
        seed=seed,
        prob_a_better=float(np.mean(d > 0)),
    )
