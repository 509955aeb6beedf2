from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.monitoring.drift import DriftStateError, DriftStateStore
from newsml_pipeline.core.monitoring.sensor_logic import (
    ScoredCursor,
    evaluate_tick,
    load_sensor_state,
    read_new_scored_rows,
    reset_detectors,
    run_drift_tick,
)
from newsml_pipeline.settings import DriftConfig

from .streams import T0, scored_stream

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
CFG = DriftConfig(cooldown_hours=24, max_rows_per_tick=1000)


def _tick(rows, store, *, cfg=CFG, now=NOW, cursor=None):
    return evaluate_tick(new_rows=rows, state_store=store, drift_cfg=cfg, now=now, cursor=cursor)


def test_stationary_ticks_skip_with_window_statistics(tmp_path):
    store = DriftStateStore.in_home(tmp_path)
    rows = scored_stream(3000, seed=1)
    res = _tick(rows, store)
    assert not res.should_retrain and res.run_key is None and res.tags == {}
    assert res.stats["rows_consumed"] == 1000 and res.stats["backlog_rows_in_input"] == 2000
    assert "no drift in 1000 new rows" in res.skip_reason and "2000+ rows left" in res.skip_reason
    assert "confidence: mean 0.5" in res.skip_reason and "over window 1000" in res.skip_reason
    assert ScoredCursor.parse(res.new_cursor) == ScoredCursor(T0 + timedelta(seconds=999), "a00000999")


def test_shift_requests_retrain_with_unique_key_and_tags(tmp_path):
    store = DriftStateStore.in_home(tmp_path)
    rows = scored_stream(4000, seed=1, shift_at=2000)
    cfg = DriftConfig(max_rows_per_tick=50_000)
    res = _tick(rows, store, cfg=cfg)
    assert res.should_retrain and res.skip_reason is None
    # the auto-label turns "politics" on the wrong rows: its mix moves too (label_mix)
    assert [(e.signal, e.position) for e in res.drift_events] == [
        ("confidence", 2052),
        ("disagreement", 2129),
        ("label_mix", 2151),  # politics' share rises,
        ("label_mix", 2151),  # sport's falls
    ]
    assert res.run_key.startswith("drift-confidence-2052-") and res.run_key.endswith("-e0")
    assert res.tags["newsml/drift_signal"] == "confidence"
    assert res.tags["newsml/drift_position"] == "2052"
    assert float(res.tags["newsml/drift_mean_before"]) > float(res.tags["newsml/drift_mean_after"])
    assert all(isinstance(v, str) for v in res.tags.values())
    # a fresh state file (deleted by an operator) gives new run keys: Dagster would drop a repeat
    store.path.unlink()
    again = _tick(rows, store, cfg=cfg)
    assert again.should_retrain and again.run_key != res.run_key


def test_cooldown_records_but_does_not_request(tmp_path):
    store = DriftStateStore.in_home(tmp_path)
    cfg = DriftConfig(max_rows_per_tick=50_000, cooldown_hours=24)
    first = _tick(scored_stream(4000, seed=1, shift_at=2000), store, cfg=cfg)
    assert first.should_retrain
    # a second shift (back to the old regime, then worse) arrives within the cooldown
    second_rows = scored_stream(
        4000,
        seed=2,
        start=4000,
        shift_at=2000,
        conf_before=(5.0, 3.0),
        conf_after=(2.0, 4.0),
        error_before=0.3,
        error_after=0.6,
    )
    second = _tick(second_rows, store, cfg=cfg, now=NOW + timedelta(hours=3))
    assert second.drift_events, "the second shift must still be detected and recorded"
    assert not second.should_retrain and second.run_key is None
    assert "cooldown until 2026-11-21T12:00:00+00:00" in second.skip_reason
    assert second.stats["in_cooldown"] is True
    state = load_sensor_state(store, drift_cfg=cfg)
    assert len(state.recent_events) == len(first.drift_events) + len(second.drift_events)
    # after the cooldown, the next detection requests again
    third_rows = scored_stream(
        4000,
        seed=3,
        start=8000,
        shift_at=2000,
        conf_before=(2.0, 4.0),
        conf_after=(9.0, 1.0),
        error_before=0.6,
        error_after=0.05,
    )
    third = _tick(third_rows, store, cfg=cfg, now=NOW + timedelta(hours=25))
    assert third.should_retrain and third.run_key not in (first.run_key, None)


