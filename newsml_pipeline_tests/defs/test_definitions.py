"""The Definitions object: contract names, lineage edges, jobs, schedules and `definitions validate`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from newsml_pipeline.definitions import build_definitions
from newsml_pipeline.defs.placement import GPU_ENV, deployment_has_gpus, model_step_pool

REPO = Path(__file__).resolve().parents[2]
MODEL_STEPS = ("labeled_articles", "scored_articles", "model_evaluation", "candidate_model")

EXPECTED_EDGES = {
    ("raw_articles", "label_feedback"),
    ("raw_articles", "labeled_articles"),
    ("label_feedback", "labeled_articles"),
    ("labeled_articles", "dataset_splits"),
    ("label_feedback", "dataset_splits"),
    ("dataset_splits", "candidate_model"),
    ("candidate_model", "model_evaluation"),
    ("dataset_splits", "model_evaluation"),
    ("model_evaluation", "deployed_model"),
    ("deployed_model", "scored_articles"),
    ("labeled_articles", "scored_articles"),
    ("raw_articles", "scored_articles"),
}


def test_asset_graph_has_the_contract_assets_and_edges(make_settings) -> None:
    defs = build_definitions(make_settings())
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {
        "raw_articles",
        "label_feedback",
        "labeled_articles",
        "dataset_splits",
        "candidate_model",
        "model_evaluation",
        "deployed_model",
        "scored_articles",
    } <= keys
    edges = {
        (p.to_user_string(), k.to_user_string())
        for k in graph.get_all_asset_keys()
        for p in graph.get(k).parent_keys
    }
    assert EXPECTED_EDGES <= edges, EXPECTED_EDGES - edges
    for name in ("raw_articles", "labeled_articles", "scored_articles"):
        assert graph.get(dg.AssetKey(name)).partitions_def is not None
    for name in ("dataset_splits", "candidate_model", "model_evaluation", "deployed_model"):
        assert graph.get(dg.AssetKey(name)).partitions_def is None
    gate = dg.AssetCheckKey(dg.AssetKey("model_evaluation"), "evaluation_gate")
    assert gate in graph.asset_check_keys
    from newsml_pipeline.defs.evaluation import evaluation_gate

    # A blocked gate is a verdict in a successful run: deployed_model applies the decision itself
    # (defs/evaluation.py), so the check does not fail the run.
    assert [spec.blocking for spec in evaluation_gate.check_specs] == [False]
    from newsml_pipeline.defs.deployment import deployed_model

    assert [out.is_required for out in deployed_model.op.output_defs] == [False]
    # Each step that may put a model on CUDA is in the pool this machine's placement gives it.
    for name in MODEL_STEPS:
        pool = model_step_pool(name)
        assert graph.get(dg.AssetKey(name)).pools == ({pool} if pool else set()), name


def test_jobs_schedules_and_sensor(make_settings) -> None:
    defs = build_definitions(make_settings())
    ingest = defs.resolve_job_def("ingest_job")
    retrain = defs.resolve_job_def("retrain_job")
    assert {k.to_user_string() for k in ingest.asset_layer.selected_asset_keys} == {
        "raw_articles",
        "labeled_articles",
        "scored_articles",
        "review_queue",
    }
    assert {"dataset_splits", "candidate_model", "model_evaluation", "deployed_model"} <= {
        k.to_user_string() for k in retrain.asset_layer.selected_asset_keys
    }
    weekly = defs.resolve_schedule_def("weekly_retrain_schedule")
    assert weekly.cron_schedule == "0 3 * * 1" and weekly.execution_timezone == "UTC"
    assert weekly.job_name == "retrain_job"
    daily = defs.resolve_schedule_def("daily_ingest_schedule")
    assert daily.job_name == "ingest_job"
    ctx = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 22, 0, 30, tzinfo=UTC), resources=defs.resources
    )
    reqs = daily(ctx)
    assert [r.partition_key for r in reqs] == ["2026-11-21"]  # the day that just ended
    hourly = defs.resolve_schedule_def("hourly_crawl_schedule")
    assert hourly.cron_schedule == "0 * * * *" and hourly.job_name == "crawl_job"
    crawl = defs.resolve_job_def("crawl_job")
    assert {k.to_user_string() for k in crawl.asset_layer.selected_asset_keys} == {"crawled_articles"}
    # the hourly crawl runs in its run's process (no step process per crawl); the model jobs keep
    # the default executor: a process per step (or a pod per step with NEWSML_EXECUTOR=k8s)
    assert crawl.executor_def.name == "in_process"
    assert defs.resolve_job_def("ingest_job").executor_def.name != "in_process"
    assert defs.resolve_job_def("retrain_job").executor_def.name != "in_process"
    sensor = defs.resolve_sensor_def("drift_sensor")
    assert sensor.job_name == "retrain_job"


def test_ingest_and_retrain_crons_come_from_the_config(make_settings) -> None:
    defs = build_definitions(
        make_settings(
            schedules={"ingest": "15 2 * * *", "retrain": "0 4 * * sun"}, crawl={"schedule": "*/20 * * * *"}
        )
    )
    assert defs.resolve_schedule_def("daily_ingest_schedule").cron_schedule == "15 2 * * *"
    assert defs.resolve_schedule_def("weekly_retrain_schedule").cron_schedule == "0 4 * * sun"
    assert defs.resolve_schedule_def("hourly_crawl_schedule").cron_schedule == "*/20 * * * *"


def test_gpu_placement_is_decided_without_torch() -> None:
    assert deployment_has_gpus({GPU_ENV: "yes"}, driver_visible=lambda: False)
    assert not deployment_has_gpus({GPU_ENV: " No "}, driver_visible=lambda: True)
    assert deployment_has_gpus({}, driver_visible=lambda: True)  # auto: an NVIDIA driver is visible
    assert not deployment_has_gpus({}, driver_visible=lambda: False)
    assert deployment_has_gpus({"NEWSML_EXECUTOR": "k8s"}, driver_visible=lambda: False)  # GPU nodes
    with pytest.raises(ValueError, match="auto, yes, no"):
        deployment_has_gpus({GPU_ENV: "cuda"})
    cpu = {GPU_ENV: "no"}
    assert [model_step_pool(s, cpu) for s in MODEL_STEPS] == [None, None, None, "training"]
    assert {model_step_pool(s, {GPU_ENV: "yes"}) for s in MODEL_STEPS} == {"gpu"}


_POOLS_SCRIPT = f"""
import json
import dagster as dg
from newsml_pipeline.definitions import defs
graph = defs.resolve_asset_graph()
print(json.dumps({{n: sorted(graph.get(dg.AssetKey(n)).pools) for n in {MODEL_STEPS!r}}}))
"""


def test_on_cpu_labelling_does_not_wait_behind_a_training(newsml_home: Path) -> None:
    """The definitions as `dagster dev` / the daemon load them on a CPU-only machine: a day's
    labelling and scoring share no pool with the training, so ingestion days go on during a
    retrain (with GPUs every model step shares the one-slot `gpu` pool: the test above)."""
    env = {**os.environ, "NEWSML_HOME": str(newsml_home), GPU_ENV: "no"}
    env.pop("NEWSML_EXECUTOR", None)
    out = subprocess.run(
        [sys.executable, "-c", _POOLS_SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    pools = json.loads(out.stdout.strip().splitlines()[-1])
    assert pools == {
        "labeled_articles": [],
        "scored_articles": [],
        "model_evaluation": [],
        "candidate_model": ["training"],
    }


def test_dagster_definitions_validate(newsml_home: Path) -> None:
    env = {**os.environ, "NEWSML_HOME": str(newsml_home)}
    env.pop("DAGSTER_HOME", None)
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "newsml_pipeline.definitions"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Validation successful" in out.stdout + out.stderr
