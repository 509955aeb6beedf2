"""`model_evaluation` and its `evaluation_gate`: the candidate ships only if it earns it.

A blocked gate is a verdict, not an incident (DESIGN §4, §8). Of the two ways the design allows,
this module takes the second: `evaluation_gate` is a non-blocking ERROR check, so a blocked
candidate shows in the UI as a failed check with its reasons, and `deployed_model`
(defs/deployment.py, `output_required=False`) reads the same gate decision from
model_evaluation's value and materializes nothing when it failed, in a run that succeeds. Why
not a blocking check that fails the run: a failed run is what everything around Dagster reads
as "something broke" — the run-failure alert sensor, run retries (`dagster/max_retries` would
re-train a candidate that was simply not better), the UI's run list, a team's monitoring — and
each of them would need to learn that one kind of failure is fine. A successful run that did
not deploy keeps "failed" meaning broken everywhere at once.
"""

import logging
from pathlib import Path
from typing import Any

import dagster as dg

from newsml_pipeline.core.evaluation.report import TAG_EVALUATION, log_evaluation_run, run_evaluation
from newsml_pipeline.core.serving.predictor import ChampionResolver
from newsml_pipeline.defs.metadata import metadata_table, png_markdown
from newsml_pipeline.defs.placement import GPU_STEP, LIGHT_STEP, model_step_pool
from newsml_pipeline.defs.resources import MlflowResource, NewsmlSettings, WarehouseResource
from newsml_pipeline.defs.retries import TRANSIENT_RETRY, retry_transient_only
from newsml_pipeline.defs.training import SPLITS_TABLE, split_rows_with_text

log = logging.getLogger(__name__)

# Bump by hand when a change here or in core/evaluation changes what the asset computes: the UI
# then marks model_evaluation (and what depends on it) as stale by code version.
CODE_VERSION = "2"


