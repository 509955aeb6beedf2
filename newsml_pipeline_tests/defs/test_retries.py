"""Transient faults retry, verdicts do not: the project's RetryPolicy and classifier under the
multiprocess executor (each step its own process, as `dagster dev`, the daemon and the CLI run it).

The assets here are test-only, but they carry the real `TRANSIENT_RETRY` policy and the real
`retry_transient_only` wrapper that the project's assets carry, so what is tested is that pair.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import dagster as dg
import pytest
import requests
from dagster._core.events import RunFailureReason
from dagster._core.execution.retries import auto_reexecution_should_retry_run
from dagster._core.storage.dagster_run import DagsterRunStatus
from mlflow.exceptions import MlflowException
from mlflow.protos import databricks_pb2 as codes

from newsml_pipeline.core.data.article_store import StoreError
from newsml_pipeline.core.faults import is_transient
from newsml_pipeline.defs.retries import TRANSIENT_RETRY, TransientFailure, retry_transient_only
from newsml_pipeline.settings import ConfigError, load_config
from newsml_pipeline_tests.deploy.manifests import K8S, PG_ENV, REPO, load_instance

STATE_ENV = "NEWSML_TEST_RETRY_DIR"


def _attempt(name: str) -> int:
    """Record one attempt of `name` in the test's folder (shared by the step processes)."""
    log = Path(os.environ[STATE_ENV]) / f"{name}.attempts"
    with log.open("a") as fh:
        fh.write("x")
    return len(log.read_text())


@dg.asset(retry_policy=TRANSIENT_RETRY)
@retry_transient_only
def flaky_network() -> int:
    """A dropped connection on the first attempt, then the call goes through."""
    if _attempt("flaky_network") == 1:
        raise ConnectionResetError(104, "Connection reset by peer")
    return 1


@dg.asset(retry_policy=TRANSIENT_RETRY)
@retry_transient_only
def killed_once() -> int:
    """The step process is killed on the first attempt (an OOM kill, a preempted node)."""
    if _attempt("killed_once") == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return 2


@dg.asset(retry_policy=TRANSIENT_RETRY)
@retry_transient_only
def misconfigured() -> int:
    """Loads a config with a typo through the project's loader: the same error every time."""
    _attempt("misconfigured")
    path = Path(os.environ[STATE_ENV]) / "bad.yaml"
    path.write_text("crawl: {concurrency: many}\n")
    load_config(path)
    return 3


@dg.asset(retry_policy=TRANSIENT_RETRY)
@retry_transient_only
def refuses() -> int:
    """Raises the project's kind of verdict Failure (retrain_job on an empty warehouse)."""
    _attempt("refuses")
    raise dg.Failure(description="dataset_splits: nothing to split yet")


@dg.asset(retry_policy=TRANSIENT_RETRY)
@retry_transient_only
def unreachable_once() -> int:
    """Every source unreachable on the first attempt (the crawl's TransientFailure), then back."""
    if _attempt("unreachable_once") == 1:
        raise TransientFailure(description="every source failed")
    return 4


def transient_job() -> dg.JobDefinition:
    defs = dg.Definitions(
        assets=[flaky_network, killed_once, unreachable_once],
        jobs=[
            dg.define_asset_job("transient", selection=["flaky_network", "killed_once", "unreachable_once"])
        ],
    )
    return defs.resolve_job_def("transient")


def config_error_job() -> dg.JobDefinition:
    defs = dg.Definitions(
        assets=[misconfigured], jobs=[dg.define_asset_job("bad_config", selection=["misconfigured"])]
    )
    return defs.resolve_job_def("bad_config")


def failure_job() -> dg.JobDefinition:
    defs = dg.Definitions(assets=[refuses], jobs=[dg.define_asset_job("refusal", selection=["refuses"])])
    return defs.resolve_job_def("refusal")


