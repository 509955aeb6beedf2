"""One evaluation: candidate, baseline, auto-labeler and champion on the same gold rows, the
paired bootstrap intervals, the gate decision, and an MLflow evaluation run linked to training.

`evaluate_models` is pure (predictions in, result out, PNGs written to `out_dir`);
`log_evaluation_run` records the result in MLflow; `run_evaluation` does both from model dirs
and test rows for the `model_evaluation` asset.
"""

from __future__ import annotations

import json
import logging
import time
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
# gold / silver: on the evaluation run and on the evaluated model version (deployment reads it).
TAG_EVALUATION = "newsml.evaluation"


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
    evaluation_kind: str = "gold"  # what the test rows' labels are: gold or silver
    # The candidate per serving precision: {precision: {macro_f1, ms_per_article, agreement_vs_fp32}}
    precisions: dict[str, dict[str, float]] = field(default_factory=dict)
    max_precision_f1_loss: float = 0.005

    @property
    def auto_precision(self) -> str | None:
        """What `serving.precision: auto` picks from `precisions` (None when not measured)."""
        from newsml_pipeline.core.serving.precision import choose_precision

        return choose_precision(self.precisions, max_f1_loss=self.max_precision_f1_loss)

    def precision_rows(self) -> list[dict[str, Any]]:
        """One row per precision: macro-F1, loss vs fp32, ms/article, agreement, chosen."""
        ref = self.precisions.get("fp32", {}).get("macro_f1")
        chosen = self.auto_precision
        return [
            {
                "precision": name,
                "macro_f1": round(m["macro_f1"], 4),
                "f1_loss_vs_fp32": None if ref is None else round(ref - m["macro_f1"], 4),
                "ms_per_article": round(m["ms_per_article"], 3),
                "agreement_vs_fp32": round(m["agreement_vs_fp32"], 4),
                "auto_choice": name == chosen,
            }
            for name, m in self.precisions.items()
        ]

    def model_rows(self) -> list[dict[str, Any]]:
        """One row per model (candidate, baseline, labeler, champion): the comparison table."""
        return [
            {
                "model": name,
                "version": self.versions.get(name) or "",
                "accuracy": round(s.accuracy, 4),
                "macro_f1": round(s.macro_f1, 4),
                "min_class_f1": round(min(c.f1 for c in s.per_class.values()), 4),
                "ece": None if s.ece is None else round(s.ece, 4),
                "coverage": round(s.coverage, 4),
            }
            for name, s in self.scores.items()
        ]

    def interval_rows(self) -> list[dict[str, Any]]:
        """The paired bootstrap intervals: candidate minus each reference, with its CI."""
        return [
            {
                "comparison": name.replace("_", " "),
                "metric": iv.metric,
                "diff": round(iv.diff, 4),
                "ci_low": round(iv.low, 4),
                "ci_high": round(iv.high, 4),
                "confidence": iv.confidence,
                "prob_candidate_better": round(iv.prob_a_better, 4),
                "resamples": iv.n_samples,
            }
            for name, iv in self.intervals.items()
        ]

    def per_class_rows(self) -> list[dict[str, Any]]:
        """Per-class F1 of every model, one row per class."""
        return [
            {"class": c} | {name: round(s.per_class[c].f1, 4) for name, s in self.scores.items()}
            for c in self.labels
        ]

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
        if self.precisions:
            lines += [
                "",
                "| precision | macro-F1 | loss vs fp32 | ms/article | agreement |",
                "|---|---|---|---|---|",
            ]
            for r in self.precision_rows():
                mark = " (auto)" if r["auto_choice"] else ""
                lines.append(
                    f"| {r['precision']}{mark} | {r['macro_f1']:.4f} | {r['f1_loss_vs_fp32']:+.4f} | "
                    f"{r['ms_per_article']:.2f} | {r['agreement_vs_fp32']:.3f} |"
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
        for name, m in self.precisions.items():
            key = name.replace("-", "_")
            out.update({f"precision_{key}_{k}": float(v) for k, v in m.items()})
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
            "evaluation_kind": self.evaluation_kind,
            "precisions": self.precisions,
            "auto_precision": self.auto_precision,
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
    evaluation_kind: str = "gold",
    champion_evaluation_kind: str | None = None,
) -> EvaluationResult:
    """Score every model on the same test rows (`gold` holds their labels, gold or silver as
    `evaluation_kind` says), bootstrap candidate − baseline/champion (seeded by `gate.seed`),
    decide the gate, and write confusion PNGs under `out_dir` when given."""
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
        evaluation_kind=evaluation_kind,
        champion_evaluation_kind=champion_evaluation_kind,
    )
    pngs: dict[str, Path] = {}
    if out_dir is not None:
        for name, s in scores.items():
            title = f"{name} ({models[name].version})" if models[name].version else name
            pngs[name] = plot_confusion(s, Path(out_dir) / f"confusion_{name}.png", title=title)
        pngs["per_class_f1"] = plot_per_class_f1(scores, labels, Path(out_dir) / "per_class_f1.png")
    log.info("evaluation on %d %s rows: %s", len(gold), evaluation_kind, gate.summary())
    return EvaluationResult(
        labels=list(labels),
        n_test=len(gold),
        scores=scores,
        versions={name: p.version for name, p in models.items()},
        intervals=intervals,
        gate=gate,
        baseline_kind=baseline_kind,
        confusion_png=pngs,
        evaluation_kind=evaluation_kind,
    )


