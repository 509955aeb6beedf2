"""The one `dg.Definitions` of the project: assets, checks, jobs, schedules, sensors, resources.

Built by a function from `Settings` so tests can build it for their own NEWSML_HOME / config;
the module-level `defs` uses the environment (NEWSML_HOME, NEWSML_CONFIG) like `dagster dev`.
"""

from __future__ import annotations

import gc

# Loading the code location (every step process and step pod does it first) allocates about a
# million objects that live as long as the process: Dagster's modules and ours. The cyclic GC
# would walk them all several times on the way (a third of the import's CPU time) and again in
# every full collection after it, and find no garbage: so it waits until the imports are done, and
# `freeze` moves what they allocated out of later collections' way (as the gc docs advise for
# long-lived state set up at start).
_gc_was_enabled = gc.isenabled()
gc.disable()
try:
    import dagster as dg

    from newsml_pipeline.defs.alerts import run_failure_alert_sensor
    from newsml_pipeline.defs.automation import build_drift_sensor, build_jobs, build_schedules
    from newsml_pipeline.defs.catalog import with_catalog_metadata
    from newsml_pipeline.defs.champion import champion_alias_sensor
    from newsml_pipeline.defs.deployment import deployed_model
    from newsml_pipeline.defs.entities import (
        build_entity_assets,
        build_entity_drift_sensor,
        build_entity_jobs,
        build_entity_schedules,
    )
    from newsml_pipeline.defs.evaluation import evaluation_assets, evaluation_checks
    from newsml_pipeline.defs.ingestion import build_ingestion_assets
    from newsml_pipeline.defs.labeling import build_labeling_assets
    from newsml_pipeline.defs.monitoring import build_monitoring_assets
    from newsml_pipeline.defs.partitions import daily_partitions
    from newsml_pipeline.defs.placement import executor_from_env
    from newsml_pipeline.defs.resources import MlflowResource, NewsmlSettings, WarehouseResource
    from newsml_pipeline.defs.review import build_review_assets
    from newsml_pipeline.defs.training import training_assets
    from newsml_pipeline.settings import Settings
finally:
    gc.freeze()
    if _gc_was_enabled:
        gc.enable()


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    cfg = settings.config
    return {
        "newsml": NewsmlSettings.from_settings(settings),
        # Asset values (candidate info, evaluation results) are small pickles kept with the rest of
        # the state under NEWSML_HOME; tables live in the warehouse (DuckDB or Postgres) and are written by the assets themselves.
        "io_manager": dg.FilesystemIOManager(base_dir=str(settings.home / "dagster_io")),
        "warehouse": WarehouseResource(path=settings.warehouse_target),
        "mlflow": MlflowResource(
            tracking_uri=settings.mlflow_tracking_uri(),
            artifact_root=str(settings.mlflow_artifact_root),
            experiment=cfg.mlflow.experiment,
            registered_model=cfg.mlflow.registered_model,
        ),
    }


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    partitions = daily_partitions(settings.config)
    # The named-entity task (group `entities`) exists only when the config has an `entities:` section.
    entity_assets, entity_checks = build_entity_assets(partitions) if settings.config.entities else ([], [])
    entity_jobs = build_entity_jobs(partitions) if settings.config.entities else []
    assets = [
        *build_ingestion_assets(partitions),
        *build_labeling_assets(partitions),
        *training_assets,
        *evaluation_assets,
        deployed_model,
        *build_monitoring_assets(partitions),
        *build_review_assets(partitions),
        *entity_assets,
    ]
    ingest_job, retrain_job, crawl_job = build_jobs(partitions)
    return dg.Definitions(
        assets=with_catalog_metadata(assets),  # owners, column schemas (defs/catalog.py)
        asset_checks=[*evaluation_checks, *entity_checks],
        jobs=[ingest_job, retrain_job, crawl_job, *entity_jobs],
        schedules=[
            *build_schedules(ingest_job, retrain_job, crawl_job, settings.config),
            *(build_entity_schedules(entity_jobs) if entity_jobs else []),
        ],
        sensors=[
            build_drift_sensor(retrain_job),
            run_failure_alert_sensor,
            champion_alias_sensor,
            *([build_entity_drift_sensor(entity_jobs)] if entity_jobs else []),
        ],
        resources=build_resources(settings),
        executor=executor_from_env(),  # NEWSML_EXECUTOR: default multiprocess, k8s = a Job per step
    )


defs = build_definitions()