def test_cursor_and_state_survive_a_fresh_process(tmp_path):
    rows = scored_stream(6000, seed=4, shift_at=3000)
    cfg = DriftConfig(max_rows_per_tick=700)
    # one long-lived sensor vs. one rebuilt from disk at every tick (new store object each time)
    ref_store = DriftStateStore(tmp_path / "ref.bin")
    ref_events, cursor = [], None
    for _ in range(9):
        res = _tick(rows, ref_store, cfg=cfg, cursor=cursor)
        ref_events += res.drift_events
        cursor = res.new_cursor
    assert res.stats["rows_seen_total"] == 6000
    # label_mix: one detector per category, created as categories appear, kept in the state file
    assert [(e.signal, e.scale, e.position) for e in ref_events] == [
        ("confidence", "confidence**3", 3052),
        ("disagreement", "disagreement", 3069),
        ("label_mix", "share auto_label=politics", 3080),
        ("label_mix", "share auto_label=sport", 3080),
    ]
    # and all rows at once (bigger tick) detect the same things at the same positions
    one_store = DriftStateStore(tmp_path / "one.bin")
    one = _tick(rows, one_store, cfg=DriftConfig(max_rows_per_tick=6000))
    assert one.drift_events == ref_events
    # feeding already-consumed rows again changes nothing: they are dropped
    replay = _tick(rows, DriftStateStore(tmp_path / "ref.bin"), cfg=cfg, cursor=cursor)
    assert replay.stats["rows_consumed"] == 0 and replay.stats["rows_already_seen"] == 6000
    assert "no new scored rows after" in replay.skip_reason


def test_state_cursor_wins_over_a_stale_dagster_cursor(tmp_path):
    store = DriftStateStore(tmp_path / "s.bin")
    rows = scored_stream(100, seed=5)
    first = _tick(rows.head(60), store)
    # Dagster failed to persist first.new_cursor: it still passes None; rows 0..59 must not be re-fed
    second = _tick(rows, store, cursor=None)
    assert second.stats["rows_consumed"] == 40 and second.stats["rows_seen_total"] == 100
    assert ScoredCursor.parse(first.new_cursor) < ScoredCursor.parse(second.new_cursor)


def test_config_change_restarts_detectors_keeping_the_cursor(tmp_path):
    store = DriftStateStore(tmp_path / "s.bin")
    rows = scored_stream(200, seed=6)
    _tick(rows.head(100), store)
    res = _tick(rows, store, cfg=DriftConfig(delta=0.01, max_rows_per_tick=1000))
    assert res.stats["rows_consumed"] == 100 and res.stats["epoch"] == 1
    assert res.stats["signals"]["confidence"]["window_width"] == 100


def test_reset_detectors_after_deployment(tmp_path):
    store = DriftStateStore(tmp_path / "s.bin")
    _tick(scored_stream(500, seed=7), store)
    state = reset_detectors(store, drift_cfg=CFG, reason="model 2 deployed")
    assert state.monitor.epoch == 1 and state.cursor is not None
    res = _tick(scored_stream(10, seed=8, start=500), store)
    assert res.stats["signals"]["confidence"]["window_width"] == 10 and res.stats["rows_seen_total"] == 510


def test_corrupt_state_file_is_a_clear_error_and_is_kept(tmp_path):
    store = DriftStateStore(tmp_path / "s.bin")
    _tick(scored_stream(50, seed=9), store)
    store.path.write_bytes(store.path.read_bytes()[:-5])
    with pytest.raises(DriftStateError, match=r"s\.bin.*corrupt or truncated.*delete it"):
        _tick(scored_stream(50, seed=9), store)
    assert store.path.exists()  # nothing lost: the operator decides


def test_bad_cursor_and_naive_now_are_errors(tmp_path):
    store = DriftStateStore(tmp_path / "s.bin")
    with pytest.raises(ValueError, match="not a valid cursor"):
        _tick(scored_stream(5, seed=1), store, cursor="garbage")
    with pytest.raises(ValueError, match="timezone-aware"):
        _tick(scored_stream(5, seed=1), store, now=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="lack column"):
        _tick(scored_stream(5, seed=1).drop("scored_at"), store)


