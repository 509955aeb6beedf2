"""Data-quality checks over raw and labelled articles, as plain results the Dagster layer shows.

Each check is a pure function returning a `QualityResult`. Severity says what a failure means:
WARN = a person should look (duplicates, conflicts, odd lengths, a thin class share); ERROR =
training would be meaningless (too few rows of a class, or no input at all) and should block.
An empty input is a failed result, never a vacuous pass. Thresholds come from `QualityConfig`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from newsml_pipeline.settings import QualityConfig

log = logging.getLogger(__name__)

Severity = Literal["WARN", "ERROR"]
_EXAMPLES = 10


@dataclass(frozen=True)
class QualityResult:
    """One check's outcome; `metadata` is JSON-able (counts, shares, examples)."""

    name: str
    passed: bool
    severity: Severity
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _require(frame: pl.DataFrame, cols: tuple[str, ...], check: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"quality check {check!r}: input lacks columns {missing} (has {frame.columns})")


def _empty(name: str, severity: Severity, what: str) -> QualityResult:
    return QualityResult(
        name=name,
        passed=False,
        severity=severity,
        description=f"no {what} to check: the input is empty (materialize the upstream asset first)",
        metadata={"rows": 0},
    )


def check_coverage(labeled: pl.DataFrame, *, cfg: QualityConfig) -> QualityResult:
    """Share of articles the labeler labelled (label not null) ≥ min_coverage (WARN)."""
    name = "coverage"
    _require(labeled, ("label",), name)
    if labeled.height == 0:
        return _empty(name, "WARN", "labelled articles")
    covered = labeled.height - labeled["label"].null_count()
    cov = covered / labeled.height
    ok = cov >= cfg.min_coverage
    return QualityResult(
        name=name,
        passed=ok,
        severity="WARN",
        description=(
            f"{cov:.1%} of {labeled.height} articles got an auto-label "
            f"({'≥' if ok else 'below'} the minimum {cfg.min_coverage:.0%})"
        ),
        metadata={
            "rows": labeled.height,
            "labelled": covered,
            "coverage": round(cov, 4),
            "min": cfg.min_coverage,
        },
    )


def _class_counts(labeled: pl.DataFrame, labels: list[str]) -> dict[str, int]:
    counts = dict(labeled.drop_nulls("label").group_by("label").len().iter_rows())
    return {lab: int(counts.get(lab, 0)) for lab in labels} | {
        k: int(v) for k, v in counts.items() if k not in labels
    }


def check_class_balance(labeled: pl.DataFrame, *, labels: list[str], cfg: QualityConfig) -> QualityResult:
    """Every class holds ≥ min_class_share of the labelled rows (WARN: a skewed labeler or feed)."""
    name = "class_balance"
    _require(labeled, ("label",), name)
    counts = _class_counts(labeled, labels)
    total = sum(counts.values())
    if total == 0:
        return _empty(name, "WARN", "auto-labelled articles")
    shares = {k: round(v / total, 4) for k, v in counts.items()}
    thin = {k: s for k, s in shares.items() if k in labels and s < cfg.min_class_share}
    unknown = sorted(k for k in counts if k not in labels)
    ok = not thin and not unknown
    parts = []
    if thin:
        parts.append(
            "classes below the minimum share "
            f"{cfg.min_class_share:.0%}: " + ", ".join(f"{k} {s:.1%}" for k, s in sorted(thin.items()))
        )
    if unknown:
        parts.append(f"labels outside the schema: {unknown} (re-label after a schema change)")
    return QualityResult(
        name=name,
        passed=ok,
        severity="WARN",
        description="; ".join(parts)
        if parts
        else f"every class has ≥ {cfg.min_class_share:.0%} of {total} labels",
        metadata={
            "counts": counts,
            "shares": shares,
            "below_min_share": sorted(thin),
            "outside_schema": unknown,
        },
    )


def check_min_class_count(labeled: pl.DataFrame, *, labels: list[str], cfg: QualityConfig) -> QualityResult:
    """Every class has ≥ min_class_count labelled rows (ERROR: a class nobody can learn)."""
    name = "min_class_count"
    _require(labeled, ("label",), name)
    counts = _class_counts(labeled, labels)
    if labeled.height == 0:
        return _empty(name, "ERROR", "labelled articles")
    short = {k: counts[k] for k in labels if counts[k] < cfg.min_class_count}
    return QualityResult(
        name=name,
        passed=not short,
        severity="ERROR",
        description=(
            "too few rows to train: "
            + ", ".join(f"{k} has {v}" for k, v in short.items())
            + f" (needs ≥ {cfg.min_class_count}); check the class's keywords/description or add feedback"
            if short
            else f"every class has ≥ {cfg.min_class_count} labelled rows"
        ),
        metadata={"counts": counts, "below_min": short, "min": cfg.min_class_count},
    )


