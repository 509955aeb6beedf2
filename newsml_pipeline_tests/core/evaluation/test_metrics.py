"""Metrics against sklearn / hand-computed values, calibration error, bootstrap determinism."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from newsml_pipeline.core.evaluation.metrics import (
    confusion_markdown,
    expected_calibration_error,
    paired_bootstrap,
    plot_confusion,
    score_predictions,
    scores_from_proba,
)

LABELS = ["business", "sport", "tech"]


def _toy(n: int = 300, seed: int = 1) -> tuple[list[str], list[str], list[str | None]]:
    rng = np.random.default_rng(seed)
    t = [str(x) for x in rng.choice(LABELS, n)]
    good = [x if rng.random() < 0.85 else str(rng.choice(LABELS)) for x in t]
    abstaining = [x if rng.random() < 0.7 else None for x in t]
    return t, good, abstaining


def test_scores_match_hand_counts() -> None:
    t = ["business", "business", "sport", "tech"]
    p = ["business", "sport", "sport", "tech"]
    s = score_predictions(t, p, labels=LABELS)
    assert s.accuracy == pytest.approx(0.75)
    assert s.per_class["business"].precision == 1.0
    assert s.per_class["business"].recall == 0.5
    assert s.per_class["sport"].precision == 0.5
    assert s.macro_f1 == pytest.approx((2 / 3 + 2 / 3 + 1.0) / 3)
    assert s.confusion == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert s.ece is None


def test_abstentions_count_as_misses_not_as_a_class() -> None:
    t = ["business", "sport", "tech", "tech"]
    p = ["business", None, "tech", None]
    s = score_predictions(t, p, labels=LABELS)
    assert s.abstained == 2 and s.coverage == 0.5
    assert s.accuracy == 0.5
    assert s.per_class["sport"].recall == 0.0
    md = confusion_markdown(s)
    assert "(abstain)" in md and "| **tech** | 0 | 0 | 1 | 1 |" in md


def test_unknown_labels_are_errors_with_the_label_named() -> None:
    with pytest.raises(ValueError, match="politics"):
        score_predictions(["politics", "sport"], ["sport", "sport"], labels=LABELS)
    with pytest.raises(ValueError, match="rows"):
        score_predictions(["sport"], ["sport", "tech"], labels=LABELS)


def test_ece_perfect_and_overconfident() -> None:
    assert expected_calibration_error(np.full(100, 1.0), np.ones(100, bool)) == pytest.approx(0.0)
    # always 90 % sure, right half the time -> gap 0.4
    correct = np.arange(100) % 2 == 0
    assert expected_calibration_error(np.full(100, 0.9), correct) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="probabilities"):
        expected_calibration_error(np.array([1.5]), np.array([True]))


def test_scores_from_proba_uses_argmax_and_confidence() -> None:
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.6, 0.1]])
    s, pred = scores_from_proba(["business", "tech", "tech"], proba, labels=LABELS)
    assert pred == ["business", "tech", "sport"]
    assert s.accuracy == pytest.approx(2 / 3)
    assert s.ece is not None and 0 <= s.ece <= 1
    with pytest.raises(ValueError, match="shape"):
        scores_from_proba(["business"], np.ones((1, 2)), labels=LABELS)


def test_bootstrap_is_seeded_and_centred_on_the_full_sample_difference() -> None:
    t, a, b = _toy()
    one = paired_bootstrap(t, a, b, labels=LABELS, n_samples=500, seed=7)
    two = paired_bootstrap(t, a, b, labels=LABELS, n_samples=500, seed=7)
    other = paired_bootstrap(t, a, b, labels=LABELS, n_samples=500, seed=8)
    assert one == two
    assert one != other
    full = score_predictions(t, a, labels=LABELS).macro_f1 - score_predictions(t, b, labels=LABELS).macro_f1
    assert one.diff == pytest.approx(full)
    assert one.low < one.diff < one.high
    assert one.low > 0  # a is clearly better than the abstaining b
    # vectorised macro-F1 agrees with sklearn on the full sample
    sk = f1_score(t, a, labels=LABELS, average="macro", zero_division=0)
    assert score_predictions(t, a, labels=LABELS).macro_f1 == pytest.approx(sk)


def test_bootstrap_of_identical_models_is_zero() -> None:
    t, a, _ = _toy(100)
    iv = paired_bootstrap(t, a, a, labels=LABELS, metric="accuracy", n_samples=200)
    assert iv.diff == iv.low == iv.high == 0.0
    assert iv.prob_a_better == 0.0


def test_confusion_png_is_written(tmp_path) -> None:
    t, a, _ = _toy(60)
    path = plot_confusion(score_predictions(t, a, labels=LABELS), tmp_path / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
