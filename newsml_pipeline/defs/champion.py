"""Keep `deployed_model` in the Dagster UI equal to the registry's `champion` alias.

The alias can move without a Dagster run: `newsml rollback` from a shell, or a promotion in the
MLflow UI. The first reports a runless materialization of `deployed_model` to the instance itself
(`report_champion`); `champion_alias_sensor` catches the second (and a rollback run without a
Dagster instance) by comparing the alias with the version last recorded in the instance.
"""

from __future__ import annotations

import logging

import dagster as dg
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from newsml_pipeline.core.registry.aliases import TAG_DEPLOYED_AT, TAG_REASON, get_champion
from newsml_pipeline.defs.resources import MlflowResource

log = logging.getLogger(__name__)

DEPLOYED_MODEL = dg.AssetKey("deployed_model")
VERSION_KEY = "champion_version"  # the same key deployed_model's own materializations carry


def champion_materialization(
    *,
    registered_model: str,
    version: str | int,
    previous_version: str | int | None,
    action: str,
    by: str,
    reason: str,
    model_version_url: str | None = None,
) -> dg.AssetMaterialization:
    """`deployed_model` as it now is: which version serves, who moved it, why."""
    metadata: dict[str, dg.RawMetadataValue] = {
        VERSION_KEY: str(version),
        "previous_version": "none" if previous_version is None else str(previous_version),
        "model_uri": f"models:/{registered_model}@champion",
        "action": action,
        "deployed_by": by,
        "reason": reason,
    }
    if model_version_url:
        metadata["mlflow_model_version"] = dg.MetadataValue.url(model_version_url)
    return dg.AssetMaterialization(
        asset_key=DEPLOYED_MODEL, description=f"{action}: champion is version {version}", metadata=metadata
    )


def report_champion(instance: dg.DagsterInstance, **kwargs: object) -> None:
    """Record a champion change made outside a run (kwargs: those of champion_materialization)."""
    instance.report_runless_asset_event(champion_materialization(**kwargs))  # type: ignore[arg-type]


def last_recorded_version(instance: dg.DagsterInstance) -> str | None:
    """The champion version of deployed_model's latest materialization (a run's or a report's)."""
    event = instance.get_latest_materialization_event(DEPLOYED_MODEL)
    mat = event.asset_materialization if event is not None else None
    if mat is None or VERSION_KEY not in mat.metadata:
        return None
    return str(mat.metadata[VERSION_KEY].value)


def _deploying_now(instance: dg.DagsterInstance) -> bool:
    """A run that may materialize deployed_model is in flight: it will record the alias itself."""
    for run in instance.get_runs(dg.RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES))):
        if run.job_name == "retrain_job" or (run.asset_selection and DEPLOYED_MODEL in run.asset_selection):
            return True
    return False


@dg.sensor(
    name="champion_alias_sensor",
    minimum_interval_seconds=120,
    # On by default: it only reads the registry and records what it finds; a stale UI is the worse default.
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Compares the registry's `champion` alias with the version deployed_model last recorded; when "
        "the alias moved outside Dagster (a promotion in the MLflow UI, a rollback without an instance) "
        "it records a runless materialization of deployed_model with the registry's version."
    ),
)
def champion_alias_sensor(context: dg.SensorEvaluationContext, mlflow: MlflowResource) -> dg.SensorResult:
    champ = get_champion(mlflow.client(), mlflow.registered_model)
    if champ is None:
        return dg.SensorResult(skip_reason=dg.SkipReason("the registry has no champion alias yet"))
    recorded = last_recorded_version(context.instance)
    if recorded == str(champ.version):
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"deployed_model shows version {recorded}, as the registry")
        )
    if _deploying_now(context.instance):
        return dg.SensorResult(
            skip_reason=dg.SkipReason("a deployment run is in flight; it records the alias")
        )
    tags = champ.tags or {}
    reason = tags.get(TAG_REASON) or "the champion alias was moved in the MLflow registry, outside Dagster"
    log.info("champion alias is version %s, deployed_model showed %s: recording it", champ.version, recorded)
    return dg.SensorResult(
        asset_events=[
            champion_materialization(
                registered_model=mlflow.registered_model,
                version=champ.version,
                previous_version=recorded,
                action="observed in the registry",
                by=f"champion_alias_sensor (alias set {tags.get(TAG_DEPLOYED_AT, 'at an unknown time')})",
                reason=reason,
                model_version_url=mlflow.model_version_url(champ.version),
            )
        ]
    )
