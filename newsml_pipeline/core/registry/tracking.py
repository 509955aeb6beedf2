"""Point MLflow at the project's tracking store and make sure the experiment exists.

Default store: `sqlite:///$NEWSML_HOME/mlflow.db` with artifacts under `$NEWSML_HOME/mlartifacts`
(a SQLite store without an explicit artifact location would scatter `./mlruns` into whatever
directory the process runs in). `MLFLOW_TRACKING_URI` is honoured via `Settings.mlflow_tracking_uri()`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


def default_tracking_uri(home: str | Path) -> str:
    """MLFLOW_TRACKING_URI if set, else the SQLite store under `home` (NEWSML_HOME)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path(home).resolve() / 'mlflow.db'}"


def store_client(tracking_uri: str):  # -> mlflow.MlflowClient (mlflow imported lazily: slow import)
    """A client whose tracking store and model registry are both `tracking_uri`.

    Without registry_uri MLflow takes the process-global registry URI, which an earlier
    configure_mlflow for another store may have set: the client would then list another
    store's models (seen as a test-order-dependent empty registry).
    """
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def configure_mlflow(tracking_uri: str, *, experiment: str, artifact_root: str | Path | None = None) -> str:
    """Set the tracking (and registry) URI, create `experiment` if needed; return its id.

    A new experiment stores artifacts under `artifact_root/<experiment>` (ignored for servers
    that manage artifacts themselves, i.e. http(s) URIs, where artifact_root may be None).
    """
    import mlflow

    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = store_client(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        location = None
        if artifact_root is not None and not tracking_uri.startswith(("http://", "https://", "databricks")):
            root = Path(artifact_root).resolve() / experiment
            root.mkdir(parents=True, exist_ok=True)
            location = root.as_uri()
        exp_id = client.create_experiment(experiment, artifact_location=location)
        logger.info(
            "created MLflow experiment %r (%s) at %s", experiment, exp_id, location or "server default"
        )
    else:
        if exp.lifecycle_stage == "deleted":
            raise RuntimeError(
                f"MLflow experiment {experiment!r} is deleted in {tracking_uri}; restore it "
                "(mlflow experiments restore) or configure another mlflow.experiment"
            )
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def run_url_path(experiment_id: str, run_id: str) -> str:
    """UI path of a run, relative to the MLflow server root (the lead prefixes the host)."""
    return f"#/experiments/{experiment_id}/runs/{run_id}"


def model_version_url_path(name: str, version: str | int) -> str:
    """UI path of a registered model version, relative to the MLflow server root."""
    return f"#/models/{name}/versions/{version}"
