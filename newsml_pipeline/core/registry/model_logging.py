"""One MLflow run per training: params, per-epoch metrics, system info, artifacts, registered pyfunc.

The new model version is registered WITHOUT an alias: only deployment (after the gate) moves
`champion`. A failing training ends its run as FAILED and re-raises.
"""

from __future__ import annotations

import json
import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from newsml_pipeline.core.registry.datasets import log_split_inputs
from newsml_pipeline.core.registry.pyfunc_requirements import PACKAGE_DIR, pip_requirements
from newsml_pipeline.core.registry.tracking import configure_mlflow, model_version_url_path, run_url_path
from newsml_pipeline.core.training.artifacts import LABEL_MAP_FILE, MODEL_CARD_FILE
from newsml_pipeline.core.training.fine_tune import TrainResult, train_classifier
from newsml_pipeline.core.training.self_training import self_train
from newsml_pipeline.settings import MlflowConfig, TrainingConfig, category_slug

logger = logging.getLogger(__name__)

INPUT_EXAMPLE = {
    "title": ["Shares rise as the bank reports record profit"],
    "text": ["The company said growth in sales lifted annual profit, and investors welcomed the deal."],
}


class MlflowRunLogger:
    """RunLogger that writes per-epoch metrics to the active MLflow run."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def log_metrics(self, metrics: dict[str, float], *, step: int) -> None:
        import mlflow

        mlflow.log_metrics(metrics, step=step, run_id=self.run_id)


@dataclass
class LoggedModel:
    run_id: str
    experiment_id: str
    registered_model: str
    version: str
    model_uri: str  # models:/<registered_model>/<version>
    logged_model_uri: str  # MLflow 3 logged-model URI (models:/m-...), linked to the run
    run_url_path: str  # relative to the MLflow UI root
    model_version_url_path: str
    metrics: dict[str, Any]
    train_result: TrainResult
    tags: dict[str, str] = field(default_factory=dict)
    self_training: list[dict[str, Any]] | None = None  # one row per round (rounds > 0 only)
    model_id: str | None = None  # MLflow 3 logged-model id: evaluation metrics are logged against it


def flat_params(
    training_cfg: TrainingConfig, *, labels: list[str], result: TrainResult | None = None
) -> dict[str, str]:
    """Config flattened to MLflow params (lora.r -> lora_r), plus labels and row counts."""
    out: dict[str, str] = {}
    for k, v in training_cfg.model_dump(mode="json").items():
        if isinstance(v, dict):
            out.update(
                {f"{k}_{kk}": json.dumps(vv) if isinstance(vv, list) else str(vv) for kk, vv in v.items()}
            )
        else:
            out[k] = str(v)
    out["labels"] = json.dumps(list(labels), ensure_ascii=False)  # names may hold commas
    # Per-class metrics are named by slug (`test_f1_sci_tech`); this maps them back to names.
    out["class_slugs"] = json.dumps({category_slug(n): n for n in labels}, ensure_ascii=False)
    if result is not None:
        out.update({"n_train": str(result.n_train), "n_val": str(result.n_val), "n_test": str(result.n_test)})
    return out


def model_signature() -> Any:
    """Input: text (required), title (optional); output: label, confidence, scores; param batch_size."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "text"), ColSpec("string", "title", required=False)]),
        outputs=Schema(
            [ColSpec("string", "label"), ColSpec("double", "confidence"), ColSpec("string", "scores")]
        ),
        params=ParamSchema([ParamSpec("batch_size", "long", 32)]),
    )


def _final_metrics(result: TrainResult) -> dict[str, float]:
    out = {k: float(v) for k, v in result.metrics.items() if isinstance(v, (int, float))}
    for split in ("val", "test"):
        for name, v in (result.metrics.get(f"{split}_per_class_f1") or {}).items():
            out[f"{split}_f1_{category_slug(name)}"] = float(v)
    out.update(
        {
            "train_seconds": result.train_seconds,
            "seconds_per_epoch": result.seconds_per_epoch,
            "samples_per_s": result.samples_per_s,
            "peak_memory_mb": result.peak_memory_mb,
            "epochs_run": result.epochs_run,
            "trainable_parameters": float(result.trainable_parameters),
        }
    )
    return out


def log_self_training(rounds: list[dict[str, Any]], *, selected_round: int) -> None:
    """Per-round metrics (step = round) and the round table of the active run."""
    import mlflow

    for row in rounds:
        metrics = {
            f"self_training_{k}": float(row[k])
            for k in (
                "relabelled",
                "changes",
                "changed_from_auto",
                "n_train",
                "val_macro_f1",
                "test_macro_f1",
            )
            if row.get(k) is not None
        }
        mlflow.log_metrics(metrics, step=int(row["round"]))
    mlflow.log_metric("self_training_selected_round", float(selected_round))
    mlflow.log_dict(rounds, "self_training.json")


