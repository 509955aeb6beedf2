"""Drift of the entity stream: how many of the deployed recognizer's entities no labelling source
proposed. While the news looks like what the model was trained on, most of what it finds was also
proposed by the pretrained NER, the gazetteers or the patterns; a rising share of entities nobody
proposed means the text (or the model) moved. One river ADWIN watches that share per article,
in publication order; its state (and the last retrain request, for the cooldown) persists in one
sealed file like the topic drift state (core/monitoring/drift.py), so a daemon restart continues
identically. (spaCy's greedy NER gives no per-entity confidence, so there is no confidence signal.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from newsml_pipeline.core.entities.spans import CharSpan
from newsml_pipeline.core.monitoring.drift import DriftStateStore

STATE_KIND = "entity-drift"
STATE_FILE = "entity_drift_state.bin"


def proposals_by_article(
    article_ids: list[str], sentence_starts: list[int], entities: list[str], proposals: list[str]
) -> dict[str, set[CharSpan]]:
    """entity_labels rows -> every span any source (or the label model) proposed, per article, in
    article character offsets (sentence offset + span offset)."""
    out: dict[str, set[CharSpan]] = {}
    for aid, base, ents, props in zip(article_ids, sentence_starts, entities, proposals, strict=True):
        spans = out.setdefault(aid, set())
        for a, b, lab in json.loads(ents):
            spans.add(CharSpan(base + a, base + b, lab))
        for src in json.loads(props).values():
            for a, b, lab in src:
                spans.add(CharSpan(base + a, base + b, lab))
    return out


@dataclass
class EntityDriftMonitor:
    """ADWIN over per-article unproposed shares; `update` returns the stream positions of drift."""

    delta: float = 0.002
    clock: int = 1
    n_seen: int = 0
    cursor: tuple[str, str] | None = None  # (partition date ISO, article_id) of the last value fed
    last_request: datetime | None = None
    detector: Any = field(default=None)  # a river ADWIN

    def __post_init__(self) -> None:
        if self.detector is None:
            from river.drift import ADWIN  # here, not at load: the code location must not import river

            self.detector = ADWIN(delta=self.delta, clock=self.clock)

    def update(self, values: list[float]) -> list[int]:
        hits = []
        for v in values:
            self.detector.update(float(v))
            if self.detector.drift_detected:
                hits.append(self.n_seen)
            self.n_seen += 1
        return hits

    @property
    def mean(self) -> float:
        return float(self.detector.estimation)

    def save(self, store: DriftStateStore) -> None:
        store.save(STATE_KIND, self)

    @classmethod
    def load(cls, store: DriftStateStore, *, delta: float, clock: int) -> EntityDriftMonitor:
        got = store.load(STATE_KIND)
        return got if got is not None else cls(delta=delta, clock=clock)