def plot_per_class_f1(scores: dict[str, Scores], labels: list[str], path: Path) -> Path:
    """Grouped bars: per-class F1 of every model side by side (PNG, headless matplotlib)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(labels) + 2), 4))
    try:
        width = 0.8 / max(1, len(scores))
        x = np.arange(len(labels))
        for i, (name, s) in enumerate(scores.items()):
            ax.bar(
                x + i * width, [s.per_class[c].f1 for c in labels], width, label=f"{name} ({s.macro_f1:.3f})"
            )
        ax.set_xticks(x + width * (len(scores) - 1) / 2, labels, rotation=30, ha="right")
        ax.set_ylim(0, 1)
        ax.set_ylabel("F1")
        ax.set_title("per-class F1 (legend: macro-F1)")
        ax.legend(fontsize="small", loc="lower right")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=90)
    finally:
        plt.close(fig)
    return path


def _metric(key: str, value: float, *, run_id: str, model_id: str | None, dataset: Any) -> Any:
    """One evaluation metric; the candidate's own (`candidate_*`) belong to its logged model and
    name the test set they were measured on."""
    from mlflow.entities import Metric

    if not (model_id and key.startswith("candidate_")):
        return Metric(key, float(value), 0, 0)
    return Metric(
        key,
        float(value),
        int(time.time() * 1000),
        0,
        model_id=model_id,
        dataset_name=None if dataset is None else dataset.name,
        dataset_digest=None if dataset is None else dataset.digest,
        run_id=run_id,
    )


def log_evaluation_run(
    result: EvaluationResult,
    *,
    tracking_uri: str,
    experiment: str,
    training_run_id: str | None,
    tags: dict[str, str] | None = None,
    artifact_root: str | Path | None = None,
    registered_model: str | None = None,
    model_version: str | None = None,
    model_id: str | None = None,
    test_rows: pl.DataFrame | None = None,
) -> str:
    """Record the evaluation as its own MLflow run (tag `newsml.training_run_id` links it to the
    training run): flat metrics, gate verdict, confusion PNGs + tables, evaluation.json.

    With `registered_model` + `model_version`, the per-precision macro-F1 / ms-per-article are also
    written as tags of that model version: what `serving.precision: auto` reads.
    `model_id` (the candidate's MLflow 3 logged model; else the model version's, when MLflow
    recorded one): the candidate's metrics are logged against it, so the model page shows them,
    and the run lists the model as its input. `test_rows`: logged as the run's `test` dataset input
    and named on those metrics."""
    import mlflow
    from mlflow.entities import LoggedModelInput

    from newsml_pipeline.core.registry.datasets import log_split_inputs
    from newsml_pipeline.core.registry.tracking import configure_mlflow, store_client

    exp_id = configure_mlflow(tracking_uri, experiment=experiment, artifact_root=artifact_root)
    client = store_client(tracking_uri)
    run_tags = {
        TAG_KIND: "evaluation",
        TAG_EVALUATION: result.evaluation_kind,
        "newsml.gate_passed": str(result.gate.passed).lower(),
        "newsml.baseline": result.baseline_kind,
        **({TAG_TRAINING_RUN: training_run_id} if training_run_id else {}),
        **(tags or {}),
    }
    run = client.create_run(exp_id, run_name="evaluation", tags=run_tags)
    run_id = run.info.run_id
    if model_id is None and registered_model and model_version:
        model_id = client.get_model_version(registered_model, str(model_version)).model_id
    try:
        test_set = None
        if test_rows is not None:
            test_set = log_split_inputs(
                client, run_id, test_rows.with_columns(pl.lit("test").alias("split"))
            )["test"]
        if model_id:
            client.log_inputs(run_id, models=[LoggedModelInput(model_id)])
        client.log_batch(
            run_id,
            metrics=[
                _metric(k, v, run_id=run_id, model_id=model_id, dataset=test_set)
                for k, v in sorted(result.metrics().items())
            ],
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
        if result.precisions and registered_model and model_version:
            from newsml_pipeline.core.serving.precision import TAG_CHOSEN, precision_tags

            ptags = precision_tags(
                {
                    k: {"macro_f1": v["macro_f1"], "ms_per_article": v["ms_per_article"]}
                    for k, v in result.precisions.items()
                }
            )
            ptags[TAG_CHOSEN] = str(result.auto_precision)
            for key, value in ptags.items():
                client.set_model_version_tag(registered_model, model_version, key, value)
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
    evaluation_kind: str = "gold",
    champion_evaluation_kind: str | None = None,
    measure_precision: bool = True,
) -> EvaluationResult:
    """Everything the `model_evaluation` asset needs: predictions of all models on the gold test
    rows (title, text, label[, url, article_id]) and the evaluation result.

    measure_precision: also score the candidate at every serving precision it can run (torch
    fp32/bf16, ONNX fp32/int8) at `serving.max_length` (what serving will use)."""
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
    result = evaluate_models(
        gold=test_rows["label"].to_list(),
        labels=labels,
        candidate=candidate,
        baseline=baseline,
        labeler=labeler,
        champion=champion,
        gate_cfg=cfg.gate,
        baseline_kind=kind,
        out_dir=out_dir,
        evaluation_kind=evaluation_kind,
        champion_evaluation_kind=champion_evaluation_kind,
    )
    result.max_precision_f1_loss = cfg.serving.auto_max_f1_loss
    if measure_precision:
        from newsml_pipeline.core.evaluation.precisions import measure_precisions

        result.precisions = measure_precisions(
            candidate_model_dir,
            test_rows,
            labels=labels,
            max_length=cfg.serving.max_length or cfg.training.max_length,
            batch_size=cfg.serving.batch_size,
            device=device,
        )
    return result
