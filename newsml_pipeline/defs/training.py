"""`dataset_splits` and `candidate_model`: from labeled days to a LoRA fine-tuned, registered model."""

import logging
import shutil
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from newsml_pipeline.core.data.readiness import SPLIT_INPUTS, SplitsAssessment, assess_splits, missing_inputs
from newsml_pipeline.core.labeling.trusted import collect_trusted_labels
from newsml_pipeline.core.registry.model_logging import train_and_log
from newsml_pipeline.core.serving.precision import needs_onnx_export
from newsml_pipeline.core.training.fine_tune import training_fingerprint
from newsml_pipeline.defs.clock import run_time
from newsml_pipeline.defs.metadata import metadata_table, quality_check_result
from newsml_pipeline.defs.placement import GPU_STEP, WINDOW_STEP, model_step_pool
from newsml_pipeline.defs.resources import MlflowResource, NewsmlSettings, WarehouseResource
from newsml_pipeline.defs.retries import TRANSIENT_RETRY, retry_transient_only
from newsml_pipeline.settings import Settings

log = logging.getLogger(__name__)

# Bump by hand when a change here (or in the core code its assets call) changes what they compute:
# the Dagster UI then marks the assets as stale because their code version changed.
CODE_VERSION = "2"

SPLITS_TABLE = "dataset_splits"


