"""The Dagster instance `newsml run` / `newsml demo` use, and the run limits it carries.

README: "The runs go into the same Dagster instance `newsml run` uses (`DAGSTER_HOME`, else this
repo's `dagster.yaml` when run from the repo root, else `$NEWSML_HOME/dagster`)", "a run queue
of 3" and "Retrains never overlap".
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.instance.ref import InstanceRef

from newsml_pipeline import cli
from newsml_pipeline.instance import RUN_QUEUE, retrains_in_progress, write_instance_yaml
from newsml_pipeline.runner import RetrainInProgress, run_pipeline
from newsml_pipeline_tests.conftest import REPO_ROOT


def _repo_dagster_yaml() -> dict:
    return yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())


def test_readme_run_queue_size_is_dagster_yamls() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    limit = _repo_dagster_yaml()["concurrency"]["runs"]["max_concurrent_runs"]
    queue = re.findall(r"a run queue of (\d+)", readme)
    at_most = re.findall(r"`concurrency\.runs`\):\s+at most (\d+) at once", readme)
    assert queue and at_most, "the README no longer states the run queue's size"
    assert {int(n) for n in queue + at_most} == {limit}


def test_an_instance_written_for_a_home_has_the_repo_queue_pools_and_loggers(tmp_path: Path) -> None:
    path = write_instance_yaml(tmp_path / "dagster")
    mine, repo = yaml.safe_load(path.read_text()), _repo_dagster_yaml()
    for key in ("concurrency", "python_logs", "telemetry"):
        assert mine[key] == repo[key], key
    assert mine["concurrency"] == RUN_QUEUE
    # Dagster accepts it and reads the limits from it (what `dagster dev` on this folder enforces).
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / "dagster"))) as instance:
        settings = instance.get_concurrency_config().run_queue_config
        assert settings.max_concurrent_runs == 3
        assert [(r["key"], r["value"], r["limit"]) for r in settings.tag_concurrency_limits] == [
            ("newsml/job", "retrain", 1)
        ]


def _inbox_settings(make_settings, tmp_path: Path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    row = {"title": "Cup win", "text": "The team won the cup final. " * 30, "published": "2026-11-20"}
    (inbox / "a.jsonl").write_text(json.dumps(row))
    return make_settings(sources=[{"name": "inbox", "kind": "local", "path": str(inbox)}])


@pytest.fixture
def no_dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No DAGSTER_HOME and a working directory without dagster.yaml (restored after the test)."""
    monkeypatch.setenv("DAGSTER_HOME", "unset-by-the-test")
    monkeypatch.delenv("DAGSTER_HOME")
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    monkeypatch.chdir(workdir)


def test_without_dagster_home_the_run_is_kept_under_newsml_home(
    make_settings, tmp_path: Path, no_dagster_home: None
) -> None:
    settings = _inbox_settings(make_settings, tmp_path)
    assert run_pipeline(day="2026-11-20", settings=settings, out=io.StringIO())
    dagster_home = settings.home / "dagster"
    assert (dagster_home / "dagster.yaml").is_file()
    # A new instance opened on that folder afterwards (as `dagster dev` would) sees the run.
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
        runs = instance.get_runs()
        assert [r.job_name for r in runs] == ["ingest_job"]
        assert runs[0].status == dg.DagsterRunStatus.SUCCESS
        assert runs[0].tags.get("dagster/partition") == "2026-11-20"


def _add_running_retrain(instance: dg.DagsterInstance) -> str:
    run = dg.DagsterRun(
        job_name="retrain_job", status=dg.DagsterRunStatus.STARTED, tags={"newsml/job": "retrain"}
    )
    instance.add_run(run)
    return run.run_id


def test_newsml_run_retrain_refuses_while_a_retrain_runs(
    make_settings, tmp_path: Path, no_dagster_home: None, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _inbox_settings(make_settings, tmp_path)
    write_instance_yaml(settings.home / "dagster")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(settings.home / "dagster"))) as instance:
        running = _add_running_retrain(instance)
        assert retrains_in_progress(instance) == [running]
    with pytest.raises(RetrainInProgress, match=f"already queued or running.*{running}"):
        run_pipeline(day="2026-11-20", retrain=True, settings=settings, out=io.StringIO())
    # Through the CLI: a clear error and exit code 2, nothing run.
    assert cli.main(["run", "--date", "2026-11-20", "--retrain"], out=io.StringIO()) == cli.EXIT_USAGE
    assert "retrains never overlap" in capsys.readouterr().err
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(settings.home / "dagster"))) as instance:
        assert [r.run_id for r in instance.get_runs()] == [running]
        # Once it has finished, a retrain may start (the check looks at runs in progress only).
        instance.report_run_failed(instance.get_run_by_id(running))
        assert retrains_in_progress(instance) == []


def test_the_demo_instance_carries_the_run_queue(tmp_path: Path, no_dagster_home: None) -> None:
    """`newsml demo` tells users to open `dagster dev` on its instance: retrains queued there from
    the UI must not overlap either."""
    from newsml_pipeline.newsroom.demo import dagster_home_for

    dagster_home = dagster_home_for(tmp_path / "demo-home")
    assert dagster_home == (tmp_path / "demo-home" / "dagster").resolve()
    written = yaml.safe_load((dagster_home / "dagster.yaml").read_text())
    assert written["concurrency"] == _repo_dagster_yaml()["concurrency"]
