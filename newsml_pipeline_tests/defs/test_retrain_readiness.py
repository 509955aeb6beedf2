"""A retrain that cannot get past dataset_splits is skipped with the reason, not started and failed.

The weekly schedule's and the drift sensor's ticks, through Dagster's own contexts, over a
warehouse where one class of the schema has no rows: each yields a SkipReason naming that class
and no RunRequest. With the class present, the same ticks request retrain_job (so the skip is the
readiness check's doing, not a tick that never requests anything).
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import polars as pl
import pytest

from newsml_pipeline.core.data.readiness import assess_splits, verdict_needs_label_issues
from newsml_pipeline.core.data.splits import SplitError
from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.definitions import build_definitions
from newsml_pipeline.defs.automation import RETRAIN_SKIPPED
from newsml_pipeline.defs.training import labeled_with_raw
from newsml_pipeline_tests.defs.split_rows import DAY, LABELS, READY_SETTINGS, write_articles
from newsml_pipeline_tests.defs.test_drift_sensor import _scored, _tick

MONDAY_3AM = datetime(2026, 11, 23, 3, tzinfo=UTC)
SETTINGS = {**READY_SETTINGS, "drift": {"delta": 0.002, "cooldown_hours": 24}}
_articles = write_articles


@pytest.mark.parametrize("short", [True, False], ids=["tech-missing", "every-class"])
def test_weekly_schedule_skips_naming_the_missing_class(make_settings, short: bool) -> None:
    settings = make_settings(**SETTINGS)
    _articles(Warehouse(settings.warehouse_path), LABELS[:-1] if short else LABELS)
    defs = build_definitions(settings)
    schedule = defs.resolve_schedule_def("weekly_retrain_schedule")
    ctx = dg.build_schedule_context(
        instance=dg.DagsterInstance.ephemeral(), scheduled_execution_time=MONDAY_3AM, resources=defs.resources
    )
    data = schedule.evaluate_tick(ctx)
    if short:
        assert not data.run_requests
        assert data.skip_message is not None and data.skip_message.startswith(RETRAIN_SKIPPED)
        assert "class 'tech' has 0 rows in train" in data.skip_message, data.skip_message
    else:
        assert len(data.run_requests) == 1 and data.skip_message is None
        assert data.run_requests[0].tags["newsml/trigger"] == "schedule"


@pytest.mark.parametrize("short", [True, False], ids=["tech-missing", "every-class"])
def test_drift_sensor_skips_a_retrain_whose_splits_cannot_be_built(make_settings, short: bool) -> None:
    settings = make_settings(**SETTINGS)
    wh = Warehouse(settings.warehouse_path)
    _articles(wh, LABELS[:-1] if short else LABELS)
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    t0 = datetime(2026, 11, 20, tzinfo=UTC)
    wh.replace_table("scored_articles", _scored(10_000, start=0, conf_mean=0.9, seed=1, t0=t0))
    first, _ = _tick(defs, instance, None)
    assert not first.run_requests
    wh.append("scored_articles", _scored(2_000, start=10_000, conf_mean=0.6, seed=2, t0=t0))
    result, _ = _tick(defs, instance, first.cursor)  # the shift: drift is detected
    if short:
        assert not result.run_requests
        message = result.skip_reason.skip_message
        assert message.startswith("drift detected (") and RETRAIN_SKIPPED in message
        assert "class 'tech' has 0 rows in train" in message, message
    else:
        assert len(result.run_requests) == 1


def test_dataset_splits_runs_the_same_assessment(make_settings) -> None:
    """What the ticks skip for is what dataset_splits would raise: the same SplitError text."""
    settings = make_settings(**SETTINGS)
    wh = Warehouse(settings.warehouse_path)
    _articles(wh, LABELS[:-1])
    assessed = assess_splits(labeled_with_raw(wh), config=settings.config, today=DAY)
    assert not assessed.ready and isinstance(assessed.error, SplitError)
    result = (
        build_definitions(settings)
        .resolve_job_def("retrain_job")
        .execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    )
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == ["dataset_splits"]
    error = failures[0].event_specific_data.error
    while error.cause is not None:
        error = error.cause
    assert error.cls_name == "SplitError" and error.message.strip().endswith(str(assessed.error).strip()), (
        error.message
    )
    assert "class 'tech' has 0 rows in train" in assessed.reason


@pytest.mark.parametrize("tech_rows", [40, 6], ids=["ready", "tech-short"])
def test_the_ticks_fast_verdict_is_the_full_one(make_settings, tech_rows: int) -> None:
    """A tick skips the label-issue cross-fitting only where it cannot change the verdict."""
    settings = make_settings(**{**SETTINGS, "splits": {"window_days": None, "drop_label_issues": True}})
    wh = Warehouse(settings.warehouse_path)
    _articles(wh, LABELS)
    frame = labeled_with_raw(wh)
    # a third of the auto-labels wrong (the label-issue pass has rows to drop), tech cut short
    wrong = {
        a: LABELS[(LABELS.index(a.split("-")[0]) + 1) % 5]
        for a in frame["article_id"]
        if int(a[-3:]) % 3 == 0
    }
    frame = frame.with_columns(
        pl.Series(
            "auto_label",
            [wrong.get(a, lab) for a, lab in zip(frame["article_id"], frame["auto_label"], strict=True)],
        )
    ).filter(
        ~pl.col("article_id").str.starts_with("tech-")
        | (pl.col("article_id").str.slice(-3).cast(pl.Int32) < tech_rows)
    )
    full = assess_splits(frame, config=settings.config, today=DAY)
    fast = assess_splits(frame, config=settings.config, today=DAY, verdict_only=True)
    assert (fast.ready, fast.missing) == (full.ready, full.missing)
    assert full.ready is (tech_rows == 40)
    if full.ready:
        assert full.report["dropped"]["label_issue"] > 0 and fast.report["dropped"]["label_issue"] == 0
    # a class minimum stricter than the pass's floor could see the drop: then the tick runs it too
    strict = settings.config.model_copy(
        update={"quality": settings.config.quality.model_copy(update={"min_class_count": 30})}
    )
    assert verdict_needs_label_issues(strict)
    strict_fast = assess_splits(frame, config=strict, today=DAY, verdict_only=True)
    if strict_fast.report is not None:
        assert strict_fast.report["dropped"]["label_issue"] > 0
