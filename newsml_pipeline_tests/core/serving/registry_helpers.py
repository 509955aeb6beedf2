"""Register tiny classifier directories as MLflow model versions in a temp sqlite store."""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow import MlflowClient

from testkit.tiny_models import make_tiny_classifier_dir


def tracking_uri_for(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def register_tiny_version(
    root: Path,
    name: str,
    labels: list[str],
    *,
    seed: int,
    experiment: str = "serving-tests",
    with_onnx: bool = False,
    tags: dict[str, str] | None = None,
    model_dir: Path | None = None,
) -> str:
    """Log a tiny model dir as run artifacts (`model/model/...`) and register it; returns the version.

    with_onnx: export the ONNX files into it first, as registration does. model_dir: register
    this classifier directory instead of a fresh random one."""
    uri = tracking_uri_for(root)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    exp_id = (
        exp.experiment_id
        if exp
        else client.create_experiment(experiment, artifact_location=str(root / "artifacts"))
    )
    model_dir = model_dir or make_tiny_classifier_dir(root / f"src-{seed}", labels, seed=seed)
    if with_onnx:
        from newsml_pipeline.core.serving.onnx_model import export_onnx

        export_onnx(model_dir)
    run = client.create_run(exp_id)
    client.log_artifacts(run.info.run_id, str(model_dir), artifact_path="model/model")
    client.set_terminated(run.info.run_id)
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name)
    mv = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=tags
    )
    return str(mv.version)
