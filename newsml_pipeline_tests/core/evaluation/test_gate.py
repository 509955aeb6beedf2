"""The gate: thresholds, margins, too few rows, unmeasured classes, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from newsml_pipeline.core.evaluation.gate import decide_gate
from newsml_pipeline.core.evaluation.metrics import score_predictions
from newsml_pipeline.settings import GateConfig

LABELS = ["business", "sport", "tech"]


def _scores(accuracy: float, n: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = [LABELS[i % 3] for i in range(n)]
    p = [x if rng.random() < accuracy else LABELS[(LABELS.index(x) + 1) % 3] for x in t]
    return score_predictions(t, p, labels=LABELS)


def test_good_candidate_passes_with_margins() -> None:
    cand, base = _scores(0.95), _scores(0.6, seed=1)
    d = decide_gate(candidate=cand, baseline=base, champion=None, gate_cfg=GateConfig(), n_test=120)
    assert d.passed, d.reasons
    g = d.checks["gain_over_baseline"]
    assert g["passed"] and g["margin"] == pytest.approx(cand.macro_f1 - base.macro_f1 - 0.05, abs=1e-6)
    assert d.checks["no_drop_vs_champion"]["note"] == "no champion yet"


def test_candidate_not_beating_baseline_by_the_margin_fails_and_says_by_how_much() -> None:
    cand = _scores(0.8)
    d = decide_gate(candidate=cand, baseline=cand, champion=None, gate_cfg=GateConfig(), n_test=120)
    assert not d.passed
    assert d.checks["gain_over_baseline"]["margin"] == pytest.approx(-0.05)
    assert any("short by 0.0500" in r for r in d.reasons)


def test_regression_vs_champion_fails() -> None:
    cand, base, champ = _scores(0.85), _scores(0.5, seed=1), _scores(0.95, seed=2)
    d = decide_gate(candidate=cand, baseline=base, champion=champ, gate_cfg=GateConfig(), n_test=120)
    assert not d.passed
    assert not d.checks["no_drop_vs_champion"]["passed"]
    assert d.checks["gain_over_baseline"]["passed"]
    assert any("champion" in r for r in d.reasons)


def test_too_few_gold_rows_fails_even_when_everything_else_passes() -> None:
    cand, base = _scores(1.0, n=30), _scores(0.3, n=30, seed=1)
    d = decide_gate(
        candidate=cand, baseline=base, champion=None, gate_cfg=GateConfig(min_test_rows=50), n_test=30
    )
    assert not d.passed
    assert d.checks["min_test_rows"] == {"passed": False, "value": 30, "threshold": 50, "margin": -20.0}
    assert any("too few gold test rows" in r for r in d.reasons)


def test_weak_class_fails_and_unmeasured_class_fails() -> None:
    t = ["business"] * 40 + ["sport"] * 40 + ["tech"] * 40
    p = ["business"] * 40 + ["sport"] * 40 + ["business"] * 30 + ["tech"] * 10
    cand = score_predictions(t, p, labels=LABELS)
    base = score_predictions(t, ["business"] * 120, labels=LABELS)
    d = decide_gate(
        candidate=cand, baseline=base, champion=None, gate_cfg=GateConfig(min_class_f1=0.5), n_test=120
    )
    assert not d.passed and d.checks["min_class_f1"]["worst_class"] == "tech"
    t2 = ["business"] * 60 + ["sport"] * 60
    cand2 = score_predictions(t2, t2, labels=LABELS)
    base2 = score_predictions(t2, ["business"] * 120, labels=LABELS)
    d2 = decide_gate(candidate=cand2, baseline=base2, champion=None, gate_cfg=GateConfig(), n_test=120)
    assert not d2.passed
    assert any("without gold test rows" in r and "tech" in r for r in d2.reasons)


def test_rows_mismatch_is_an_error_and_verdict_is_deterministic() -> None:
    cand, base = _scores(0.9), _scores(0.5, seed=1)
    with pytest.raises(ValueError, match="same gold rows"):
        decide_gate(candidate=cand, baseline=base, champion=None, gate_cfg=GateConfig(), n_test=99)
    a = decide_gate(candidate=cand, baseline=base, champion=None, gate_cfg=GateConfig(), n_test=120)
    b = decide_gate(candidate=cand, baseline=base, champion=None, gate_cfg=GateConfig(), n_test=120)
    assert a == b


def test_silver_can_start_a_deployment_but_never_replace_a_gold_champion() -> None:

    labels = ["a", "b"]
    gold = ["a", "b"] * 40
    cand = score_predictions(gold, gold, labels=labels)
    base = score_predictions(gold, ["a"] * 80, labels=labels)
    first = decide_gate(
        candidate=cand,
        baseline=base,
        champion=None,
        gate_cfg=GateConfig(),
        n_test=80,
        evaluation_kind="silver",
    )
    assert first.passed and "80 silver rows" in first.reasons[0]
    over_gold = decide_gate(
        candidate=cand,
        baseline=base,
        champion=base,
        gate_cfg=GateConfig(),
        n_test=80,
        evaluation_kind="silver",
        champion_evaluation_kind="gold",
    )
    assert not over_gold.passed
    assert over_gold.checks["evaluation_vs_champion"]["passed"] is False
    assert "cannot replace a gold-evaluated champion" in over_gold.reasons[0]
    over_silver = decide_gate(
        candidate=cand,
        baseline=base,
        champion=base,
        gate_cfg=GateConfig(),
        n_test=80,
        evaluation_kind="silver",
        champion_evaluation_kind="silver",
    )
    assert over_silver.passed
