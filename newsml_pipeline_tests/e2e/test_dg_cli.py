"""The `dg` CLI on this project as a user types it: pyproject.toml's [tool.dg] makes the repo root a
dg project, so `dg check defs`, `dg list defs` and `dg launch` load the same Definitions as
`dagster dev`. This file is in the default suite, so CI runs `dg check defs` on every change."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.defs.catalog import TABLE_COLUMNS
from newsml_pipeline.defs.labeling import LABEL_CHECKS
from newsml_pipeline_tests.dagster_cli import run_dg
from newsml_pipeline_tests.defs.conftest import write_config

DAY = "2026-11-18"


@pytest.fixture
def dg_env(tmp_path: Path, newsml_home: Path) -> dict[str, str]:
    """A user's shell: NEWSML_HOME/NEWSML_CONFIG of their own, a DAGSTER_HOME the run lands in."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    rows = [
        {
            "id": f"a{i}",
            "title": f"Story {i}",
            "text": f"Body of story {i}. " * 20,
            "published": f"{DAY}T0{i}:00:00+00:00",
        }
        for i in range(3)
    ]
    (inbox / "day.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = write_config(
        tmp_path / "config.yaml",
        sources=[{"name": "inbox", "kind": "local", "path": str(inbox)}],
        partitions={"start_date": "2026-11-01"},
    )
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        **os.environ,
        "NEWSML_HOME": str(newsml_home),
        "NEWSML_CONFIG": str(cfg),
        "DAGSTER_HOME": str(dagster_home),
        "HF_HUB_OFFLINE": "1",
    }


def test_dg_check_defs_passes(dg_env: dict[str, str]) -> None:
    done = run_dg("check", "defs", env=dg_env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "All definitions loaded successfully" in done.stdout + done.stderr


def test_dg_list_defs_lists_the_contract_names(dg_env: dict[str, str]) -> None:
    done = run_dg("list", "defs", "--json", env=dg_env)
    assert done.returncode == 0, done.stderr[-4000:]
    listed = json.loads(done.stdout)
    assets = {a["asset_key"] for a in listed["assets"]}
    assert {
        "raw_articles",
        "labeled_articles",
        "dataset_splits",
        "candidate_model",
        "model_evaluation",
        "deployed_model",
        "scored_articles",
    } <= assets
    assert {"ingest_job", "retrain_job"} <= {j["name"] for j in listed["jobs"]}
    assert {"daily_ingest_schedule", "weekly_retrain_schedule"} <= {s["name"] for s in listed["schedules"]}
    assert "drift_sensor" in {s["name"] for s in listed["sensors"]}


def test_dg_launch_materializes_a_partition(dg_env: dict[str, str], newsml_home: Path) -> None:
    """`dg launch --assets raw_articles,labeled_articles --partition DAY` runs the steps and records
    them in DAGSTER_HOME: the materializations and labeled_articles' checks on that day, and the
    tables have the columns the catalog's column schemas declare."""
    done = run_dg("launch", "--assets", "raw_articles,labeled_articles", "--partition", DAY, env=dg_env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    wh = Warehouse(newsml_home / "warehouse.duckdb")
    stored = wh.read("raw_articles")
    assert sorted(stored["article_id"].to_list()) == sorted(stored["article_id"].unique().to_list())
    assert len(stored) == 3
    for table in ("raw_articles", "labeled_articles", "crawled_articles"):
        assert wh.read(table).columns == list(TABLE_COLUMNS[table]), table
    with dg.DagsterInstance.from_config(dg_env["DAGSTER_HOME"]) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("raw_articles"))
        assert event is not None and event.asset_materialization.partition == DAY
        for name in LABEL_CHECKS:
            key = dg.AssetCheckKey(dg.AssetKey("labeled_articles"), name)
            [record] = instance.event_log_storage.get_asset_check_execution_history(key, limit=5)
            assert record.partition == DAY and record.status.value in ("SUCCEEDED", "FAILED"), name
