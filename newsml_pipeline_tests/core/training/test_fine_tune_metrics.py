"""Training's val/test metrics are the evaluation's: one macro-F1 for the whole project."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from newsml_pipeline.core.evaluation.metrics import score_predictions
from newsml_pipeline.core.training.fine_tune import classification_metrics

LABELS = ["business", "sport", "tech", "Sci/Tech"]


def test_classification_metrics_match_the_evaluation_and_sklearn() -> None:
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 3, size=200)  # class 3 never occurs: its F1 is 0 and counts in the mean
    logits = rng.normal(size=(200, 4))
    logits[np.arange(200), gold] += rng.normal(1.0, 1.0, size=200)
    m = classification_metrics(logits, gold, LABELS)
    pred = logits.argmax(axis=1)
    ids = list(range(4))
    assert m["macro_f1"] == f1_score(gold, pred, labels=ids, average="macro", zero_division=0)
    assert m["accuracy"] == accuracy_score(gold, pred)
    assert m["per_class_f1"]["Sci/Tech"] == 0.0
    scores = score_predictions([LABELS[i] for i in gold], [LABELS[i] for i in pred], labels=LABELS)
    assert m["macro_f1"] == scores.macro_f1
