"""One evaluation: candidate, baseline, auto-labeler and champion on the same gold rows, the
paired bootstrap intervals, the gate decision, and an MLflow evaluation run linked to training.

`evaluate_models` is pure (predictions in, result out, PNGs written to `out_dir`);
`log_evaluation_run` records the result in MLflow; `run_evaluation` does both from model dirs
and test rows for the `model_evaluation` asset.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from newsml_pipeline.core.evaluation.baselines import baseline_predictions, labeler_predictions
from newsml_pipeline.core.evaluation.gate import GateDecision, decide_gate
from newsml_pipeline.core.evaluation.metrics import (
    BootstrapInterval,
    Scores,
    confusion_markdown,
    paired_bootstrap,
    plot_confusion,
    score_predictions,
)
from newsml_pipeline.core.evaluation.predictions import ModelPredictions, check_test_rows, predict_model_dir
from newsml_pipeline.settings import GateConfig, NewsmlConfig, category_slug

log = logging.getLogger(__name__)

TAG_TRAINING_RUN = "newsml.training_run_id"
TAG_KIND = "newsml.run_kind"


@dataclass
class EvaluationResult:
    labels: list[str]
    n_test: int
    scores: dict[str, Scores]  # candidate, baseline, labeler, champion (when one serves)
    versions: dict[str, str | None]
    intervals: dict[str, BootstrapInterval]
    gate: GateDecision
    baseline_kind: str
    confusion_png: dict[str, Path] = field(default_factory=dict)
    evaluation_run_id: str | None = None

    def confusion_tables(self) -> dict[str, str]:
        return {name: confusion_markdown(s) for name, s in self.scores.items()}

    def summary_markdown(self) -> str:
        """A comparison table (one row per model) + the gate verdict, for Dagster metadata."""
        lines = [
            "| model | version | accuracy | macro-F1 | min class F1 | ECE | coverage |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, s in self.scores.items():
            ece = "–" if s.ece is None else f"{s.ece:.3f}"
            worst = min(c.f1 for c in s.per_class.values())
            lines.append(
                f"| {name} | {self.versions.get(name) or '–'} | {s.accuracy:.4f} | {s.macro_f1:.4f} | "
                f"{worst:.3f} | {ece} | {s.coverage:.3f} |"
            )
        for name, iv in self.intervals.items():
            lines.append(
                f"\n{name.replace('_', ' ')}: {iv.metric} diff {iv.diff:+.4f} "
                f"({iv.confidence:.0%} CI {iv.low:+.4f} .. {iv.high:+.4f}, {iv.n_samples} paired resamples)"
            )
        lines.append(f"\n**{self.gate.summary()}**")
        return "\n".join(lines)

    def metrics(self) -> dict[str, float]:
        """Flat metrics: `<model>_<metric>` plus `<a>_vs_<b>_diff/low/high` and `gate_passed`."""
        out: dict[str, float] = {"n_test": float(self.n_test), "gate_passed": float(self.gate.passed)}
        for name, s in self.scores.items():
            out.update(s.flat_metrics(prefix=f"{name}_"))
        for name, iv in self.intervals.items():
            out.update({f"{name}_diff": iv.diff, f"{name}_low": iv.low, f"{name}_high": iv.high})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            # metric-name slug -> category name, to read `candidate_f1_<slug>` back
            "class_slugs": {category_slug(n): n for n in self.labels},
            "n_test": self.n_test,
            "baseline_kind": self.baseline_kind,
            "versions": self.versions,
            "scores": {k: v.to_dict() for k, v in self.scores.items()},
            "intervals": {k: v.to_dict() for k, v in self.intervals.items()},
            "gate": self.gate.to_dict(),
            "evaluation_run_id": self.evaluation_run_id,
        }


def evaluate_models(
    *,
    gold: list[str],
    labels: list[str],
    candidate: ModelPredictions,
    baseline: ModelPredictions,
    labeler: ModelPredictions | None,
    champion: ModelPredictions | None,
    gate_cfg: GateConfig,
    baseline_kind: str,
    out_dir: str | Path | None = None,
) -> EvaluationResult:
    """Score every model on the same gold rows, bootstrap candidate − baseline/champion (seeded
    by `gate.seed`), decide the gate, and write confusion PNGs under `out_dir` when given."""
    models = {"candidate": candidate, "baseline": baseline, "labeler": labeler, "champion": champion}
    models = {k: v for k, v in models.items() if v is not None}
    for name, p in models.items():
        if len(p.labels) != len(gold):
            raise ValueError(f"{name} has {len(p.labels)} predictions for {len(gold)} gold rows")
    scores = {
        name: score_predictions(gold, p.labels, labels=labels, confidence=p.confidence)
        for name, p in models.items()
    }
    metric = gate_cfg.metric

    def versus(other: ModelPredictions) -> BootstrapInterval:
        return paired_bootstrap(
            gold,
            candidate.labels,
            other.labels,
            labels=labels,
            metric=metric,
            n_samples=gate_cfg.bootstrap_samples,
            seed=gate_cfg.seed,
        )

    intervals = {"candidate_vs_baseline": versus(baseline)}
    if champion is not None:
        intervals["candidate_vs_champion"] = versus(champion)
    gate = decide_gate(
        candidate=scores["candidate"],
        baseline=scores["baseline"],
        champion=scores.get("champion"),
        gate_cfg=gate_cfg,
        n_test=len(gold),
        intervals=intervals,
    )
    pngs: dict[str, Path] = {}
    if out_dir is not None:
        for name, s in scores.items():
            title = f"{name} ({models[name].version})" if models[name].version else name
            pngs[name] = plot_confusion(s, Path(out_dir) / f"confusion_{name}.png", title=title)
    log.info("evaluation on %d gold rows: %s", len(gold), gate.summary())
    return EvaluationResult(
        labels=list(labels),
        n_test=len(gold),
        scores=scores,
        versions={name: p.version for name, p in models.items()},
        intervals=intervals,
        gate=gate,
        baseline_kind=baseline_kind,
        confusion_png=pngs,
    )


def log_evaluation_run(
    result: EvaluationResult,
    *,
    tracking_uri: str,
    experiment: str,
    training_run_id: str | None,
    tags: dict[str, str] | None = None,
    artifact_root: str | Path | None = None,
) -> str:
    """Record the evaluation as its own MLflow run (tag `newsml.training_run_id` links it to the
    training run): flat metrics, gate verdict, confusion PNGs + tables, evaluation.json."""
    import mlflow

    from newsml_pipeline.core.registry.tracking import configure_mlflow

    exp_id = configure_mlflow(tracking_uri, experiment=experiment, artifact_root=artifact_root)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    run_tags = {
        TAG_KIND: "evaluation",
        "newsml.gate_passed": str(result.gate.passed).lower(),
        "newsml.baseline": result.baseline_kind,
        **({TAG_TRAINING_RUN: training_run_id} if training_run_id else {}),
        **(tags or {}),
    }
    run = client.create_run(exp_id, run_name="evaluation", tags=run_tags)
    run_id = run.info.run_id
    try:
        client.log_batch(
            run_id,
            metrics=[mlflow.entities.Metric(k, float(v), 0, 0) for k, v in sorted(result.metrics().items())],
            params=[
                mlflow.entities.Param(
                    "gate_metric", result.gate.checks["gain_over_baseline"].get("metric", "")
                ),
                mlflow.entities.Param("baseline", result.baseline_kind),
                mlflow.entities.Param("n_test", str(result.n_test)),
            ],
        )
        for path in result.confusion_png.values():
            client.log_artifact(run_id, str(path), artifact_path="confusion")
        client.log_text(run_id, json.dumps(result.to_dict(), indent=2, default=str), "evaluation.json")
        client.log_text(run_id, result.summary_markdown(), "summary.md")
        for name, table in result.confusion_tables().items():
            client.log_text(run_id, table, f"confusion/{name}.md")
        client.set_terminated(run_id, "FINISHED")
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    result.evaluation_run_id = run_id
    log.info("logged evaluation run %s (training run %s)", run_id, training_run_id)
    return run_id


def run_evaluation(
    test_rows: pl.DataFrame,
    *,
    cfg: NewsmlConfig,
    candidate_model_dir: str | Path,
    candidate_version: str | None = None,
    champion_model_dir: str | Path | None = None,
    champion_version: str | None = None,
    out_dir: str | Path | None = None,
    device: str | None = None,
) -> EvaluationResult:
    """Everything the `model_evaluation` asset needs: predictions of all models on the gold test
    rows (title, text, label[, url, article_id]) and the evaluation result."""
    labels = cfg.labels.names
    check_test_rows(test_rows, labels)
    common = {
        "labels": labels,
        "max_length": cfg.training.max_length,
        "batch_size": cfg.training.eval_batch_size,
        "device": device,
    }
    candidate = predict_model_dir(
        "candidate", candidate_model_dir, test_rows, version=candidate_version, **common
    )
    champion = None
    if champion_model_dir is not None:
        champion = predict_model_dir(
            "champion", champion_model_dir, test_rows, version=champion_version, **common
        )
    kind = cfg.gate.baseline
    baseline = baseline_predictions(test_rows, kind=kind, labels_cfg=cfg.labels)
    labeler = baseline if kind == "labeler" else labeler_predictions(test_rows, labels_cfg=cfg.labels)
    return evaluate_models(
        gold=test_rows["label"].to_list(),
        labels=labels,
        candidate=candidate,
        baseline=baseline,
        labeler=labeler,
        champion=champion,
        gate_cfg=cfg.gate,
        baseline_kind=kind,
        out_dir=out_dir,
    )
