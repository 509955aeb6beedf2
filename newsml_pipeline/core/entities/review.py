"""Which auto-labelled sentences are most worth a person's correction: where the sources disagree.

A span is *contested* when some source that speaks on its characters does not propose exactly it
(same start, end and type). The pretrained NER reads every token, so it always speaks (no span =
it says "not an entity"); a rule source (gazetteer, patterns) speaks only where it matched. Tokens
the label model abstained on are disagreement it could not settle. A sentence's score is its
contested spans plus its abstained tokens; the queue takes the highest scores of the day.
"""

from __future__ import annotations

import logging
from datetime import date

import polars as pl

from newsml_pipeline.core.entities.sources import PRETRAINED
from newsml_pipeline.core.entities.spans import CharSpan

log = logging.getLogger(__name__)

QUEUE_TABLE = "entity_review_queue"
QUEUE_SCHEMA: dict[str, pl.DataType] = {
    "article_id": pl.String(),
    "partition_date": pl.Date(),
    "sentence": pl.Int64(),
    "text": pl.String(),
    "proposed": pl.String(),  # JSON [[start, end, label]]: the label model's spans, the page's starting point
    "proposals": pl.String(),  # JSON {source: [[start, end, label]]}
    "disagreement": pl.Float64(),
    "reason": pl.String(),
    "rank": pl.Int64(),
}


def _overlaps(a: CharSpan, b: CharSpan) -> bool:
    return a.start < b.end and b.start < a.end


def disagreement(
    text: str, proposals: dict[str, list[CharSpan]], missing: list[tuple[int, int]]
) -> tuple[float, str]:
    """(score, a reason a person can read) for one sentence: contested spans + abstained tokens."""
    union = sorted({s for spans in proposals.values() for s in spans})
    contested: list[str] = []
    for s in union:
        speaking = [
            name
            for name, spans in proposals.items()
            if name == PRETRAINED or any(_overlaps(s, o) for o in spans)
        ]
        backers = [name for name in speaking if s in proposals[name]]
        if len(backers) < len(speaking):
            contested.append(f"{'+'.join(backers)}: {text[s.start : s.end]!r} {s.label}")
    score = float(len(contested) + len(missing))
    parts = []
    if contested:
        parts.append(f"{len(contested)} contested span(s): " + "; ".join(contested[:4]))
    if missing:
        parts.append(f"{len(missing)} token(s) the label model abstained on")
    return score, ("; ".join(parts) if parts else "the sources agree (a check)")


def select_sentences(
    rows: pl.DataFrame,
    *,
    day: date,
    budget: int,
    proposals: list[dict[str, list[CharSpan]]],
    missing: list[list[tuple[int, int]]],
) -> pl.DataFrame:
    """Up to `budget` sentences of `rows` (article_id, sentence, text, entities JSON, proposals JSON;
    `proposals` / `missing` parsed, aligned with the rows) in QUEUE_SCHEMA, most contested first
    (ties: article_id, sentence, so the order is deterministic)."""
    if len(proposals) != len(rows) or len(missing) != len(rows):
        raise ValueError(f"{len(proposals)} proposals / {len(missing)} missing for {len(rows)} rows")
    if rows.is_empty() or budget < 1:
        return pl.DataFrame(schema=QUEUE_SCHEMA)
    scored = [
        disagreement(t, p, m) for t, p, m in zip(rows["text"].to_list(), proposals, missing, strict=True)
    ]
    frame = rows.select("article_id", "sentence", "text", pl.col("entities").alias("proposed"), "proposals")
    frame = (
        frame.with_columns(
            pl.Series("disagreement", [s for s, _ in scored], dtype=pl.Float64()),
            pl.Series("reason", [r for _, r in scored], dtype=pl.String()),
        )
        .sort(["disagreement", "article_id", "sentence"], descending=[True, False, False])
        .head(budget)
    )
    out = frame.with_columns(
        pl.lit(day, pl.Date()).alias("partition_date"),
        pl.int_range(1, len(frame) + 1, dtype=pl.Int64()).alias("rank"),
    ).select(list(QUEUE_SCHEMA))
    log.info(
        "entity review queue %s: %d of %d sentences, %d contested",
        day,
        len(out),
        len(rows),
        int((out["disagreement"] > 0).sum()),
    )
    return out.cast(QUEUE_SCHEMA)
