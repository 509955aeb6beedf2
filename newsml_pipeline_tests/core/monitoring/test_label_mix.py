"""The `label_mix` signal: the share of each auto-label, one ADWIN per category.

A new mix of the schema's own classes (every article fits a class, the labeller is as sure as
before) is what no_fit and the labeller's confidence cannot see; label_mix must, before any
champion exists, and must stay quiet on a stationary mix of six classes.
"""

from __future__ import annotations

import random
from datetime import timedelta

import polars as pl
import pytest

from newsml_pipeline.core.monitoring.drift import LABEL_MIX_PRIME_CAP, DriftMonitor, feed_values
from newsml_pipeline.core.monitoring.signals import ABSTAINED, label_mix_signals

from .streams import T0

CLASSES = ["earn", "acq", "money-fx", "trade", "crude", "grain"]
BEFORE = [5, 4, 2, 1, 1, 1]
AFTER = [1, 1, 1, 2, 5, 4]


def mix_stream(
    n: int, *, seed: int, shift_at: int | None, start: int = 0, version: str = "auto"
) -> pl.DataFrame:
    """Auto-labels drawn from BEFORE's mix, AFTER's from shift_at; confidence and class_fit flat."""
    rng = random.Random(seed)
    labels = [
        rng.choices(CLASSES, weights=AFTER if shift_at is not None and i >= shift_at else BEFORE)[0]
        for i in range(n)
    ]
    return pl.DataFrame(
        {
            "article_id": [f"a{start + i:08d}" for i in range(n)],
            "model_version": [version] * n,
            "label": labels,
            "confidence": [0.9] * n,
            "auto_label": labels,
            "class_fit": [0.4] * n,
            "scored_at": [T0 + timedelta(seconds=start + i) for i in range(n)],
        }
    )


def test_one_zero_one_stream_per_category_abstentions_included() -> None:
    rows = pl.DataFrame({"auto_label": ["earn", None, "acq", "earn"]}, schema={"auto_label": pl.String})
    got = label_mix_signals(rows, known=["grain"])
    assert list(got) == ["label_mix:grain", f"label_mix:{ABSTAINED}", "label_mix:acq", "label_mix:earn"]
    assert got["label_mix:earn"].values.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert got[f"label_mix:{ABSTAINED}"].values.tolist() == [0.0, 1.0, 0.0, 0.0]
    assert got["label_mix:grain"].values.tolist() == [0.0] * 4  # known, absent: its zeros
    assert {b.name for b in got.values()} == {"label_mix"}


def test_a_mix_shift_inside_the_schema_is_seen_and_the_other_signals_are_not() -> None:
    mon = DriftMonitor(signals=("confidence", "no_fit", "label_mix"), delta=0.002)
    events = mon.update(mix_stream(3000, seed=3, shift_at=1500))
    assert events, "the mix changed at row 1500 and label_mix did not fire"
    assert {e.signal for e in events} == {"label_mix"}
    first = min(e.position for e in events)
    assert 1500 <= first < 1800, first
    assert any(e.scale == "share auto_label=earn" and e.mean_after < e.mean_before for e in events)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_stationary_mix_raises_nothing(seed: int) -> None:
    mon = DriftMonitor(signals=("label_mix",), delta=0.002)
    assert mon.update(mix_stream(20_000, seed=seed, shift_at=None)) == []
    assert sorted(mon.window_stats()) == sorted(f"label_mix:{c}" for c in CLASSES)


def test_a_category_that_appears_late_starts_from_its_zeros() -> None:
    mon = DriftMonitor(signals=("label_mix",), delta=0.002)
    head = mix_stream(2000, seed=5, shift_at=None)
    assert mon.update(head.filter(pl.col("auto_label") != "grain")) == []
    n_seen = mon.window_stats()["label_mix:earn"]["values_since_reset"]
    late = mix_stream(1000, seed=6, shift_at=None, start=5000).with_columns(
        auto_label=pl.when(pl.int_range(pl.len()) % 3 == 0).then(pl.lit("grain")).otherwise("auto_label")
    )
    events = mon.update(late)
    stats = mon.window_stats()["label_mix:grain"]
    assert stats["values_since_reset"] == n_seen + 1000
    assert min(n_seen, LABEL_MIX_PRIME_CAP) > 0
    assert any(e.scale == "share auto_label=grain" and e.mean_before < e.mean_after for e in events)


def test_a_new_champion_does_not_restart_the_mix_detectors() -> None:
    mon = DriftMonitor(signals=("confidence", "label_mix"), delta=0.002)
    mon.update(mix_stream(1000, seed=7, shift_at=None, version="1"))
    mon.update(mix_stream(10, seed=8, shift_at=None, start=1000, version="2"))
    stats = mon.window_stats()
    assert stats["confidence"]["values_since_reset"] == 10  # the champion's: restarted
    assert stats["label_mix:earn"]["values_since_reset"] == 1010  # the labeller's: kept


def test_state_round_trip_keeps_every_category() -> None:
    mon = DriftMonitor(signals=("no_fit", "label_mix"), delta=0.002)
    rows = mix_stream(3000, seed=3, shift_at=1500)
    ref = mon.update(rows.head(1200)) + mon.update(rows.slice(1200))
    again = DriftMonitor(signals=("no_fit", "label_mix"), delta=0.002)
    got = again.update(rows.head(1200))
    restored = DriftMonitor.from_state(again.to_state())
    got += restored.update(rows.slice(1200))
    assert [(e.scale, e.position) for e in got] == [(e.scale, e.position) for e in ref]
    with pytest.raises(ValueError, match="label_mix"):
        feed_values(restored, "label_mix", [1.0])
