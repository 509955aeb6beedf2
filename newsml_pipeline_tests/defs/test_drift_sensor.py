"""drift_sensor through Dagster's own sensor context: stationary → skip, shift → retrain_job."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import numpy as np
import polars as pl

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.definitions import build_definitions
from newsml_pipeline_tests.defs.split_rows import LABELS, READY_SETTINGS, write_articles


def _scored(n: int, *, start: int, conf_mean: float, seed: int, t0: datetime) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    a = conf_mean * 20
    conf = rng.beta(a, 20 - a, size=n)
    return pl.DataFrame(
        {
            "article_id": [f"a{start + i:07d}" for i in range(n)],
            "partition_date": [date(2026, 11, 20)] * n,
            "model_version": ["3"] * n,
            "label": ["sport"] * n,
            "confidence": conf,
            "auto_label": ["sport"] * n,
            "scored_at": [t0 + timedelta(seconds=start + i) for i in range(n)],
        },
        schema_overrides={"scored_at": pl.Datetime("us", "UTC")},
    )


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    sensor = defs.resolve_sensor_def("drift_sensor")
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources)
    return sensor(ctx), ctx


def test_stationary_stream_skips_and_a_shift_requests_one_retrain(make_settings) -> None:
    settings = make_settings(**READY_SETTINGS, drift={"delta": 0.002, "cooldown_hours": 24})
    defs = build_definitions(settings)
    wh = Warehouse(settings.warehouse_path)
    write_articles(wh, LABELS)  # the splits can be built: a detected shift may request a retrain
    instance = dg.DagsterInstance.ephemeral()
    t0 = datetime(2026, 11, 20, tzinfo=UTC)

    wh.replace_table("scored_articles", _scored(10_000, start=0, conf_mean=0.9, seed=1, t0=t0))
    result, ctx = _tick(defs, instance, None)
    assert not result.run_requests
    assert result.skip_reason is not None and "confidence" in result.skip_reason.skip_message
    cursor = result.cursor
    assert cursor

    shifted = _scored(2_000, start=10_000, conf_mean=0.6, seed=2, t0=t0)
    wh.append("scored_articles", shifted)
    result, _ = _tick(defs, instance, cursor)  # a fresh context: state comes from disk + cursor
    assert len(result.run_requests) == 1
    req = result.run_requests[0]
    assert req.run_key and req.tags["newsml/drift_signal"] in {"confidence", "disagreement"}
    assert req.tags["newsml/job"] == "retrain"
    assert 10_000 <= int(req.tags["newsml/drift_position"]) <= 10_300

    more = _scored(2_000, start=12_000, conf_mean=0.3, seed=3, t0=t0)
    wh.append("scored_articles", more)
    result, _ = _tick(defs, instance, result.cursor)
    assert not result.run_requests  # cooldown: one shift must not start a retrain storm
    assert "cooldown" in result.skip_reason.skip_message


def test_no_table_yet_is_a_clear_skip(make_settings) -> None:
    defs = build_definitions(make_settings())
    result, _ = _tick(defs, dg.DagsterInstance.ephemeral(), None)
    assert not result.run_requests
    assert "no scored_articles" in result.skip_reason.skip_message


def test_before_any_champion_no_fit_requests_a_retrain(make_settings) -> None:
    """The auto-labeller's stream (no champion yet): its confidence and agreement with itself do
    not move, but a day where far more articles fit no class requests retrain_job."""
    from newsml_pipeline.core.serving.predictor import AUTO_LABELER_VERSION

    settings = make_settings(**READY_SETTINGS, drift={"delta": 0.05, "cooldown_hours": 24})
    defs = build_definitions(settings)
    wh = Warehouse(settings.warehouse_path)
    write_articles(wh, LABELS)  # the splits can be built: the detected change may request a retrain
    instance = dg.DagsterInstance.ephemeral()
    t0 = datetime(2026, 11, 20, tzinfo=UTC)

    def day(n: int, *, start: int, no_fit: float, seed: int) -> pl.DataFrame:
        rows = _scored(n, start=start, conf_mean=0.9, seed=seed, t0=t0)
        rng = np.random.default_rng(seed + 100)
        unfit = rng.random(n) < no_fit
        fit = np.where(unfit, rng.uniform(0.0, 0.12, n), rng.uniform(0.12, 0.5, n))
        return rows.with_columns(model_version=pl.lit(AUTO_LABELER_VERSION), class_fit=pl.Series(fit))

    wh.replace_table("scored_articles", day(1260, start=0, no_fit=0.25, seed=1))
    result, _ = _tick(defs, instance, None)
    assert not result.run_requests and "no_fit: mean 0.2" in result.skip_reason.skip_message

    wh.append("scored_articles", day(180, start=1260, no_fit=0.5, seed=2))
    result, _ = _tick(defs, instance, result.cursor)
    assert len(result.run_requests) == 1
    req = result.run_requests[0]
    assert req.tags["newsml/drift_signal"] == "no_fit"
    assert req.tags["newsml/model_version"] == AUTO_LABELER_VERSION
    assert int(req.tags["newsml/drift_position"]) >= 1260