def test_tick_of_10k_rows_is_fast(tmp_path):
    store = DriftStateStore(tmp_path / "s.bin")
    rows = scored_stream(10_000, seed=11)
    _tick(rows.head(10), store)
    t = time.perf_counter()
    res = _tick(rows, store, cfg=DriftConfig(max_rows_per_tick=50_000))
    assert res.stats["rows_consumed"] == 9990
    assert time.perf_counter() - t < 2.0  # target 1 s; slack for a loaded 2-core machine


# ---------------------------------------------------------------- warehouse


def _write_scored(wh: Warehouse, rows: pl.DataFrame, *, with_auto: bool, naive_ts: bool = False) -> None:
    scored = rows.with_columns(partition_date=pl.col("scored_at").dt.date())
    if naive_ts:  # a plain TIMESTAMP column is read as UTC
        scored = scored.with_columns(pl.col("scored_at").dt.replace_time_zone(None))
    labeled = rows.select("article_id", label=pl.col("auto_label"), confidence=pl.lit(0.9))
    if not with_auto:
        scored = scored.drop("auto_label")
        wh.append("labeled_articles", labeled)
    wh.append("scored_articles", scored)


@pytest.mark.parametrize(("with_auto", "naive_ts"), [(True, False), (False, False), (True, True)])
def test_read_new_scored_rows_pages_through_the_table(tmp_path, warehouse_target, with_auto, naive_ts):
    wh = Warehouse(warehouse_target)
    assert read_new_scored_rows(wh, cursor=None, limit=10).height == 0  # no table yet
    rows = scored_stream(250, seed=12, abstain_every=7)
    # two rows with the same timestamp: the article id breaks the tie
    rows = rows.with_columns(
        scored_at=pl.when(pl.col("article_id") == "a00000101")
        .then(T0 + timedelta(seconds=100))
        .otherwise(pl.col("scored_at"))
    )
    _write_scored(wh, rows.sample(fraction=1.0, shuffle=True, seed=1), with_auto=with_auto, naive_ts=naive_ts)
    seen, cursor = [], None
    while True:
        page = read_new_scored_rows(wh, cursor=cursor, limit=60)
        if page.height == 0:
            break
        assert page.height <= 60
        last = page.row(page.height - 1, named=True)
        cursor = ScoredCursor(last["scored_at"], last["article_id"])
        seen.append(page)
    got = pl.concat(seen)
    # (scored_at, article_id) order: a00000100 and a00000101 share a timestamp, ids break the tie
    assert got["article_id"].to_list() == sorted(rows["article_id"].to_list())
    assert got["article_id"].n_unique() == 250 and got.height == 250
    assert got.columns == [
        "article_id",
        "model_version",
        "label",
        "confidence",
        "auto_label",
        "scored_at",
        "class_fit",
    ]
    assert got["class_fit"].null_count() == 250  # neither table has it here
    assert got.schema["scored_at"] == pl.Datetime("us", "UTC")
    assert got["auto_label"].null_count() == rows["auto_label"].null_count() > 0
    assert got["scored_at"].to_list() == rows.sort("scored_at", "article_id")["scored_at"].to_list()
    by_id = dict(zip(rows["article_id"], rows["auto_label"], strict=True))
    assert all(by_id[a] == b for a, b in zip(got["article_id"], got["auto_label"], strict=True))


def test_run_drift_tick_end_to_end_over_the_warehouse(tmp_path, warehouse_target):
    wh = Warehouse(warehouse_target)
    _write_scored(wh, scored_stream(4000, seed=1, shift_at=2000), with_auto=True)
    store = DriftStateStore.in_home(tmp_path)
    cfg = DriftConfig(max_rows_per_tick=1500)
    results, cursor = [], None
    for _ in range(4):
        res = run_drift_tick(warehouse=wh, state_store=store, drift_cfg=cfg, now=NOW, cursor=cursor)
        results.append(res)
        cursor = res.new_cursor
    assert [r.stats["rows_consumed"] for r in results] == [1500, 1500, 1000, 0]
    assert [r.stats["backlog_rows_in_input"] for r in results] == [1, 1, 0, 0]
    assert [r.should_retrain for r in results] == [False, True, False, False]
    assert results[1].run_key.startswith("drift-confidence-2052-")


def test_missing_scored_at_column_is_a_clear_error(tmp_path, warehouse_target):
    wh = Warehouse(warehouse_target)
    wh.append("scored_articles", scored_stream(5, seed=1).drop("scored_at"))
    with pytest.raises(LookupError, match="scored_at"):
        read_new_scored_rows(wh, cursor=None, limit=10)
