"""The UI's deployed_model follows the registry when the alias moves outside a Dagster run:
`newsml rollback` records itself in the instance's event log, and `champion_alias_sensor` records a
promotion made in the MLflow registry (what the MLflow UI's alias editor calls)."""

from __future__ import annotations

import io
from pathlib import Path

import dagster as dg
import pytest
from mlflow import MlflowClient

from newsml_pipeline.cli import main
from newsml_pipeline.core.registry.aliases import set_champion
from newsml_pipeline.core.registry.tracking import store_client
from newsml_pipeline.defs.champion import DEPLOYED_MODEL, champion_alias_sensor, last_recorded_version
from newsml_pipeline.defs.resources import MlflowResource
from newsml_pipeline.settings import DEFAULT_REGISTERED_MODEL

NAME = DEFAULT_REGISTERED_MODEL


@pytest.fixture
def registry(newsml_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Three registered versions, v2 the champion and v1 previous; a DAGSTER_HOME of the test's own."""
    uri = f"sqlite:///{newsml_home / 'mlflow.db'}"  # Settings' default store under NEWSML_HOME
    client = store_client(uri)
    client.create_registered_model(NAME)
    versions = [
        str(client.create_model_version(NAME, source=f"file:///nowhere/{i}").version) for i in range(3)
    ]
    set_champion(client, NAME, versions[0], reason="first")
    set_champion(client, NAME, versions[1], reason="gate passed")
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    return {"client": client, "uri": uri, "versions": versions, "dagster_home": str(dagster_home)}


def _mlflow(registry: dict, newsml_home: Path) -> MlflowResource:
    return MlflowResource(
        tracking_uri=registry["uri"],
        artifact_root=str(newsml_home / "mlruns"),
        experiment="newsml",
        registered_model=NAME,
    )


def test_rollback_is_recorded_in_the_instance(registry: dict) -> None:
    v1, v2, _ = registry["versions"]
    out = io.StringIO()
    assert main(["rollback", "--reason", "bad answers", "--by", "alice"], out=out) == 0
    assert "recorded in the Dagster instance" in out.getvalue()
    with dg.DagsterInstance.from_config(registry["dagster_home"]) as instance:
        event = instance.get_latest_materialization_event(DEPLOYED_MODEL)
        assert event is not None and event.run_id == ""  # runless: reported, not run
        meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}
        assert meta["champion_version"] == v1 and meta["previous_version"] == v2
        assert meta["action"] == "rollback" and meta["reason"] == "bad answers"
        assert "alice" in meta["deployed_by"]
        assert last_recorded_version(instance) == v1


def test_sensor_records_an_alias_moved_outside_dagster(registry: dict, newsml_home: Path) -> None:
    client: MlflowClient = registry["client"]
    v1, v2, v3 = registry["versions"]
    mlflow = _mlflow(registry, newsml_home)
    with dg.DagsterInstance.from_config(registry["dagster_home"]) as instance:
        # first tick: the instance knows no champion yet, the registry says v2
        result = champion_alias_sensor(
            dg.build_sensor_context(instance=instance, resources={"mlflow": mlflow})
        )
        [event] = result.asset_events
        assert event.asset_key == DEPLOYED_MODEL and event.metadata["champion_version"].value == v2
        instance.report_runless_asset_event(event)  # what the sensor daemon does with it
        # nothing moved: nothing recorded
        result = champion_alias_sensor(
            dg.build_sensor_context(instance=instance, resources={"mlflow": mlflow})
        )
        assert not result.asset_events and "as the registry" in result.skip_reason.skip_message
        # someone promotes v3 in the MLflow UI (it sets the alias and nothing else)
        client.set_registered_model_alias(NAME, "champion", v3)
        result = champion_alias_sensor(
            dg.build_sensor_context(instance=instance, resources={"mlflow": mlflow})
        )
        [event] = result.asset_events
        meta = {k: v.value for k, v in event.metadata.items()}
        assert meta["champion_version"] == v3 and meta["previous_version"] == v2
        assert "outside Dagster" in meta["reason"]
        instance.report_runless_asset_event(event)
        assert last_recorded_version(instance) == v3
