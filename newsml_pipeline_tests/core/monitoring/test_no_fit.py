"""The `no_fit` signal: the share of articles no class fits, from the auto-labeller alone.

Exact, seeded, river-style: a change of the share is detected at the expected row and a
stationary stream raises nothing; the detector is not restarted by a new champion; and the
sensor's tick requests a retrain on it before any champion exists (the stream is the
auto-labeller's, whose confidence and agreement with itself do not move).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.labeling.functions.zero_shot import class_fit
from newsml_pipeline.core.monitoring.drift import DriftMonitor, DriftStateStore
from newsml_pipeline.core.monitoring.sensor_logic import run_drift_tick
from newsml_pipeline.core.monitoring.signals import SignalError, extract_signals, no_fit_signal
from newsml_pipeline.core.serving.predictor import AUTO_LABELER_VERSION
from newsml_pipeline.settings import DriftConfig

from .streams import T0, scored_stream


def _monitor(**kw) -> DriftMonitor:
    return DriftMonitor(signals=("confidence", "disagreement", "no_fit"), delta=0.002, **kw)


def test_no_fit_values_threshold_and_skips():
    rows = pl.DataFrame({"class_fit": [0.05, 0.12, None, 0.3, 0.119]}, schema={"class_fit": pl.Float64})
    b = no_fit_signal(rows, below=0.12)
    assert b.row_offsets.tolist() == [0, 1, 3, 4]
    assert b.values.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert extract_signals(rows, signals=["no_fit"], no_fit_below=0.2)["no_fit"].values.tolist() == [
        1.0,
        1.0,
        0.0,
        1.0,
    ]
    with pytest.raises(SignalError, match="class_fit"):
        no_fit_signal(pl.DataFrame({"x": [1.0]}))
    with pytest.raises(SignalError, match="NaN"):
        no_fit_signal(pl.DataFrame({"class_fit": [float("nan")]}))


def test_class_fit_is_the_best_class_similarity():
    docs = np.array([[1.0, 0.0], [0.6, 0.8]])
    protos = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert class_fit(docs, protos).tolist() == pytest.approx([1.0, 0.8])
    assert class_fit(np.zeros((0, 2)), protos).shape == (0,)


def test_share_change_is_caught_at_the_expected_index():
    # 25 % of articles fit no class, then 45 % from row 2000 (seed 1); nothing else moves.
    rows = scored_stream(
        4000,
        seed=1,
        shift_at=2000,
        error_after=0.10,
        conf_after=(8.0, 2.0),
        no_fit_before=0.25,
        no_fit_after=0.45,
    )
    events = _monitor().update(rows)
    assert [(e.signal, e.position) for e in events] == [("no_fit", 2137)]
    (e,) = events
    assert e.mean_before < e.mean_after and e.scale == "share class_fit<0.12"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stationary_share_raises_nothing_in_10000_rows(seed):
    mon = _monitor()
    assert mon.update(scored_stream(10_000, seed=seed, no_fit_before=0.25)) == []
    assert mon.window_stats()["no_fit"]["window_width"] == 10_000


def test_a_new_champion_restarts_its_signals_but_not_no_fit():
    mon = _monitor()
    mon.update(scored_stream(1000, seed=4, no_fit_before=0.25, model_version=AUTO_LABELER_VERSION))
    mon.update(scored_stream(500, seed=5, start=1000, no_fit_before=0.25, model_version="1"))
    stats = mon.window_stats()
    assert stats["confidence"]["values_since_reset"] == 500
    assert stats["disagreement"]["values_since_reset"] == 500
    assert stats["no_fit"]["values_since_reset"] == 1500 and stats["no_fit"]["window_width"] == 1500


def test_threshold_is_part_of_the_saved_state_and_config():
    mon = DriftMonitor.from_config(DriftConfig(no_fit_below=0.2))
    assert mon.no_fit_below == 0.2
    again = DriftMonitor.from_state(mon.to_state())
    assert again.no_fit_below == 0.2 and again.matches_config(DriftConfig(no_fit_below=0.2))
    assert not again.matches_config(DriftConfig(no_fit_below=0.12))


def _day(day: int, n: int, *, no_fit_share: float, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One scored day of the auto-labeller's stream (no champion) and its labeled_articles rows."""
    rows = scored_stream(
        n,
        seed=seed,
        start=day * 86_400,
        error_before=0.0,
        conf_before=(8.0, 2.0),
        model_version=AUTO_LABELER_VERSION,
        no_fit_before=no_fit_share,
    )
    d = (T0 + timedelta(days=day)).date()
    labeled = rows.select(
        "article_id",
        pl.lit(d).alias("partition_date"),
        pl.col("auto_label").alias("label"),
        pl.col("confidence"),
        pl.lit("{}").alias("votes"),
        "class_fit",
    )
    # the stand-in answers as the auto-labeller: same label, no disagreement, same confidence
    scored = rows.select(
        "article_id",
        pl.lit(d).alias("partition_date"),
        "model_version",
        "label",
        "confidence",
        "auto_label",
        "scored_at",
    )
    return scored, labeled


def test_tick_requests_a_retrain_before_any_champion_when_no_fit_moves(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    store = DriftStateStore.in_home(tmp_path)
    cfg = DriftConfig(delta=0.05, cooldown_hours=24)
    cursor = None
    results = []
    # seven ordinary days of 180 articles (25 % fit no class), then a day where 45 % fit none
    for day, share in enumerate([0.25] * 7 + [0.45]):
        scored, labeled = _day(day, 180, no_fit_share=share, seed=day)
        wh.append("scored_articles", scored)
        wh.append("labeled_articles", labeled)
        now = datetime(2026, 11, 2, tzinfo=UTC) + timedelta(days=day, minutes=30)
        res = run_drift_tick(warehouse=wh, state_store=store, drift_cfg=cfg, now=now, cursor=cursor)
        cursor = res.new_cursor
        results.append(res)
    assert [r.should_retrain for r in results] == [False] * 7 + [True]
    last = results[-1]
    assert last.tags["newsml/drift_signal"] == "no_fit"
    assert last.tags["newsml/model_version"] == AUTO_LABELER_VERSION
    assert float(last.tags["newsml/drift_mean_after"]) > float(last.tags["newsml/drift_mean_before"])
    assert all(e.signal == "no_fit" for e in last.drift_events)
