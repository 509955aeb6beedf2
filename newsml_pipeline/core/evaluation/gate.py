"""The deployment rule (DESIGN.md §4) as a pure, deterministic decision.

A candidate ships only if, on the same gold test rows:
  - there are at least `gate.min_test_rows` of them (too few fails: never a vacuous pass),
  - its metric >= baseline + `min_gain_over_baseline`,
  - its metric >= champion - `max_drop_vs_champion` (when a champion serves),
  - every class F1 >= `min_class_f1` (a class without gold test rows fails: it was not measured).
  - a silver-evaluated candidate never replaces a gold-evaluated champion (silver labels come
    from labelling functions, not people: they can start a deployment, not overrule a trusted one).
Each check reports value, threshold and margin so a person sees by how much it passed or failed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from newsml_pipeline.core.evaluation.metrics import BootstrapInterval, Scores
from newsml_pipeline.settings import GateConfig


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: list[str]  # one line per failed check; a single "all checks passed" line otherwise
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    intervals: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # bootstrap context, not used to decide

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        return f"gate {verdict}: " + "; ".join(self.reasons)


def _check(passed: bool, value: float | int | None, threshold: float | int | None, **extra: Any) -> dict:
    margin = None if value is None or threshold is None else round(float(value) - float(threshold), 6)
    return {"passed": bool(passed), "value": value, "threshold": threshold, "margin": margin, **extra}


def decide_gate(
    *,
    candidate: Scores,
    baseline: Scores,
    champion: Scores | None,
    gate_cfg: GateConfig,
    n_test: int,
    intervals: dict[str, BootstrapInterval] | None = None,
    evaluation_kind: str = "gold",
    champion_evaluation_kind: str | None = None,
) -> GateDecision:
    """Apply the gate. `intervals` (e.g. {"candidate_vs_baseline": ...}) are attached for context;
    the verdict uses point estimates only, so the same inputs always give the same verdict.
    `evaluation_kind`: "gold" or "silver" test labels; `champion_evaluation_kind`: how the serving
    champion was evaluated when it was deployed (None: unknown or no champion).
    """
    if evaluation_kind not in ("gold", "silver"):
        raise ValueError(f"evaluation_kind must be 'gold' or 'silver', got {evaluation_kind!r}")
    metric = gate_cfg.metric
    for name, s in (("candidate", candidate), ("baseline", baseline), ("champion", champion)):
        if s is not None and s.n != n_test:
            raise ValueError(
                f"{name} was scored on {s.n} rows but n_test is {n_test}: "
                "the gate compares models on the same gold rows only"
            )
        if s is not None and s.labels != candidate.labels:
            raise ValueError(f"{name} labels {s.labels} differ from the candidate's {candidate.labels}")
    checks: dict[str, dict[str, Any]] = {}
    failed: list[str] = []

    ok = n_test >= gate_cfg.min_test_rows
    checks["min_test_rows"] = _check(ok, n_test, gate_cfg.min_test_rows)
    if not ok:
        failed.append(
            f"too few {evaluation_kind} test rows: {n_test} < gate.min_test_rows={gate_cfg.min_test_rows} "
            "(add gold labels / feedback, or lower the minimum)"
        )
    ok = not (evaluation_kind == "silver" and champion_evaluation_kind == "gold")
    checks["evaluation_vs_champion"] = _check(
        ok, evaluation_kind, None, champion_evaluation=champion_evaluation_kind or "none"
    )
    if not ok:
        failed.append(
            "this evaluation is silver and the champion was evaluated on gold: a silver evaluation "
            "cannot replace a gold-evaluated champion (label articles on the labelling page until "
            "the splits have enough gold test rows)"
        )

    cand = candidate.metric(metric)
    base = baseline.metric(metric)
    threshold = base + gate_cfg.min_gain_over_baseline
    ok = cand >= threshold - 1e-12
    checks["gain_over_baseline"] = _check(
        ok,
        round(cand, 6),
        round(threshold, 6),
        metric=metric,
        baseline=round(base, 6),
        min_gain=gate_cfg.min_gain_over_baseline,
    )
    if not ok:
        failed.append(
            f"{metric} {cand:.4f} is below baseline {base:.4f} + {gate_cfg.min_gain_over_baseline} "
            f"= {threshold:.4f} (short by {threshold - cand:.4f})"
        )

    if champion is None:
        checks["no_drop_vs_champion"] = _check(
            True, round(cand, 6), None, metric=metric, note="no champion yet"
        )
    else:
        champ = champion.metric(metric)
        threshold = champ - gate_cfg.max_drop_vs_champion
        ok = cand >= threshold - 1e-12
        checks["no_drop_vs_champion"] = _check(
            ok,
            round(cand, 6),
            round(threshold, 6),
            metric=metric,
            champion=round(champ, 6),
            max_drop=gate_cfg.max_drop_vs_champion,
        )
        if not ok:
            failed.append(
                f"{metric} {cand:.4f} is below champion {champ:.4f} - {gate_cfg.max_drop_vs_champion} "
                f"= {threshold:.4f} (short by {threshold - cand:.4f})"
            )

    per_class = {name: c.f1 for name, c in candidate.per_class.items()}
    unmeasured = sorted(name for name, c in candidate.per_class.items() if c.support == 0)
    worst = min(per_class, key=lambda n: (per_class[n], n))
    ok = per_class[worst] >= gate_cfg.min_class_f1 and not unmeasured
    checks["min_class_f1"] = _check(
        ok,
        round(per_class[worst], 6),
        gate_cfg.min_class_f1,
        worst_class=worst,
        per_class={n: round(v, 6) for n, v in per_class.items()},
        unmeasured_classes=unmeasured,
    )
    if unmeasured:
        failed.append(f"classes without gold test rows cannot be checked: {unmeasured}")
    low = sorted(n for n, v in per_class.items() if v < gate_cfg.min_class_f1 and n not in unmeasured)
    if low:
        detail = ", ".join(f"{n} {per_class[n]:.3f}" for n in low)
        failed.append(f"class F1 below gate.min_class_f1={gate_cfg.min_class_f1}: {detail}")

    passed = not failed
    reasons = (
        failed
        if failed
        else [
            f"all checks passed: {metric} {cand:.4f} vs baseline {base:.4f}"
            + ("" if champion is None else f" and champion {champion.metric(metric):.4f}")
            + f" on {n_test} {evaluation_kind} rows"
        ]
    )
    return GateDecision(
        passed=passed,
        reasons=reasons,
        checks=checks,
        intervals={name: iv.to_dict() for name, iv in (intervals or {}).items()},
    )
