"""Entity drift: unproposed shares per article feed ADWIN; a shift is found, a stationary stream
is not, and the state survives a save/load with identical detections afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from newsml_pipeline.core.entities.drift import EntityDriftMonitor, proposals_by_article
from newsml_pipeline.core.entities.spans import CharSpan
from newsml_pipeline.core.monitoring.drift import DriftStateStore


def _stream(seed: int, n: int, p: float) -> list[float]:
    return (np.random.default_rng(seed).random(n) < p).astype(float).tolist()


def test_adwin_finds_a_rise_of_unproposed_entities_and_not_a_stationary_stream() -> None:
    calm = EntityDriftMonitor()
    assert calm.update(_stream(0, 3000, 0.1)) == []
    shifted = EntityDriftMonitor()
    hits = shifted.update(_stream(1, 1000, 0.1) + _stream(2, 1000, 0.5))
    assert hits and 1000 <= hits[0] < 1200  # found soon after the change, not before it


def test_state_round_trip_continues_identically(tmp_path: Path) -> None:
    values = _stream(3, 800, 0.1) + _stream(4, 800, 0.6)
    whole = EntityDriftMonitor()
    expected = whole.update(values)
    store = DriftStateStore(tmp_path / "state.bin")
    part = EntityDriftMonitor()
    first = part.update(values[:900])
    part.cursor = ("2026-11-20", "a9")
    part.save(store)
    again = EntityDriftMonitor.load(store, delta=0.002, clock=1)
    assert again.cursor == ("2026-11-20", "a9")
    assert first + again.update(values[900:]) == expected


def test_proposals_are_put_in_article_offsets() -> None:
    got = proposals_by_article(
        ["a", "a"],
        [0, 20],
        [json.dumps([[0, 5, "PER"]]), json.dumps([])],
        [json.dumps({"pretrained": [[0, 5, "PER"]]}), json.dumps({"gazetteer": [[3, 10, "NEWS_ORG"]]})],
    )
    assert got == {"a": {CharSpan(0, 5, "PER"), CharSpan(23, 30, "NEWS_ORG")}}