def train_and_log(
    frame: pl.DataFrame,
    *,
    labels: list[str],
    training_cfg: TrainingConfig,
    mlflow_cfg: MlflowConfig,
    tracking_uri: str,
    artifact_root: str | Path | None,
    work_dir: str | Path,
    tags: dict[str, str] | None = None,
    data_window: str | None = None,
    run_name: str | None = None,
    export_onnx: bool = True,
) -> LoggedModel:
    """Train (see train_classifier) inside one MLflow run and register the model as a new version.

    `tags`: e.g. {"dagster_run_id": ..., "partition_window": ..., "git_commit": ...}; a
    `git_commit` tag is also written as mlflow.source.git.commit. `work_dir` holds checkpoints
    and the saved model (a rerun with the same work_dir and data resumes). `export_onnx`: see
    log_pyfunc_model (off where the serving precision is a fixed torch one).
    """
    import mlflow

    exp_id = configure_mlflow(tracking_uri, experiment=mlflow_cfg.experiment, artifact_root=artifact_root)
    tags = {k: str(v) for k, v in (tags or {}).items() if v is not None}
    run_tags = dict(tags)
    if "git_commit" in tags:
        run_tags["mlflow.source.git.commit"] = tags["git_commit"]
    if data_window:
        run_tags.setdefault("partition_window", data_window)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=run_tags) as run:
        run_id = run.info.run_id
        logger.info("MLflow run %s (experiment %s)", run_id, exp_id)
        mlflow.log_params(flat_params(training_cfg, labels=labels))
        # the rows it learns from, early-stops on and is scored on: the run page lists them
        log_split_inputs(mlflow.MlflowClient(), run_id, frame)
        rounds: list[dict[str, Any]] | None = None
        how = {
            "labels": labels,
            "training_cfg": training_cfg,
            "output_dir": Path(work_dir),
            "run_logger": MlflowRunLogger(run_id),
            "data_window": data_window,
        }
        if training_cfg.self_training.rounds > 0:
            st = self_train(frame, **how)
            result, rounds = st.result, st.rows()
            log_self_training(rounds, selected_round=st.selected_round)
        else:
            result = train_classifier(frame, **how)
        mlflow.log_params({"n_train": result.n_train, "n_val": result.n_val, "n_test": result.n_test})
        mlflow.log_metrics(_final_metrics(result))
        mlflow.set_tags(
            {
                "device": result.device,
                "precision": result.precision,
                "python": platform.python_version(),
                "platform": platform.platform(),
                "resumed_from": result.resumed_from or "",
            }
        )
        mlflow.log_artifact(str(result.model_dir / MODEL_CARD_FILE))
        mlflow.log_artifact(str(result.model_dir / LABEL_MAP_FILE))
        mlflow.log_dict(result.metrics.get("history", []), "history.json")
        mlflow.log_dict(result.summary(), "train_result.json")
        info = log_pyfunc_model(
            result.model_dir,
            registered_model=mlflow_cfg.registered_model,
            max_length=training_cfg.max_length,
            export_onnx=export_onnx,
        )
        version = str(info.registered_model_version)
        logged_model_uri = info.model_uri
        model_id = info.model_id
    logger.info("registered %s version %s from run %s", mlflow_cfg.registered_model, version, run_id)
    return LoggedModel(
        run_id=run_id,
        experiment_id=exp_id,
        registered_model=mlflow_cfg.registered_model,
        version=version,
        model_uri=f"models:/{mlflow_cfg.registered_model}/{version}",
        logged_model_uri=logged_model_uri,
        model_id=model_id,
        run_url_path=run_url_path(exp_id, run_id),
        model_version_url_path=model_version_url_path(mlflow_cfg.registered_model, version),
        metrics=_final_metrics(result),
        train_result=result,
        tags=tags,
        self_training=rounds,
    )


def log_pyfunc_model(
    model_dir: str | Path,
    *,
    registered_model: str | None,
    max_length: int = 256,
    export_onnx: bool = True,
) -> Any:
    """Log `model_dir` as the pyfunc `model` of the active run; register it when a name is given.

    export_onnx: first write `<model_dir>/onnx/model.onnx` + `model.int8.onnx` (checked against
    torch), so the ONNX files are artifacts of the same model version. An export failure fails
    the registration (OnnxExportError) rather than registering a version `onnx` cannot serve.
    """
    import mlflow
    import pandas as pd

    from newsml_pipeline.core.serving.pyfunc_model import MODEL_DIR_ARTIFACT, NewsTopicPyfunc

    if export_onnx:
        from newsml_pipeline.core.serving.onnx_model import export_onnx as _export

        files = _export(model_dir)
        mlflow.log_metric("onnx_fp32_max_abs_diff_vs_torch", files.max_abs_diff)

    # code_paths: the package travels with the model (model/code/newsml_pipeline), so a fresh
    # environment built from the pinned requirements can load it without this repo installed.
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=NewsTopicPyfunc(max_length=max_length),
        artifacts={MODEL_DIR_ARTIFACT: str(model_dir)},
        code_paths=[str(PACKAGE_DIR)],
        signature=model_signature(),
        input_example=pd.DataFrame(INPUT_EXAMPLE),
        pip_requirements=pip_requirements(),
        registered_model_name=registered_model,
    )