def check_duplicates(raw: pl.DataFrame, *, cfg: QualityConfig) -> QualityResult:
    """Exact (shared content_hash) and near (near_duplicate_of set) duplicates ≤ max_duplicate_share (WARN)."""
    name = "duplicates"
    _require(raw, ("article_id", "content_hash", "near_duplicate_of"), name)
    if raw.height == 0:
        return _empty(name, "WARN", "articles")
    exact_rows = raw.filter(pl.col("content_hash").is_not_null() & pl.col("content_hash").is_duplicated())
    # Rows beyond the first of each content hash are the redundant ones.
    exact = exact_rows.height - exact_rows["content_hash"].n_unique() if exact_rows.height else 0
    near_rows = raw.filter(pl.col("near_duplicate_of").is_not_null())
    near = near_rows.height
    share = (exact + near) / raw.height
    ok = share <= cfg.max_duplicate_share
    return QualityResult(
        name=name,
        passed=ok,
        severity="WARN",
        description=(
            f"{exact} exact and {near} near duplicates in {raw.height} articles ({share:.1%}; "
            f"{'within' if ok else 'above'} the tolerated {cfg.max_duplicate_share:.0%})"
        ),
        metadata={
            "rows": raw.height,
            "exact_duplicates": exact,
            "near_duplicates": near,
            "share": round(share, 4),
            "max_share": cfg.max_duplicate_share,
            "exact_examples": exact_rows.sort("content_hash", "article_id")
            .select("article_id", "content_hash")
            .head(_EXAMPLES)
            .to_dicts(),
            "near_examples": near_rows.select("article_id", "near_duplicate_of").head(_EXAMPLES).to_dicts(),
        },
    )


def check_label_conflicts(labeled: pl.DataFrame, gold: pl.DataFrame, *, cfg: QualityConfig) -> QualityResult:
    """Auto-labels that disagree with trusted labels (feedback or source gold) (WARN).

    labeled: article_id, label (auto; null = abstain). gold: article_id, label (+ label_origin).
    The share is over articles that have both a gold and an auto-label.
    """
    name = "label_conflicts"
    _require(labeled, ("article_id", "label"), name)
    _require(gold, ("article_id", "label"), name)
    extra = ["label_origin"] if "label_origin" in gold.columns else []
    both = (
        labeled.select("article_id", pl.col("label").alias("auto_label"))
        .join(gold.select("article_id", pl.col("label").alias("gold_label"), *extra), on="article_id")
        .drop_nulls(["auto_label", "gold_label"])
    )
    if both.height == 0:
        return _empty(name, "WARN", "articles with both an auto-label and a gold label")
    conflicts = both.filter(pl.col("auto_label") != pl.col("gold_label")).sort("article_id")
    share = conflicts.height / both.height
    ok = share <= cfg.max_conflict_share
    pairs = conflicts.group_by("gold_label", "auto_label").len().sort("len", descending=True)
    return QualityResult(
        name=name,
        passed=ok,
        severity="WARN",
        description=(
            f"{conflicts.height} of {both.height} gold-labelled articles have a different auto-label "
            f"({share:.1%}; {'within' if ok else 'above'} the tolerated {cfg.max_conflict_share:.0%})"
        ),
        metadata={
            "compared": both.height,
            "conflicts": conflicts.height,
            "share": round(share, 4),
            "max_share": cfg.max_conflict_share,
            "top_confusions": [
                {"gold": g, "auto": a, "count": n} for g, a, n in pairs.head(_EXAMPLES).iter_rows()
            ],
            "examples": conflicts.head(_EXAMPLES).to_dicts(),
        },
    )


def check_text_lengths(raw: pl.DataFrame, *, cfg: QualityConfig) -> QualityResult:
    """Texts shorter than min_text_chars or longer than max_text_chars ≤ max_bad_length_share (WARN)."""
    name = "text_lengths"
    _require(raw, ("article_id", "text"), name)
    if raw.height == 0:
        return _empty(name, "WARN", "articles")
    lengths = raw.select("article_id", pl.col("text").fill_null("").str.len_chars().alias("chars"))
    short = lengths.filter(pl.col("chars") < cfg.min_text_chars)
    long = lengths.filter(pl.col("chars") > cfg.max_text_chars)
    share = (short.height + long.height) / raw.height
    ok = share <= cfg.max_bad_length_share
    return QualityResult(
        name=name,
        passed=ok,
        severity="WARN",
        description=(
            f"{short.height} texts under {cfg.min_text_chars} chars and {long.height} over "
            f"{cfg.max_text_chars} in {raw.height} articles ({share:.1%}; "
            f"{'within' if ok else 'above'} the tolerated {cfg.max_bad_length_share:.0%})"
        ),
        metadata={
            "rows": raw.height,
            "too_short": short.height,
            "too_long": long.height,
            "share": round(share, 4),
            "median_chars": float(lengths["chars"].median()),
            "short_examples": short.sort("chars").head(_EXAMPLES).to_dicts(),
            "long_examples": long.sort("chars", descending=True).head(_EXAMPLES).to_dicts(),
        },
    )


def run_quality_checks(
    *,
    raw: pl.DataFrame,
    labeled: pl.DataFrame,
    gold: pl.DataFrame | None,
    labels: list[str],
    cfg: QualityConfig,
) -> list[QualityResult]:
    """All checks at once (for a report or a test); asset checks can call the functions one by one."""
    results = [
        check_coverage(labeled, cfg=cfg),
        check_class_balance(labeled, labels=labels, cfg=cfg),
        check_min_class_count(labeled, labels=labels, cfg=cfg),
        check_duplicates(raw, cfg=cfg),
        check_text_lengths(raw, cfg=cfg),
    ]
    if gold is not None:
        results.append(check_label_conflicts(labeled, gold, cfg=cfg))
    for r in results:
        if not r.passed:
            log.warning("quality check %s failed (%s): %s", r.name, r.severity, r.description)
    return results
