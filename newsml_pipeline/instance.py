"""Which Dagster instance `newsml run` and `newsml demo` record their runs in, and what it allows.

One rule for both commands: DAGSTER_HOME when set, else the folder of ./dagster.yaml (the repo
root), else `$NEWSML_HOME/dagster`, a persistent instance written here on first use with the same
run queue, pools and loggers as the repo's dagster.yaml (a test keeps the two equal), so
`dagster dev` opened on it enforces the same limits (one retrain at a time).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

# Kept equal to the repo's dagster.yaml by newsml_pipeline_tests/defs/test_instance_home.py.
RUN_QUEUE: dict[str, Any] = {
    "runs": {
        "max_concurrent_runs": 3,
        "tag_concurrency_limits": [{"key": "newsml/job", "value": "retrain", "limit": 1}],
    },
    "pools": {"default_limit": 1},
}
PYTHON_LOGS: dict[str, Any] = {"managed_python_loggers": ["newsml_pipeline"], "python_log_level": "INFO"}

# A run in one of these states holds (or is about to hold) the retrain slot.
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def write_instance_yaml(dagster_home: str | Path) -> Path:
    """Write a dagster.yaml for an instance of its own (storage under `dagster_home`)."""
    home = Path(dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    doc = {"concurrency": RUN_QUEUE, "python_logs": PYTHON_LOGS, "telemetry": {"enabled": False}}
    path.write_text(
        "# Written by newsml (newsml_pipeline/instance.py): the repo dagster.yaml's run queue,\n"
        "# pools and loggers; storage is SQLite under this folder.\n" + yaml.safe_dump(doc, sort_keys=False)
    )
    return path


def resolve_dagster_home(newsml_home: Path) -> Path:
    """DAGSTER_HOME, else ./dagster.yaml's folder, else `newsml_home/dagster` (created if absent)."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"]).resolve()
    if Path("dagster.yaml").is_file():
        return Path.cwd().resolve()
    dagster_home = (newsml_home / "dagster").resolve()
    if not (dagster_home / "dagster.yaml").exists():
        write_instance_yaml(dagster_home)
    return dagster_home


def open_instance(newsml_home: Path) -> dg.DagsterInstance:
    """The persistent instance of `resolve_dagster_home`; sets DAGSTER_HOME for step processes."""
    dagster_home = resolve_dagster_home(newsml_home)
    dagster_home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dg.DagsterInstance.get()


def retrains_in_progress(instance: dg.DagsterInstance) -> list[str]:
    """Run ids of retrain_job runs queued or running in `instance` (tagged newsml/job=retrain)."""
    from newsml_pipeline.defs.automation import RETRAIN_TAGS  # what every retrain_job run carries

    records = instance.get_run_records(filters=dg.RunsFilter(tags=RETRAIN_TAGS, statuses=IN_PROGRESS))
    return [r.dagster_run.run_id for r in records]
