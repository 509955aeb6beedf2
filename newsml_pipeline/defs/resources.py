"""Dagster resources: typed, configurable wrappers around core (settings, warehouse, MLflow).

Assets receive these instead of reading environment variables themselves, so a test or a
deployment swaps NEWSML_HOME / the config / the MLflow store in one place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.settings import NewsmlConfig, Settings


class NewsmlSettings(dg.ConfigurableResource):
    """Where state lives (NEWSML_HOME) and the validated YAML config (NEWSML_CONFIG)."""

    home: str
    config_file: str
    # The time the drift sensor's readiness check acts as (ISO, with a zone); None = now. Only the
    # simulated drivers (newsroom/driver.py) set it, as runs carry `newsml/as_of` (defs/clock.py).
    as_of: str | None = None

    _settings: Settings | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings) -> NewsmlSettings:
        return cls(home=str(settings.home), config_file=str(settings.config_file))

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings(home=Path(self.home), config_file=Path(self.config_file))
        return self._settings

    def now(self) -> datetime:
        """`as_of` when set, else the real clock (UTC)."""
        if self.as_of is None:
            return datetime.now(UTC)
        return datetime.fromisoformat(self.as_of).astimezone(UTC)

    @property
    def config(self) -> NewsmlConfig:
        return self.settings.config


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse holding one table per tabular asset: a DuckDB file path or a postgresql:// URL."""

    path: str

    def get(self) -> Warehouse:
        return Warehouse(self.path)


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking store + model registry used by training, evaluation and deployment."""

    tracking_uri: str
    artifact_root: str
    experiment: str
    registered_model: str
    # Base URL of the MLflow UI, used to link runs from Dagster metadata (e.g. `mlflow ui`).
    ui_url: str = "http://127.0.0.1:5000"

    def client(self):  # -> mlflow.MlflowClient (imported lazily: mlflow import is slow)
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        from newsml_pipeline.core.registry.tracking import store_client

        return store_client(self.tracking_uri)

    def run_url(self, run_id: str, experiment_id: str | None = None) -> str:
        exp = experiment_id or "0"
        return f"{self.ui_url}/#/experiments/{exp}/runs/{run_id}"

    def model_version_url(self, version: str | int) -> str:
        return f"{self.ui_url}/#/models/{self.registered_model}/versions/{version}"
