from __future__ import annotations

import pickle
import random

import polars as pl
import pytest

from newsml_pipeline.core.monitoring.drift import (
    DriftMonitor,
    DriftStateError,
    DriftStateStore,
    feed_values,
)
from newsml_pipeline.settings import DriftConfig

from .streams import scored_stream

SIGNALS = ("confidence", "disagreement")


def _monitor(**kw) -> DriftMonitor:
    return DriftMonitor(signals=SIGNALS, delta=0.002, confidence_power=3.0, **kw)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stationary_stream_raises_no_drift_in_10000_rows(seed):
    mon = _monitor()
    assert mon.update(scored_stream(10_000, seed=seed)) == []
    assert mon.rows_seen == 10_000
    stats = mon.window_stats()
    assert stats["confidence"]["window_width"] == 10_000  # never cut
    assert stats["disagreement"]["values_since_reset"] == 10_000


def test_shift_is_caught_at_the_expected_index():
    # Beta(8,2) -> Beta(5,3) confidence and 10% -> 30% disagreement from row 2000 (seed 1).
    events = _monitor().update(scored_stream(4000, seed=1, shift_at=2000))
    assert [(e.signal, e.position) for e in events] == [("confidence", 2052), ("disagreement", 2129)]
    conf, dis = events
    # E[X^3] of Beta(8,2) is 0.5455: the dropped part is the pre-change regime.
    assert conf.mean_before == pytest.approx(0.5478, abs=1e-4)
    assert conf.mean_after < conf.mean_before
    assert conf.scale == "confidence**3"
    assert (conf.width, conf.dropped) == (645, 1408)
    assert conf.width + conf.dropped == 2053  # the whole window before the cut
    assert dis.mean_before == pytest.approx(0.0820, abs=1e-4) and dis.mean_after > dis.mean_before
    assert conf.article_id == "a00002052" and conf.model_version == "1"


def test_river_example_reproduced_through_feed_values():
    # river's ADWIN docstring (its default clock=32): change detected at index 1023
    rng = random.Random(12345)
    data = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
    mon = DriftMonitor(signals=("disagreement",), clock=32)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        feed_values(mon, "disagreement", data)  # the signal contract is [0, 1]
    events = feed_values(mon, "disagreement", [x / 7 for x in data])
    assert [e.position for e in events] == [1023]


def test_abstained_rows_keep_global_positions():
    rows = scored_stream(4000, seed=1, shift_at=2000, abstain_every=2)
    events = [e for e in DriftMonitor(signals=("disagreement",)).update(rows) if e.signal == "disagreement"]
    assert events, "the 10% -> 30% shift must be caught on the half of rows with an auto-label"
    pos = events[0].position
    assert pos > 2000 and pos % 2 == 1  # only rows with an auto-label (odd indexes) feed the detector
    assert rows["auto_label"][pos] is not None


def test_feed_half_save_load_feed_rest_equals_feed_all(tmp_path):
    rows = scored_stream(6000, seed=4, shift_at=3000)
    whole = _monitor()
    expected = whole.update(rows)
    assert expected, "the shift must be detected for the comparison to mean something"

    first = _monitor()
    got = first.update(rows.slice(0, 3050))  # cut between the change and its detection
    store = DriftStateStore.in_home(tmp_path)
    store.save_monitor(first)
    assert store.path == tmp_path / "monitoring" / "drift_state.bin"
    del first
    resumed = DriftStateStore(store.path).load_monitor()
    got += resumed.update(rows.slice(3050))
    assert got == expected
    assert resumed.window_stats() == whole.window_stats()
    assert resumed.rows_seen == 6000


def test_state_bytes_round_trip_keeps_settings():
    mon = _monitor(clock=8)
    mon.update(scored_stream(500, seed=5))
    back = DriftMonitor.from_state(mon.to_state())
    assert (back.signals, back.clock, back.confidence_power, back.rows_seen, back.monitor_id) == (
        SIGNALS,
        8,
        3.0,
        500,
        mon.monitor_id,
    )


def test_corrupt_state_is_a_clear_error(tmp_path):
    store = DriftStateStore(tmp_path / "state.bin")
    mon = _monitor()
    mon.update(scored_stream(300, seed=6))
    store.save_monitor(mon)
    data = bytearray(store.path.read_bytes())
    data[-10] ^= 0xFF
    store.path.write_bytes(bytes(data))
    with pytest.raises(DriftStateError, match=r"state\.bin.*corrupt.*checksum"):
        store.load_monitor()
    store.path.write_bytes(bytes(data[:40]))
    with pytest.raises(DriftStateError, match="corrupt or truncated"):
        store.load_monitor()
    store.path.write_bytes(b"hello")
    with pytest.raises(DriftStateError, match="bad header"):
        store.load_monitor()
    # another kind of state in the same envelope
    store.save("sensor", {"x": 1})
    with pytest.raises(DriftStateError, match="expected 'monitor'|bad field"):
        store.load_monitor()


def test_wrong_version_is_refused(tmp_path):
    from newsml_pipeline.core.monitoring import drift as drift_mod

    body = pickle.dumps({"format": "newsml-drift", "version": 999, "kind": "monitor", "payload": {}})
    import hashlib

    data = drift_mod._MAGIC + hashlib.sha256(body).digest() + body
    with pytest.raises(DriftStateError, match="version 999"):
        DriftMonitor.from_state(data)


def test_atomic_save_leaves_no_temp_files(tmp_path):
    store = DriftStateStore(tmp_path / "m" / "s.bin")
    for _ in range(3):
        store.save_monitor(_monitor())
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["s.bin"]
    assert DriftStateStore(tmp_path / "absent.bin").load_monitor() is None


def test_reset_restarts_detectors_but_not_positions():
    mon = _monitor()
    mon.update(scored_stream(1000, seed=7))
    mon.reset(reason="retrained model deployed")
    assert mon.epoch == 1 and mon.rows_seen == 1000
    assert all(s["window_width"] == 0 for s in mon.window_stats().values())
    mon.update(scored_stream(10, seed=8, start=1000))
    assert mon.rows_seen == 1010


def test_new_model_version_restarts_detectors_instead_of_alarming():
    # model 1 is confident; model 2 much less so: the switch itself is not drift of model 2
    old = scored_stream(3000, seed=9)
    new = scored_stream(3000, seed=10, start=3000, conf_before=(5.0, 3.0), model_version="2")
    mon = _monitor()
    assert mon.update(pl.concat([old, new])) == []
    assert mon.epoch == 1 and mon.model_version == "2"
    assert mon.window_stats()["confidence"]["window_width"] == 3000
    no_reset = _monitor(reset_on_model_change=False)
    assert [e.signal for e in no_reset.update(pl.concat([old, new]))][:1] == ["confidence"]


def test_from_config_uses_drift_section():
    cfg = DriftConfig(delta=0.01, clock=4, confidence_power=2.0, signals=["confidence"])
    mon = DriftMonitor.from_config(cfg)
    assert (mon.signals, mon.delta, mon.clock, mon.confidence_power) == (("confidence",), 0.01, 4, 2.0)
    assert mon.matches_config(cfg) and not mon.matches_config(DriftConfig())


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="delta"):
        DriftMonitor(signals=SIGNALS, delta=0)
    with pytest.raises(ValueError, match="unknown"):
        DriftMonitor(signals=("entropy",))
