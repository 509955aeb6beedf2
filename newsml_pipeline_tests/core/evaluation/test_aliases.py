"""Champion/previous aliases and rollback on a real (sqlite) MLflow registry, plus the deployment row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from newsml_pipeline.core.registry.aliases import (
    RollbackError,
    get_champion,
    get_previous,
    rollback,
    set_champion,
)
from newsml_pipeline.core.registry.deployments import DEPLOYMENTS, deployment_record


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> MlflowClient:
    root = tmp_path_factory.mktemp("mlflow")
    return MlflowClient(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}", registry_uri=f"sqlite:///{root / 'mlflow.db'}"
    )


def _model_with_versions(client: MlflowClient, name: str, n: int, tmp: Path) -> list[str]:
    client.create_registered_model(name)
    return [client.create_model_version(name, source=str(tmp / f"v{i}")).version for i in range(n)]


def test_no_champion_before_first_deploy(client: MlflowClient) -> None:
    assert get_champion(client, "never-registered") is None
    client.create_registered_model("empty-model")
    assert get_champion(client, "empty-model") is None
    with pytest.raises(RollbackError, match="no 'champion'"):
        rollback(client, "empty-model")


def test_deploy_moves_champion_and_previous_then_rollback_restores(
    client: MlflowClient, tmp_path: Path
) -> None:
    v1, v2, v3 = _model_with_versions(client, "m-roll", 3, tmp_path)
    new, old = set_champion(client, "m-roll", v1, reason="first", metrics={"macro_f1": 0.9})
    assert new.version == v1 and old is None
    assert json.loads(new.tags["newsml.deploy_metrics"]) == {"macro_f1": 0.9}
    with pytest.raises(RollbackError, match="no 'previous'"):
        rollback(client, "m-roll")

    set_champion(client, "m-roll", v2, reason="better")
    new, old = set_champion(client, "m-roll", v3, reason="even better")
    assert (new.version, old.version) == (v3, v2)
    assert get_previous(client, "m-roll").version == v2

    restored, demoted = rollback(client, "m-roll")
    assert (restored.version, demoted.version) == (v2, v3)
    assert get_champion(client, "m-roll").version == v2
    assert get_previous(client, "m-roll").version == v1  # one step further back, not the bad v3
    restored, demoted = rollback(client, "m-roll")
    assert (restored.version, demoted.version) == (v1, v2)
    assert get_previous(client, "m-roll") is None


def test_redeploying_the_champion_keeps_previous(client: MlflowClient, tmp_path: Path) -> None:
    v1, v2 = _model_with_versions(client, "m-same", 2, tmp_path)
    set_champion(client, "m-same", v1, reason="a")
    set_champion(client, "m-same", v2, reason="b")
    new, old = set_champion(client, "m-same", v2, reason="retry")
    assert new.version == v2 and old is None
    assert get_previous(client, "m-same").version == v1


def test_deployment_record_row() -> None:
    row = deployment_record(
        action="deploy",
        registered_model="m",
        version=3,
        previous_version=2,
        reason="gate passed",
        metrics={"macro_f1": 0.97},
        deployed_by="dagster:abc",
    )
    assert row.schema == DEPLOYMENTS and row.height == 1
    r = row.row(0, named=True)
    assert (r["version"], r["previous_version"], r["deployed_by"]) == ("3", "2", "dagster:abc")
    assert json.loads(r["metrics"]) == {"macro_f1": 0.97}
    with pytest.raises(ValueError, match="reason"):
        deployment_record(action="deploy", registered_model="m", version=1, previous_version=None, reason=" ")
