"""Trusted labels from every road in: the labelling page's store, feedback files, source gold.

One function, used by the `label_feedback` asset and by the labelling page's progress, so the
counts a labeller sees are the ones the next `label_feedback` materialization will produce.

Precedence, per article: a page answer (newest: written the moment a person clicks) over a
feedback-file line, and any human feedback over the gold label a source carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from newsml_pipeline.core.labeling.feedback import (
    ACCEPTED_SCHEMA,
    FeedbackResult,
    merge_gold,
    parse_feedback_dir,
)
from newsml_pipeline.core.labeling.feedback_store import page_feedback, read_current_labels, store_path


@dataclass(frozen=True)
class TrustedLabels:
    """gold: article_id, label, label_origin (feedback/source), one row per article.

    from_page / from_files: how many feedback rows came from the page and from files.
    problems / overridden: one human-readable line each (file:line or labels.sqlite:answer id).
    """

    gold: pl.DataFrame
    from_page: int
    from_files: int
    problems: list[str] = field(default_factory=list)
    overridden: list[str] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def overlay_feedback(files: pl.DataFrame, page: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """File feedback with the page's answers on top; returns (accepted, overridden lines)."""
    cols = list(ACCEPTED_SCHEMA)
    both = files.select(cols).join(
        page.select("article_id", pl.col("label").alias("page_label")), on="article_id"
    )
    overridden = [
        f"{r['source_file']}:{r['line']} ({r['article_id']} → {r['label']}) overridden by the labelling page "
        f"(→ {r['page_label']})"
        for r in both.iter_rows(named=True)
    ]
    merged = pl.concat(
        [files.select(cols).join(page, on="article_id", how="anti"), page.select(cols)], how="vertical"
    )
    return merged.cast(ACCEPTED_SCHEMA).sort("article_id"), overridden


def collect_trusted_labels(
    *,
    known: pl.DataFrame,
    feedback_dir: Path,
    labels: list[str],
    files: FeedbackResult | None = None,
    current: pl.DataFrame | None = None,
) -> TrustedLabels:
    """Every trusted label for the articles in `known` (raw_articles: article_id, url, gold_label).

    `files` / `current`: the feedback files already parsed and the store's current labels already
    read (the labelling page caches the first); by default both are read from `feedback_dir`.
    """
    parsed = files or parse_feedback_dir(
        feedback_dir, labels=labels, known_articles=known.select("article_id", "url")
    )
    page, page_problems = page_feedback(
        read_current_labels(store_path(feedback_dir)) if current is None else current,
        labels=labels,
        known_ids=set(known["article_id"].to_list()),
    )
    accepted, page_overrides = overlay_feedback(parsed.accepted, page)
    raw_gold = known.filter(pl.col("gold_label").is_in(labels)).select("article_id", "gold_label")
    gold, conflicts = merge_gold(raw_gold, accepted)
    return TrustedLabels(
        gold=gold,
        from_page=len(page),
        from_files=len(accepted) - len(page),
        problems=[*parsed.problems, *page_problems],
        overridden=[*parsed.overridden, *page_overrides],
        conflicts=conflicts,
        files=parsed.files,
    )