def _git_commit() -> str | None:
    """The code version a model was trained with, where the package runs from a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def labeled_with_raw(wh, *, feedback: pl.DataFrame | None = None) -> pl.DataFrame:
    """Every labeled article joined with what splitting and training need from raw_articles.

    feedback_label comes from `feedback` (article_id, label) when given, else from the
    label_feedback table once it exists; before that there are none.
    """
    if feedback is None and wh.table_exists("label_feedback"):
        feedback_col, feedback_join = "f.label", "LEFT JOIN label_feedback f USING (article_id)"
    else:
        feedback_col, feedback_join = "CAST(NULL AS VARCHAR)", ""
    frame = wh.query(
        f"""
        SELECT l.article_id, l.partition_date, l.label AS auto_label, l.confidence, l.votes,
               r.title, r.text, r.url, r.source, r.content_hash, r.near_duplicate_of,
               r.gold_label AS source_gold_label, {feedback_col} AS feedback_label
        FROM labeled_articles l
        JOIN raw_articles r USING (article_id)
        {feedback_join}
        """
    )
    if feedback is None:
        return frame
    fb = feedback.select(pl.col("article_id").cast(pl.String), pl.col("label").cast(pl.String).alias("fb"))
    return (
        frame.join(fb, on="article_id", how="left")
        .with_columns(pl.col("fb").alias("feedback_label"))
        .drop("fb")
    )


def retrain_readiness(settings: Settings, wh, *, today: date) -> SplitsAssessment:
    """Would retrain_job get past dataset_splits now? (the schedule's and the drift sensor's check)

    The run first rebuilds label_feedback from the feedback store, so this reads the trusted
    labels the same way (collect_trusted_labels) instead of the label_feedback table, which may
    predate answers given since the last retrain; then it builds the splits as dataset_splits does.
    """
    missing = [t for t in SPLIT_INPUTS if not wh.table_exists(t)]
    if missing:
        return missing_inputs(missing)
    known = wh.query("SELECT article_id, url, gold_label FROM raw_articles")
    trusted = collect_trusted_labels(
        known=known, feedback_dir=settings.feedback_dir, labels=settings.config.labels.names
    )
    frame = labeled_with_raw(wh, feedback=trusted.gold)
    return assess_splits(frame, config=settings.config, today=today, verdict_only=True)


def split_rows_with_text(wh) -> pl.DataFrame:
    """dataset_splits joined with the article text (what training and evaluation read)."""
    return wh.query(
        f"""
        SELECT s.*, r.title, r.text, r.url
        FROM {SPLITS_TABLE} s JOIN raw_articles r USING (article_id)
        ORDER BY s.article_id
        """
    )


@dg.asset(
    name=SPLITS_TABLE,
    group_name="training",
    op_tags=WINDOW_STEP,
    retry_policy=TRANSIENT_RETRY,  # network / shared-service faults (defs/retries.py)
    deps=[dg.AssetKey("labeled_articles"), dg.AssetKey("label_feedback")],
    kinds={"duckdb", "polars"},
    code_version=CODE_VERSION,
    description=(
        "train / val / test over the rolling window (splits.window_days): deterministic salted-hash "
        "assignment, near-duplicate groups kept together; val/test rows carry trusted gold labels (or, "
        "with gate.evaluation silver/auto while gold is short, silver labels from functions independent "
        "of the baseline: column evaluation_kind), train rows auto-labels (unless splits.train_on_gold)."
    ),
    tags={"layer": "gold"},
    # Training on a class with a handful of examples is meaningless: block candidate_model.
    check_specs=[dg.AssetCheckSpec("min_class_count", asset=SPLITS_TABLE, blocking=True)],
)
@retry_transient_only
def dataset_splits(
    context: dg.AssetExecutionContext, newsml: NewsmlSettings, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    cfg = newsml.config
    wh = warehouse.get()
    missing = [t for t in SPLIT_INPUTS if not wh.table_exists(t)]
    if missing:
        raise dg.Failure(
            description=f"nothing to split yet: {', '.join(missing)} not materialized; "
            "run ingest_job (raw → labeled → scored) for some days first"
        )
    # The same assessment the schedule and the drift sensor run before they request this job.
    assessed = assess_splits(labeled_with_raw(wh), config=cfg, today=run_time(context).date())
    if assessed.error is not None:
        raise assessed.error
    splits, report, q = assessed.splits, assessed.report, assessed.train_check
    assert splits is not None and report is not None and q is not None  # built: no SplitError
    splits = splits.with_columns(pl.lit(report["evaluation"]).alias("evaluation_kind"))
    wh.replace_table(SPLITS_TABLE, splits)
    counts = splits.group_by("split", "label").len().sort("split", "label")
    context.log.info("dataset_splits: %s", report)
    return dg.MaterializeResult(
        check_results=[quality_check_result(q, asset=SPLITS_TABLE, prefix="train split: ")],
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(splits)),
            "evaluation_kind": report["evaluation"],
            "why_silver": report.get("why_silver", "not silver"),
            "split_sizes": dg.MetadataValue.json(dict(splits.group_by("split").len().iter_rows())),
            "label_sources": dg.MetadataValue.json(
                {f"{s}/{src}": n for s, src, n in splits.group_by("split", "label_source").len().iter_rows()}
            ),
            "counts_per_class": metadata_table(counts),
            "label_issues_dropped": dg.MetadataValue.int(report["dropped"]["label_issue"]),
            "label_issue_examples": metadata_table(report["label_issues"].get("examples", [])),
            "report": dg.MetadataValue.json(_jsonable(report)),
        },
    )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def discard_stale_checkpoints(models_dir: Path, *, keep: Path) -> None:
    """Remove the checkpoints a crashed training of other data or config left behind.

    Trainings never overlap (their one-slot pool and the retrain run limit), so checkpoints outside
    `keep` can only be resumed if that exact dataset and config come back; each is hundreds of
    MB of optimizer state. Finished models in those dirs are kept.
    """
    for ckpt in sorted(models_dir.glob("train-*/checkpoints")):
        if ckpt.parent != keep:
            log.warning("discarding checkpoints of another training's crashed run: %s", ckpt)
            shutil.rmtree(ckpt)


@dg.asset(
    group_name="training",
    deps=[dg.AssetKey(SPLITS_TABLE)],
    op_tags=GPU_STEP,
    retry_policy=TRANSIENT_RETRY,  # network / shared-service faults (defs/retries.py)
    # Two trainings never fight for one device or a checkpoint dir: its pool (`gpu` where there are
    # GPUs, else `training`) has one slot (dagster.yaml).
    pool=model_step_pool("candidate_model"),
    kinds={"pytorch", "mlflow", "huggingface"},
    code_version=CODE_VERSION,
    description=(
        "LoRA fine-tuned transformer (training.base_model, packaged all-MiniLM-L6-v2 by default) trained on "
        "the auto-labeled train split, early-stopped on the gold val split. Every training is an MLflow run; "
        "the merged model is registered as a new version of mlflow.registered_model (no alias: deployment moves aliases)."
    ),
)
@retry_transient_only
def candidate_model(
    context: dg.AssetExecutionContext,
    newsml: NewsmlSettings,
    warehouse: WarehouseResource,
    mlflow: MlflowResource,
) -> dg.Output[dict]:
    settings = newsml.settings
    cfg = settings.config
    frame = split_rows_with_text(warehouse.get())
    if frame.is_empty():
        raise ValueError(
            "dataset_splits is empty: materialize raw_articles, labeled_articles and dataset_splits first"
        )
    dates = frame.get_column("partition_date") if "partition_date" in frame.columns else None
    window = (
        f"{dates.min()}..{dates.max()}"
        if dates is not None and dates.drop_nulls().len()
        else "all available rows"
    )
    # Keyed on what is trained, not on the Dagster run: a re-execution of a crashed run (new run
    # id, same splits and config) finds that run's checkpoints and resumes them.
    fingerprint = training_fingerprint(frame, cfg.labels.names, cfg.training)
    work_dir = settings.models_dir / f"train-{fingerprint}"
    context.log.info("training work dir %s (fingerprint %s)", work_dir, fingerprint)
    discard_stale_checkpoints(settings.models_dir, keep=work_dir)
    logged = train_and_log(
        frame,
        labels=cfg.labels.names,
        training_cfg=cfg.training,
        mlflow_cfg=cfg.mlflow,
        tracking_uri=mlflow.tracking_uri,
        artifact_root=mlflow.artifact_root,
        work_dir=work_dir,
        tags={"dagster_run_id": context.run_id, "partition_window": window, "git_commit": _git_commit()},
        data_window=window,
        run_name=f"candidate-{datetime.now(UTC):%Y%m%dT%H%M%S}",
        export_onnx=needs_onnx_export(cfg.serving.precision),
    )
    result = logged.train_result
    value = {
        "run_id": logged.run_id,
        "experiment_id": logged.experiment_id,
        "registered_model": logged.registered_model,
        "version": logged.version,
        "model_uri": logged.model_uri,
        "model_id": logged.model_id,
        "model_dir": str(result.model_dir),
        "metrics": {k: float(v) for k, v in logged.metrics.items()},
    }
    metrics_table = metadata_table(
        [{"metric": k, "value": float(v)} for k, v in sorted(logged.metrics.items()) if "_f1_" not in k]
    )
    extra: dict[str, Any] = {}
    if logged.self_training:
        selected = next(r["round"] for r in logged.self_training if r["selected"])
        value["self_training"] = {"selected_round": selected, "rounds": logged.self_training}
        extra = {
            "self_training_rounds": metadata_table(
                [{k: v for k, v in r.items() if k != "model_dir"} for r in logged.self_training]
            ),
            "self_training_selected_round": dg.MetadataValue.int(int(selected)),
            "self_training_label_changes": dg.MetadataValue.int(
                int(logged.self_training[selected]["changed_from_auto"])
            ),
        }
    return dg.Output(
        value,
        metadata={
            **extra,
            "mlflow_run": dg.MetadataValue.url(mlflow.run_url(logged.run_id, logged.experiment_id)),
            "mlflow_run_id": logged.run_id,
            "model_uri": logged.model_uri,
            "model_version": logged.version,
            "registered_model": dg.MetadataValue.url(mlflow.model_version_url(logged.version)),
            "device": result.device,
            "train_seconds": dg.MetadataValue.float(float(result.train_seconds)),
            "samples_per_s": dg.MetadataValue.float(float(result.samples_per_s)),
            "data_window": window,
            "n_train": result.n_train,
            "n_val": result.n_val,
            **{
                k: dg.MetadataValue.float(float(logged.metrics[k]))
                for k in ("val_macro_f1", "test_macro_f1")
                if k in logged.metrics
            },
            "metrics": metrics_table,
        },
    )


training_assets = [dataset_splits, candidate_model]
