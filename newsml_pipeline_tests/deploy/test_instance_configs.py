"""deploy/'s Dagster instance configs load through Dagster's own config schemas, so a typo fails CI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dagster._core.errors import DagsterInvalidConfigError

from newsml_pipeline_tests.deploy.manifests import DEPLOY, K8S, PG_ENV, REPO, load_instance

POSTGRES_YAML = DEPLOY / "dagster.postgres.yaml"
K8S_YAML = K8S / "dagster.k8s.yaml"
INSTANCE_YAMLS = [POSTGRES_YAML, K8S_YAML]


@pytest.fixture
def pg_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for k, v in PG_ENV.items():
        monkeypatch.setenv(k, v)
    return PG_ENV


@pytest.mark.parametrize("path", INSTANCE_YAMLS, ids=lambda p: p.name)
def test_instance_config_passes_dagsters_schemas(path: Path, pg_env) -> None:
    ref, processed = load_instance(path)
    assert (ref.storage_data.module_name, ref.storage_data.class_name) == (
        "dagster_postgres",
        "DagsterPostgresStorage",
    )
    for name in ("run_storage_data", "event_storage_data", "schedule_storage_data"):
        assert getattr(ref, name).module_name == "dagster_postgres", name
    # The run queue: Dagster's QueuedRunCoordinator (the default), limits from `concurrency`.
    assert ref.run_coordinator_data.class_name == "QueuedRunCoordinator"
    assert processed["storage_data"]["postgres_db"]["password"] == pg_env["DAGSTER_PG_PASSWORD"]
    assert processed["storage_data"]["postgres_db"]["port"] == int(pg_env["DAGSTER_PG_PORT"])


def test_k8s_instance_launches_runs_as_kubernetes_jobs(pg_env) -> None:
    ref, processed = load_instance(K8S_YAML)
    assert (ref.run_launcher_data.module_name, ref.run_launcher_data.class_name) == (
        "dagster_k8s",
        "K8sRunLauncher",
    )
    launcher = processed["run_launcher_data"]
    assert launcher["env_config_maps"] == ["newsml-env"]
    assert launcher["postgres_password_secret"] == "newsml-postgres"
    # Step logs must outlive the pods: on the shared volume, not in a container's filesystem.
    mounts = [m["mount_path"] for m in launcher["volume_mounts"]]
    assert processed["compute_logs_data"]["base_dir"].startswith(tuple(mounts))


def test_postgres_url_comes_from_the_env_values(pg_env) -> None:
    from dagster_postgres.utils import pg_url_from_config

    _, processed = load_instance(POSTGRES_YAML)
    # The password is URL-quoted: a secret with '@' or a space still gives a working URL.
    assert pg_url_from_config(processed["storage_data"]) == (
        "postgresql+psycopg2://dagster:p%40ss%20word@db.example:6543/dagster"
    )


@pytest.mark.parametrize("path", INSTANCE_YAMLS, ids=lambda p: p.name)
def test_no_secret_is_written_in_the_file(path: Path, pg_env, monkeypatch: pytest.MonkeyPatch) -> None:
    db = yaml.safe_load(path.read_text())["storage"]["postgres"]["postgres_db"]
    # every value comes from the environment; only the driver name is written here
    assert db.pop("scheme") == "postgresql+psycopg2"
    assert all(isinstance(v, dict) and set(v) == {"env"} for v in db.values()), db
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    with pytest.raises(Exception, match="DAGSTER_PG_PASSWORD"):
        load_instance(path)


@pytest.mark.parametrize("path", INSTANCE_YAMLS, ids=lambda p: p.name)
def test_queue_pools_and_loggers_match_the_repo_dagster_yaml(path: Path) -> None:
    repo = yaml.safe_load((REPO / "dagster.yaml").read_text())
    mine = yaml.safe_load(path.read_text())
    for key in ("concurrency", "python_logs", "telemetry"):
        assert mine[key] == repo[key], key


def _misspell(doc: dict, path: tuple[str, ...], bad: str) -> dict:
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[bad] = node.pop(path[-1])
    return doc


TYPOS = [
    (POSTGRES_YAML, ("concurrency",), "concurency"),
    (POSTGRES_YAML, ("concurrency", "runs", "max_concurrent_runs"), "max_concurent_runs"),
    (POSTGRES_YAML, ("storage", "postgres", "postgres_db", "hostname"), "hostnme"),
    (POSTGRES_YAML, ("python_logs", "managed_python_loggers"), "managed_python_logers"),
    (K8S_YAML, ("run_launcher", "config", "job_namespace"), "job_namspace"),
    (K8S_YAML, ("run_launcher", "config", "volume_mounts"), "volumes_mounts"),
    (K8S_YAML, ("compute_logs", "config", "base_dir"), "basedir"),
    (K8S_YAML, ("run_monitoring", "start_timeout_seconds"), "start_timeout_secs"),
]


@pytest.mark.parametrize(("path", "key_path", "bad"), TYPOS, ids=lambda v: v if isinstance(v, str) else None)
def test_a_misspelled_key_is_rejected(path: Path, key_path, bad: str, pg_env, tmp_path: Path) -> None:
    doc = _misspell(yaml.safe_load(path.read_text()), key_path, bad)
    broken = tmp_path / "dagster.yaml"
    broken.write_text(yaml.safe_dump(doc))
    with pytest.raises(DagsterInvalidConfigError) as err:
        load_instance(broken)
    assert bad in str(err.value), str(err.value)
