"""Trusted entity sentences from every road in, and the rule that keeps them out of training.

Roads: the gold files of `entities.gold_files`, gold spans carried by a local source (stored at
ingestion in the warehouse table `entity_gold`, one row per article), and the labelling page's
span answers (span_store.py). Like gold topic labels by default (`splits.train_on_gold` off), they
are used for evaluation and the gate only: the entity task has no switch to train on them, and
the issue's rule is that no gold label reaches training. Their articles, and every story grouped
with them (near-duplicates, exact copies), are held out of the train split too, so the model is
never scored on text it was trained on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from newsml_pipeline.core.data.splits import group_keys
from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.entities.gold import GoldSentence
from newsml_pipeline.core.entities.spans import CharSpan
from newsml_pipeline.core.labeling.span_store import SpanAnswer

log = logging.getLogger(__name__)

GOLD_TABLE = "entity_gold"
GOLD_COLUMN = "gold_entities"  # the column a collected batch carries them in (JSON [[start, end, label]])
GOLD_SCHEMA: dict[str, pl.DataType] = {
    "article_id": pl.String(),
    "source": pl.String(),
    "text": pl.String(),  # the record's text the offsets point into
    "entities": pl.String(),  # JSON [[start, end, label], ...]
    "recorded_at": pl.Datetime("us", "UTC"),
}
TRUSTED_SPLIT = "trusted"  # entity_splits' split of a story that holds a trusted sentence


def spans_to_json(spans: list[CharSpan]) -> str:
    return json.dumps([[s.start, s.end, s.label] for s in sorted(spans)])


def spans_from_json(raw: str) -> list[CharSpan]:
    return [CharSpan(int(a), int(b), str(lab)) for a, b, lab in json.loads(raw)]


def gold_rows(batch: pl.DataFrame, *, recorded_at: datetime) -> pl.DataFrame:
    """The rows of a collected batch that carry gold spans, in GOLD_SCHEMA (empty when none do)."""
    if GOLD_COLUMN not in batch.columns:
        return pl.DataFrame(schema=GOLD_SCHEMA)
    rows = batch.filter(pl.col(GOLD_COLUMN).is_not_null()).unique(
        "article_id", keep="last", maintain_order=True
    )
    return pl.DataFrame(
        {
            "article_id": rows["article_id"],
            "source": rows["source"],
            "text": rows["text"],
            "entities": rows[GOLD_COLUMN],
            "recorded_at": [recorded_at] * len(rows),
        },
        schema=GOLD_SCHEMA,
    )


def record_gold(wh: Warehouse, rows: pl.DataFrame) -> int:
    """Upsert gold rows by article_id (a changed record replaces its own row; no other row is
    touched, nothing is ever removed otherwise). Returns how many rows were written."""
    if rows.is_empty():
        return 0
    with wh.transaction(lock=(GOLD_TABLE,)) as s:
        s.create_table(GOLD_TABLE, GOLD_SCHEMA, primary_key="article_id")
        s.register("_gold_rows", rows)
        s.execute(f"DELETE FROM {GOLD_TABLE} WHERE article_id IN (SELECT article_id FROM _gold_rows)")
        s.execute(
            f"INSERT INTO {GOLD_TABLE} ({', '.join(GOLD_SCHEMA)}) SELECT {', '.join(GOLD_SCHEMA)} FROM _gold_rows"
        )
        s.unregister("_gold_rows")
    log.info("recorded gold entity spans of %d articles in %s", len(rows), GOLD_TABLE)
    return len(rows)


def read_source_gold(wh: Warehouse) -> list[GoldSentence]:
    """The gold sentences carried by sources (id = article_id), [] before any was ingested."""
    if not wh.table_exists(GOLD_TABLE):
        return []
    rows = wh.query(f"SELECT article_id, source, text, entities FROM {GOLD_TABLE} ORDER BY article_id")
    return [
        GoldSentence(aid, text, spans_from_json(ents), {"source": src})
        for aid, src, text, ents in rows.iter_rows()
    ]


def page_sentence_id(article_id: str, sentence: int) -> str:
    return f"{article_id}#{sentence}"


@dataclass(frozen=True)
class TrustedSentences:
    """sentences: every trusted sentence (spans of unknown types left out, reported in problems).

    per_origin: how many came from files / source / page; article_ids: the articles they belong to
    (source gold and page answers; gold files name no warehouse article); texts: their texts."""

    sentences: list[GoldSentence]
    per_origin: dict[str, int]
    article_ids: set[str]
    texts: set[str]
    problems: list[str] = field(default_factory=list)


def collect_trusted_sentences(
    *,
    files: list[GoldSentence],
    source: list[GoldSentence],
    page: list[SpanAnswer],
    types: list[str],
) -> TrustedSentences:
    """All trusted sentences the entity evaluation and gate read. A span whose type is not (or no
    longer) configured is dropped from its sentence and reported, never silently scored as wrong."""
    known = set(types)
    problems: list[str] = []
    out: list[GoldSentence] = []
    counts = {"files": 0, "source": 0, "page": 0}

    def keep(origin: str, s: GoldSentence) -> None:
        unknown = [e for e in s.entities if e.label not in known]
        if unknown:
            shown = ", ".join(f"{s.text[e.start : e.end]!r} [{e.label}]" for e in unknown[:5])
            problems.append(
                f"{origin} sentence {s.id}: {len(unknown)} span(s) of types not in entities.types "
                f"({shown}); those spans are not scored"
            )
        out.append(
            GoldSentence(
                s.id, s.text, [e for e in s.entities if e.label in known], {**s.meta, "origin": origin}
            )
        )
        counts[origin] += 1

    for s in files:
        keep("files", s)
    for s in source:
        keep("source", s)
    for a in page:
        if a.text is None or a.spans is None:
            continue
        keep(
            "page",
            GoldSentence(
                page_sentence_id(a.article_id, a.sentence), a.text, list(a.spans), {"labeller": a.labeller}
            ),
        )
    ids = {s.id for s in source} | {a.article_id for a in page}
    texts = {s.text for s in out}
    if problems:
        log.warning("trusted entity sentences: %d problems, e.g. %s", len(problems), problems[0])
    return TrustedSentences(out, counts, ids, texts, problems)


def hold_out_trusted(
    split: dict[str, str],
    *,
    article_ids: list[str],
    near_duplicate_of: list[str | None],
    content_hashes: list[str | None],
    trusted_ids: set[str],
) -> dict[str, str]:
    """`split` with every story (article + near-duplicates + exact copies) that holds a trusted
    article moved to TRUSTED_SPLIT: its sentences are then neither trained on nor counted as
    held-out agreement."""
    keys = group_keys(article_ids, near_duplicate_of, content_hashes)
    trusted_keys = {k for aid, k in zip(article_ids, keys, strict=True) if aid in trusted_ids}
    return {
        aid: TRUSTED_SPLIT if k in trusted_keys else split[aid]
        for aid, k in zip(article_ids, keys, strict=True)
    }


def drop_trusted(rows: pl.DataFrame, trusted: TrustedSentences) -> tuple[pl.DataFrame, int]:
    """Training rows (article_id, text, ...) without any sentence of a trusted article or with a
    trusted text: the last guard before training, whatever state entity_splits was built in."""
    keep = ~(
        pl.col("article_id").is_in(sorted(trusted.article_ids)) | pl.col("text").is_in(sorted(trusted.texts))
    )
    kept = rows.filter(keep)
    return kept, len(rows) - len(kept)
