"""The entity recognizer in MLflow: one run per training (params, losses, the saved pipeline),
registered as a pyfunc under the entity task's own registered model, and the `champion` alias
resolved to a local pipeline directory for prediction.

The pyfunc takes a DataFrame with `text` and answers a DataFrame with `entities` (a JSON list of
{start, end, label, text} with character offsets into the text)."""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsml_pipeline.core.entities.model import LABELS_FILE

log = logging.getLogger(__name__)

ARTIFACT = "entity_model"
PACKAGE_DIR = Path(__file__).resolve().parents[2]
# What the pyfunc's code imports (spaCy pipeline, or transformers for the LoRA path). Named here so
# MLflow does not infer them by loading the model in a subprocess at every registration (minutes).
REQUIREMENTS = ("mlflow", "pandas", "pydantic", "pyyaml", "numpy", "spacy", "torch", "transformers")


def pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in REQUIREMENTS:
        try:
            v = version(name).split("+")[0]  # the local "+cpu" build tag is on no index
        except PackageNotFoundError:
            continue
        out.append(f"{name}=={v}")
    return out


def spans_json(text: str, spans: list) -> list[dict[str, Any]]:
    return [{"start": s.start, "end": s.end, "label": s.label, "text": text[s.start : s.end]} for s in spans]


@dataclass(frozen=True)
class RegisteredEntityModel:
    run_id: str
    experiment_id: str
    registered_model: str
    version: str


def log_entity_model(
    model_dir: Path,
    *,
    tracking_uri: str,
    experiment: str,
    artifact_root: str | Path | None,
    registered_model: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    epoch_losses: list[float],
    tags: dict[str, str],
) -> RegisteredEntityModel:
    """One MLflow run: params, per-epoch NER loss, metrics, the pipeline as a registered pyfunc
    (a new version without alias: only deployment after the gate moves `champion`)."""
    import mlflow
    import pandas as pd

    from newsml_pipeline.core.entities.pyfunc import EntityPyfunc
    from newsml_pipeline.core.registry.tracking import configure_mlflow

    exp_id = configure_mlflow(tracking_uri, experiment=experiment, artifact_root=artifact_root)
    with mlflow.start_run(run_name="entity-recognizer", tags={"newsml.task": "entities", **tags}) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        for i, loss in enumerate(epoch_losses):
            mlflow.log_metric("train_ner_loss", loss, step=i + 1)
        mlflow.log_metrics(metrics)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=EntityPyfunc(),
            artifacts={ARTIFACT: str(model_dir)},
            code_paths=[str(PACKAGE_DIR)],
            input_example=pd.DataFrame({"text": ["Reuters reported that Angela Merkel visited Paris."]}),
            pip_requirements=pip_requirements(),
            registered_model_name=registered_model,
        )
        run_id = run.info.run_id
    version = str(info.registered_model_version)
    log.info("registered %s version %s from run %s", registered_model, version, run_id)
    return RegisteredEntityModel(run_id, exp_id, registered_model, version)


def model_dir_of(root: Path) -> Path:
    """The pipeline directory (the one holding entity_labels.json) inside a downloaded model."""
    found = sorted(root.rglob(LABELS_FILE))
    if not found:
        raise FileNotFoundError(f"no {LABELS_FILE} under {root}: not an entity model")
    return found[0].parent


def download_version(tracking_uri: str, name: str, version: str, cache_dir: Path) -> Path:
    """The version's pipeline directory, downloaded once into cache_dir/name/version."""
    import mlflow.artifacts

    from newsml_pipeline.core.registry.tracking import store_client

    target = Path(cache_dir) / name / str(version)
    done = target / ".complete"
    if not done.exists():
        tmp = target.with_name(f"{version}.partial-{uuid.uuid4().hex}")
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            client = store_client(tracking_uri)
            location = client.get_model_version_download_uri(name, str(version))
            mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=str(tmp), tracking_uri=tracking_uri
            )
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
        done.touch()
    return model_dir_of(target)


def champion(tracking_uri: str, name: str) -> str | None:
    """The version `champion` points at, or None."""
    from newsml_pipeline.core.registry.aliases import get_champion
    from newsml_pipeline.core.registry.tracking import store_client

    mv = get_champion(store_client(tracking_uri), name)
    return None if mv is None else str(mv.version)
