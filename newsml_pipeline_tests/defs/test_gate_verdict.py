"""A blocked gate is a verdict, not an incident, on the path the daemon uses.

retrain_job runs through Dagster's multiprocess executor (every step in its own process, as
the daemon and the UI launch it) over splits that can be built, with a gate no candidate can
pass. The run succeeds; evaluation_gate is reported failed with its reasons; deployed_model is
not materialized and the champion alias does not exist; and run_failure_alert_sensor, ticked
over the same instance before and after, posts nothing. A run that does fail in the same
instance is then posted, so the silence is the verdict's, not a deaf sensor's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.registry.tracking import store_client
from newsml_pipeline.definitions import build_definitions
from newsml_pipeline.defs.clock import AS_OF_TAG
from newsml_pipeline.settings import Settings
from newsml_pipeline_tests.defs.conftest import write_config
from newsml_pipeline_tests.defs.split_rows import LABELS, READY_SETTINGS, write_articles
from newsml_pipeline_tests.defs.test_alerts import webhook  # noqa: F401 (fixture)
from testkit.tiny_models import make_tiny_classifier_dir


def retrain_job() -> dg.JobDefinition:
    """retrain_job over NEWSML_HOME / NEWSML_CONFIG (reconstructable in the step processes)."""
    return build_definitions(Settings.from_env()).resolve_job_def("retrain_job")


@dg.op
def broken() -> None:
    raise RuntimeError("something really broke")


@dg.job
def broken_job() -> None:
    broken()


def _alert_tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> str | None:
    sensor = defs.resolve_sensor_def("run_failure_alert_sensor")
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources)
    return sensor.evaluate_tick(ctx).cursor


@pytest.mark.timeout(1200)
def test_a_blocked_gate_ends_a_successful_run_without_deploying_or_alerting(
    tmp_path: Path,
    newsml_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    webhook,  # noqa: F811
) -> None:
    url, bodies = webhook
    tiny = make_tiny_classifier_dir(tmp_path, LABELS)
    # gate: no candidate gains a whole point of macro-F1 over the baseline, so it always blocks
    cfg = write_config(
        tmp_path / "config.yaml",
        **{**READY_SETTINGS, "gate": {**READY_SETTINGS["gate"], "min_gain_over_baseline": 1.0}},
        training={"base_model": str(tiny), "epochs": 1, "batch_size": 32, "max_length": 32},
        alerts={"webhook_url": url},
        serving={"precision": "fp32"},  # a fixed torch precision: registration writes no ONNX files
    )
    monkeypatch.setenv("NEWSML_CONFIG", str(cfg))
    settings = Settings.from_env()
    write_articles(Warehouse(settings.warehouse_path), LABELS, per_class=30)
    defs = build_definitions(settings)
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        cursor = _alert_tick(defs, instance, None)  # the sensor's first tick starts watching
        as_of = datetime(2026, 11, 23, 3, tzinfo=UTC)
        with dg.execute_job(
            dg.reconstructable(retrain_job),
            instance,
            tags={AS_OF_TAG: as_of.isoformat()},
            raise_on_error=False,
        ) as result:
            kinds = {e.event_type_value for e in result.all_events}
            assert "STEP_WORKER_STARTED" in kinds  # each step ran in its own process
            failures = [str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure]
            assert result.success and not failures, failures
            gate = next(
                e.event_specific_data
                for e in result.all_events
                if e.event_type_value == "ASSET_CHECK_EVALUATION"
                and e.event_specific_data.check_name == "evaluation_gate"
            )
            assert not gate.passed and "blocked" in gate.description
            assert gate.metadata["verdict"].value == "blocked: not deployed"
            assert result.asset_materializations_for_node("model_evaluation")
            assert not result.asset_materializations_for_node("deployed_model")
            observed = [
                e.event_specific_data.asset_observation
                for e in result.all_events
                if e.event_type_value == "ASSET_OBSERVATION"
            ]
            assert [o.asset_key.to_user_string() for o in observed] == ["deployed_model"]
            assert observed[0].metadata["verdict"].value == "blocked: not deployed"
        assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS
        client = store_client(settings.mlflow_tracking_uri())
        name = settings.config.mlflow.registered_model
        assert [str(v.version) for v in client.search_model_versions(f"name='{name}'")] == ["1"]
        assert not client.get_registered_model(name).aliases  # no champion was made
        stored = {p.name for p in newsml_home.rglob("*") if p.is_file()}
        assert "label_map.json" in stored and "model.onnx" not in stored  # fp32 serving: no export paid for

        cursor = _alert_tick(defs, instance, cursor)
        assert bodies == []  # no failure alert for a verdict

        broken_job.execute_in_process(instance=instance, raise_on_error=False)
        _alert_tick(defs, instance, cursor)
        assert [b["json"]["job"] for b in bodies] == ["broken_job"]  # a real failure is posted
