"""bench/demo_seeds.py reads each seed's row from the demo's own report, and counts the targets."""

from __future__ import annotations

import pytest

from newsml_pipeline_tests.bench.bench_import import bench_module


@pytest.fixture
def demo_seeds():  # noqa: ANN201
    with bench_module("demo_seeds") as module:
        yield module


def _retrain(as_of: str, trigger: str, verdict: str) -> dict:
    return {
        "as_of": as_of,
        "trigger": trigger,
        "verdict": verdict,
        "candidate_macro_f1": 0.8,
        "baseline_macro_f1": 0.7,
    }


def _report(retrains: list[dict], delay: float | None) -> dict:
    change = "2026-10-07T00:00:00+00:00"
    events = [] if delay is None else [{"sim_time": "2026-10-08T00:00:00+00:00", "signal": "no_fit"}]
    return {
        "retrains": retrains,
        "drift_change_at": change,
        "drift_events": [{"sim_time": "2026-10-01T00:00:00+00:00", "signal": "early"}, *events],
        "drift_delay_hours": delay,
        "models_deployed": sum(r["verdict"] == "deployed" for r in retrains),
        "models_blocked": sum(r["verdict"] == "blocked" for r in retrains),
        "failed_runs": {},
        "retrains_skipped": [],
    }


def test_rows_take_the_first_scheduled_retrain_and_the_first_drift_after_the_change(demo_seeds) -> None:  # noqa: ANN001
    report = _report(
        [
            _retrain("2026-10-08T06:00:00+00:00", "drift", "deployed"),
            _retrain("2026-10-06T03:00:00+00:00", "schedule", "blocked"),
        ],
        delay=24.0,
    )
    row = demo_seeds.row_of(3, 0, 100.0, report)
    assert row["first_retrain_verdict"] == "blocked"  # the schedule's, not the drift's deployment
    assert row["drift_signal"] == "no_fit" and row["drift_within_target"] is True
    late = demo_seeds.row_of(
        4, 0, 100.0, _report([_retrain("2026-10-06T03:00:00+00:00", "schedule", "deployed")], 48.0)
    )
    never = demo_seeds.row_of(5, 1, 10.0, None)
    assert late["drift_within_target"] is False and "error" in never
    s = demo_seeds.summary([row, late, never])
    assert s == {"seeds": 3, "exit_0": 2, "first_retrain_deployed": 1, "drift_within_30h": 1}