def _run(job_fn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(STATE_ENV, str(tmp_path))
    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        # execute_job of a reconstructable job: the multiprocess executor, a process per step
        with dg.execute_job(dg.reconstructable(job_fn), instance=instance) as result:
            events = [e.event_type for e in result.all_events]
            return result.success, events, result


def test_transient_fault_and_killed_step_retry_then_succeed(tmp_path: Path, monkeypatch) -> None:
    success, events, _ = _run(transient_job, tmp_path, monkeypatch)
    assert success
    # one retry per step: the reset connection, the killed process, the unreachable sources
    assert events.count(dg.DagsterEventType.STEP_UP_FOR_RETRY) == 3
    assert events.count(dg.DagsterEventType.STEP_SUCCESS) == 3
    assert (tmp_path / "unreachable_once.attempts").read_text() == "xx"
    assert (tmp_path / "flaky_network.attempts").read_text() == "xx"
    assert (tmp_path / "killed_once.attempts").read_text() == "xx"


def test_config_error_is_not_retried(tmp_path: Path, monkeypatch) -> None:
    success, events, result = _run(config_error_job, tmp_path, monkeypatch)
    assert not success
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in events
    assert (tmp_path / "misconfigured.attempts").read_text() == "x"
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "ConfigError" in failure.step_failure_data.error.message
    assert "not retried" in failure.step_failure_data.error.message


def test_a_failure_the_body_raises_is_not_retried(tmp_path: Path, monkeypatch) -> None:
    """dg.Failure is retryable by default: unwrapped, the RetryPolicy ran it 4 times over ~2 min."""
    success, events, result = _run(failure_job, tmp_path, monkeypatch)
    assert not success
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in events
    assert (tmp_path / "refuses.attempts").read_text() == "x"
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "nothing to split yet" in failure.step_failure_data.error.message


def test_the_first_delay_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from newsml_pipeline.defs import retries

    monkeypatch.delenv(retries.RETRY_DELAY_ENV, raising=False)
    assert retries._first_delay() == 10.0  # the shipped default
    monkeypatch.setenv(retries.RETRY_DELAY_ENV, "2.5")
    assert retries._first_delay() == 2.5
    for bad in ("soon", "-1"):
        monkeypatch.setenv(retries.RETRY_DELAY_ENV, bad)
        with pytest.raises(ValueError, match=retries.RETRY_DELAY_ENV):
            retries._first_delay()


def test_transient_classification() -> None:
    assert is_transient(TimeoutError("read timed out"))
    # MLflow's REST client re-raises requests' errors as MlflowException inside an except block
    try:
        try:
            raise requests.exceptions.ConnectionError("Max retries exceeded")
        except requests.exceptions.ConnectionError as e:
            raise MlflowException(f"API request failed with exception {e}") from None
    except MlflowException as wrapped:
        assert is_transient(wrapped)
    assert is_transient(MlflowException("busy", error_code=codes.TEMPORARILY_UNAVAILABLE))
    import psycopg

    assert is_transient(psycopg.OperationalError("server closed the connection unexpectedly"))
    # verdicts and mistakes fail the same way every time
    assert not is_transient(ConfigError("config file not found: x.yaml"))
    assert not is_transient(StoreError("refusing to write: 3 stored article(s) would be removed"))
    assert not is_transient(MlflowException("no such model", error_code=codes.RESOURCE_DOES_NOT_EXIST))
    assert not is_transient(ValueError("dataset_splits is empty"))


@pytest.mark.parametrize(
    "path",
    [REPO / "dagster.yaml", REPO / "deploy" / "dagster.postgres.yaml", K8S / "dagster.k8s.yaml"],
    ids=lambda p: p.name,
)
def test_instances_retry_dead_runs_only(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shipped instance re-executes a run whose worker died, never one a step failed."""
    for k, v in PG_ENV.items():
        monkeypatch.setenv(k, v)
    load_instance(path)  # passes Dagster's schemas
    with dg.instance_for_test(overrides=_run_retries(path)) as instance:
        assert instance.run_retries_enabled and instance.run_retries_max_retries >= 1
        assert instance.run_retries_retry_on_asset_or_op_failure is False
        run = instance.create_run_for_job(dg.GraphDefinition("g").to_job(), status=DagsterRunStatus.FAILURE)
        assert not auto_reexecution_should_retry_run(instance, run, RunFailureReason.STEP_FAILURE)
        assert auto_reexecution_should_retry_run(instance, run, RunFailureReason.RUN_WORKER_RESTART)
        assert auto_reexecution_should_retry_run(instance, run, RunFailureReason.UNEXPECTED_TERMINATION)


def _run_retries(path: Path) -> dict:
    import yaml

    return {"run_retries": yaml.safe_load(path.read_text())["run_retries"]}
