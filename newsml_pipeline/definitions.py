"""The one `dg.Definitions` of the project: assets, checks, jobs, schedules, sensors, resources.

Built by a function from `Settings` so tests can build it for their own NEWSML_HOME / config;
the module-level `defs` uses the environment (NEWSML_HOME, NEWSML_CONFIG) like `dagster dev`.
"""

from __future__ import annotations

import dagster as dg

from newsml_pipeline.defs.ingestion import build_ingestion_assets
from newsml_pipeline.defs.partitions import daily_partitions
from newsml_pipeline.defs.resources import MlflowResource, NewsmlSettings, WarehouseResource
from newsml_pipeline.settings import Settings


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    cfg = settings.config
    return {
        "newsml": NewsmlSettings.from_settings(settings),
        "warehouse": WarehouseResource(path=str(settings.warehouse_path)),
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
    assets = [*build_ingestion_assets(partitions)]
    return dg.Definitions(assets=assets, resources=build_resources(settings))


defs = build_definitions()
