"""Retrains never overlap: the repo's dagster.yaml, through the instance's real run queue.

The instance is built from a copy of the repo's dagster.yaml whose storage paths point into
tmp_path; runs of the project's real jobs are created the way the UI / scheduler create them
(job snapshot + the job's own tags) and submitted with `instance.submit_run`, so they land
QUEUED; dagster's own `QueuedRunCoordinatorDaemon.run_iteration` then decides what to dequeue.
The only other change to the config is a recording run launcher (dagster's MockedRunLauncher):
what is under test is which runs the queue lets go, not executing them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.instance.ref import InstanceRef
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.remote_representation.external import RemoteJob
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

from newsml_pipeline_tests.conftest import REPO_ROOT

LOCATION = "newsml_pipeline"


def instance_config(tmp_path: Path, *, drop_retrain_limit: bool = False) -> dict:
    """The repo's dagster.yaml with its storage paths moved into tmp_path (nothing else changed)."""
    cfg = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    cfg["storage"]["sqlite"]["base_dir"] = str(tmp_path / "storage")
    cfg["local_artifact_storage"]["config"]["base_dir"] = str(tmp_path)
    cfg["compute_logs"]["config"]["base_dir"] = str(tmp_path / "compute_logs")
    if drop_retrain_limit:
        cfg["concurrency"]["runs"].pop("tag_concurrency_limits")
    # Record launches instead of executing them (see the module docstring).
    cfg["run_launcher"] = {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"}
    return cfg


@contextmanager
def queue_instance(tmp_path: Path, **kw) -> Iterator[tuple[DagsterInstance, WorkspaceProcessContext]]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_config(tmp_path, **kw)))
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        origin = InProcessCodeLocationOrigin(
            LoadableTargetOrigin(module_name="newsml_pipeline.definitions", working_directory=str(REPO_ROOT)),
            location_name=LOCATION,
        )
        with create_test_daemon_workspace_context(InProcessWorkspaceLoadTarget(origin), instance) as ctx:
            yield instance, ctx


def remote_job(ctx: WorkspaceProcessContext, name: str) -> RemoteJob:
    location = ctx.create_request_context().get_code_location(LOCATION)
    (repo,) = location.get_repositories().values()
    return repo.get_full_job(name)


def submit(ctx: WorkspaceProcessContext, job: RemoteJob, tags: dict[str, str] | None = None) -> str:
    """Create a run as the launch paths do (the job's tags merged with the request's) and queue it."""
    instance = ctx.instance
    run = instance.create_run(
        job_name=job.name,
        run_id=None,
        run_config={},
        resolved_op_selection=None,
        step_keys_to_execute=None,
        status=DagsterRunStatus.NOT_STARTED,
        op_selection=None,
        root_run_id=None,
        parent_run_id=None,
        tags={**job.tags, **(tags or {})},
        job_snapshot=job.job_snapshot,
        execution_plan_snapshot=None,
        parent_job_snapshot=job.parent_job_snapshot,
        remote_job_origin=job.get_remote_origin(),
        job_code_origin=job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=ctx.create_request_context().asset_graph,
    )
    instance.submit_run(run.run_id, ctx.create_request_context())
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.QUEUED
    return run.run_id


def dequeue(ctx: WorkspaceProcessContext) -> None:
    """One iteration of the queue daemon `dagster dev` / `dagster-daemon run` runs."""
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    with daemon:
        list(daemon.run_iteration(ctx))


def status(instance: DagsterInstance, run_id: str) -> DagsterRunStatus:
    return instance.get_run_by_id(run_id).status


@pytest.mark.usefixtures("newsml_home")
def test_second_retrain_waits_while_ingestion_goes_ahead(tmp_path: Path) -> None:
    with queue_instance(tmp_path) as (instance, ctx):
        retrain, ingest = remote_job(ctx, "retrain_job"), remote_job(ctx, "ingest_job")
        assert retrain.tags["newsml/job"] == "retrain"
        weekly = submit(ctx, retrain, {"newsml/trigger": "schedule"})
        dequeue(ctx)
        assert status(instance, weekly) == DagsterRunStatus.STARTING  # the first retrain is in progress

        drift = submit(ctx, retrain, {"newsml/trigger": "drift"})
        days = [submit(ctx, ingest, {"dagster/partition": d}) for d in ("2026-11-29", "2026-11-30")]
        dequeue(ctx)
        assert status(instance, drift) == DagsterRunStatus.QUEUED
        # the queue works: two ingestion days start next to the running retrain
        assert [status(instance, r) for r in days] == [DagsterRunStatus.STARTING] * 2
        dequeue(ctx)
        assert status(instance, drift) == DagsterRunStatus.QUEUED  # still waiting, not dropped

        instance.report_run_failed(instance.get_run_by_id(weekly))
        for day in days:  # the days end too, so only the retrain limit could hold the drift run
            instance.report_run_canceled(instance.get_run_by_id(day))
        dequeue(ctx)
        assert status(instance, drift) == DagsterRunStatus.STARTING
        assert instance.run_launcher.did_run_launch(drift)


@pytest.mark.usefixtures("newsml_home")
def test_without_the_limit_two_retrains_would_overlap(tmp_path: Path) -> None:
    """The guard above is the dagster.yaml limit: removing it lets both retrains start."""
    with queue_instance(tmp_path, drop_retrain_limit=True) as (instance, ctx):
        retrain = remote_job(ctx, "retrain_job")
        first = submit(ctx, retrain)
        dequeue(ctx)
        second = submit(ctx, retrain)
        dequeue(ctx)
        assert [status(instance, r) for r in (first, second)] == [DagsterRunStatus.STARTING] * 2
