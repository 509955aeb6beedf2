"""A small warehouse for the entity mode's tests: an `entity_review_queue` with the asset's columns
(core/entities/review.QUEUE_SCHEMA), built by the asset's own selection function."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.entities.review import QUEUE_TABLE, select_sentences
from newsml_pipeline.core.entities.spans import CharSpan

DAY = date(2026, 11, 30)
TYPES = ["PER", "ORG", "LOC", "NEWS_ORG"]
# (article_id, sentence, text, label-model spans, each source's spans, abstained ranges)
SENTENCES = [
    ("a1", 0, "Angela Merkel met Reuters in Berlin.",
     [(0, 13, "PER"), (29, 35, "LOC")],
     {"pretrained": [(0, 13, "PER"), (18, 25, "ORG"), (29, 35, "LOC")], "gazetteer": [(18, 25, "NEWS_ORG")]},
     [(18, 25)]),
    ("a2", 1, "The Bank of England raised rates.",
     [(4, 19, "ORG")],
     {"pretrained": [(0, 19, "ORG")], "patterns": [(4, 19, "ORG")]},
     []),
    ("a3", 0, "Rain fell in Leeds.",
     [(13, 18, "LOC")],
     {"pretrained": [(13, 18, "LOC")]},
     []),
]  # fmt: skip


def _spans(items) -> list[CharSpan]:  # noqa: ANN001
    return [CharSpan(a, b, lab) for a, b, lab in items]


def write_entity_queue(home: Path) -> Warehouse:
    """entity_review_queue of SENTENCES, ranked by the asset's rule (a1 first: most contested)."""
    wh = Warehouse(home / "warehouse.duckdb")
    rows = pl.DataFrame(
        {
            "article_id": [s[0] for s in SENTENCES],
            "sentence": [s[1] for s in SENTENCES],
            "text": [s[2] for s in SENTENCES],
            "entities": [json.dumps(s[3]) for s in SENTENCES],
            "proposals": [json.dumps(s[4]) for s in SENTENCES],
        }
    )
    queue = select_sentences(
        rows,
        day=DAY,
        budget=10,
        proposals=[{k: _spans(v) for k, v in s[4].items()} for s in SENTENCES],
        missing=[s[5] for s in SENTENCES],
    )
    wh.replace_table(QUEUE_TABLE, queue)
    return wh