@dg.asset(
    group_name="evaluation",
    deps=[dg.AssetKey(SPLITS_TABLE)],
    op_tags=GPU_STEP,
    retry_policy=TRANSIENT_RETRY,  # network / shared-service faults (defs/retries.py)
    kinds={"mlflow", "scikitlearn"},
    code_version=CODE_VERSION,
    pool=model_step_pool("model_evaluation"),  # candidate/champion/zero-shot models go on CUDA if any
    description=(
        "Candidate vs baseline (gate.baseline; zero-shot base model by default) vs champion vs the "
        "auto-labeler, all on the same gold test rows: accuracy, macro-F1, per-class P/R/F1, confusion "
        "matrix, calibration error and paired bootstrap intervals. Logged as an MLflow evaluation run."
    ),
)
@retry_transient_only
def model_evaluation(
    context: dg.AssetExecutionContext,
    newsml: NewsmlSettings,
    warehouse: WarehouseResource,
    mlflow: MlflowResource,
    candidate_model: dict,
) -> dg.Output[dict]:
    settings = newsml.settings
    cfg = settings.config
    rows = split_rows_with_text(warehouse.get())
    test_rows = rows.filter(rows["split"] == "test")
    resolver = ChampionResolver(
        tracking_uri=mlflow.tracking_uri,
        registered_model=mlflow.registered_model,
        cache_dir=settings.models_dir / "registry_cache",
    )
    champion = resolver.current()
    champion_dir = resolver.local_dir(champion) if champion is not None else None
    out_dir = Path(candidate_model["model_dir"]).parent / "evaluation"
    kind = (
        str(test_rows["evaluation_kind"][0])
        if "evaluation_kind" in test_rows.columns and len(test_rows)
        else "gold"
    )
    client = mlflow.client()
    champion_kind = None
    if champion is not None:
        tags = client.get_model_version(mlflow.registered_model, str(champion.version)).tags or {}
        # a champion deployed before evaluations were labelled gold/silver was evaluated on gold
        champion_kind = tags.get(TAG_EVALUATION, "gold")
    result = run_evaluation(
        test_rows,
        cfg=cfg,
        candidate_model_dir=candidate_model["model_dir"],
        candidate_version=candidate_model["version"],
        champion_model_dir=champion_dir,
        champion_version=None if champion is None else champion.version,
        out_dir=out_dir,
        evaluation_kind=kind,
        champion_evaluation_kind=champion_kind,
    )
    client.set_model_version_tag(
        mlflow.registered_model, str(candidate_model["version"]), TAG_EVALUATION, kind
    )
    eval_run_id = log_evaluation_run(
        result,
        tracking_uri=mlflow.tracking_uri,
        experiment=cfg.mlflow.experiment,
        training_run_id=candidate_model["run_id"],
        tags={"dagster_run_id": context.run_id},
        artifact_root=mlflow.artifact_root,
        registered_model=mlflow.registered_model,
        model_version=candidate_model["version"],
        model_id=candidate_model.get("model_id"),  # MLflow 3: metrics on the candidate's model page
        test_rows=test_rows,
    )
    value = result.to_dict() | {"candidate": candidate_model, "evaluation_run_id": eval_run_id}
    metadata: dict[str, Any] = {
        "models": metadata_table(result.model_rows()),
        "bootstrap_intervals": metadata_table(result.interval_rows()),
        "per_class_f1": metadata_table(result.per_class_rows()),
        "gate": dg.MetadataValue.md(f"**{result.gate.summary()}**"),
        "gate_passed": result.gate.passed,
        "gate_reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in result.gate.reasons)),
        "n_test": result.n_test,
        "evaluation_kind": kind,
        "champion_evaluation_kind": champion_kind or "no champion",
        "mlflow_evaluation_run": dg.MetadataValue.url(
            mlflow.run_url(eval_run_id, candidate_model["experiment_id"])
        ),
        "candidate_version": candidate_model["version"],
        "champion_version": "none" if champion is None else champion.version,
    }
    if result.precisions:
        metadata["serving_precisions"] = metadata_table(result.precision_rows())
        metadata["auto_precision"] = str(result.auto_precision)
    # Pictures, shown inline by the UI: per-class F1 of all models, then each confusion matrix.
    for name, png in result.confusion_png.items():
        key = "per_class_f1_chart" if name == "per_class_f1" else f"confusion_{name}"
        metadata[key] = png_markdown(png, alt=key)
    for key, val in result.metrics().items():
        if key.endswith(("_macro_f1", "_accuracy")) or key.startswith("candidate_vs_"):
            metadata[key] = dg.MetadataValue.float(float(val))
    return dg.Output(value, metadata=metadata)


@dg.asset_check(
    asset=model_evaluation,
    name="evaluation_gate",
    # Not blocking: a blocked candidate is a verdict, and the run that reached it succeeds;
    # deployed_model applies the same decision (the module docstring says why).
    blocking=False,
    op_tags=LIGHT_STEP,
    description=(
        "Deployment rule: candidate macro-F1 ≥ baseline + gate.min_gain_over_baseline, ≥ champion − "
        "gate.max_drop_vs_champion, every class F1 ≥ gate.min_class_f1, and at least gate.min_test_rows "
        "gold test rows; a silver evaluation never replaces a gold-evaluated champion. Failed (ERROR) = "
        "the candidate is blocked: deployed_model is not materialized in that run, which still succeeds."
    ),
)
def evaluation_gate(model_evaluation: dict) -> dg.AssetCheckResult:
    gate = model_evaluation["gate"]
    metadata: dict[str, Any] = {
        "verdict": "deploy" if gate["passed"] else "blocked: not deployed",
        "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in gate["reasons"])),
        "evaluation_kind": model_evaluation.get("evaluation_kind", "gold"),
    }
    for name, check in gate["checks"].items():
        metadata[name] = dg.MetadataValue.json(check)
    verdict = "PASSED" if gate["passed"] else "FAILED (candidate blocked, not deployed)"
    return dg.AssetCheckResult(
        passed=bool(gate["passed"]),
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"gate {verdict}: " + "; ".join(gate["reasons"]),
        metadata=metadata,
    )


evaluation_assets = [model_evaluation]
evaluation_checks = [evaluation_gate]
