"""Data-quality checks on raw and labeled articles, as plain results the Dagster layer maps to
asset checks. WARN = a person should look; ERROR = training on this would be meaningless
(the lead makes those checks blocking). Thresholds come from `QualityConfig`.

Every check returns a `CheckResult(passed, severity, description, metadata)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from newsml_pipeline.settings import QualityConfig

Severity = Literal["WARN", "ERROR"]


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    severity: Severity
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _need(df: pl.DataFrame, cols: Sequence[str], check: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"quality check {check}: frame lacks columns {missing} (has {df.columns})")


def check_coverage(labeled: pl.DataFrame, *, min_coverage: float) -> CheckResult:
    """Share of articles that got a label (not abstained) ≥ min_coverage."""
    _need(labeled, ["label"], "coverage")
    n = labeled.height
    cov = (labeled["label"].is_not_null().sum() / n) if n else 0.0
    ok = n > 0 and cov >= min_coverage
    return CheckResult(
        "label_coverage",
        ok,
        "WARN",
        f"{cov:.1%} of {n} articles labelled (minimum {min_coverage:.0%})",
        {"coverage": float(cov), "n_articles": n, "min_coverage": min_coverage},
    )


def class_counts(labeled: pl.DataFrame, *, labels: Sequence[str], column: str = "label") -> dict[str, int]:
    """Rows per schema class (0 for absent classes); rows whose label is null are not counted."""
    counts = dict.fromkeys(labels, 0)
    for row in labeled.filter(pl.col(column).is_not_null())[column].value_counts().to_dicts():
        if row[column] in counts:
            counts[row[column]] = int(row["count"])
    return counts


def check_class_balance(
    labeled: pl.DataFrame, *, labels: Sequence[str], min_class_share: float
) -> CheckResult:
    """Every class holds ≥ min_class_share of the labelled rows."""
    _need(labeled, ["label"], "class_balance")
    counts = class_counts(labeled, labels=labels)
    total = sum(counts.values())
    shares = {c: (v / total if total else 0.0) for c, v in counts.items()}
    low = sorted(c for c, s in shares.items() if s < min_class_share)
    return CheckResult(
        "class_balance",
        not low and total > 0,
        "WARN",
        f"classes below {min_class_share:.0%} of labelled rows: {low}"
        if low
        else f"every class ≥ {min_class_share:.0%}",
        {"shares": shares, "counts": counts, "low_classes": low},
    )


def check_min_class_count(
    labeled: pl.DataFrame, *, labels: Sequence[str], min_class_count: int, column: str = "label"
) -> CheckResult:
    """ERROR when a class has fewer than min_class_count labelled rows: a classifier cannot
    learn (or be evaluated on) a class it barely sees."""
    _need(labeled, [column], "min_class_count")
    counts = class_counts(labeled, labels=labels, column=column)
    low = {c: v for c, v in counts.items() if v < min_class_count}
    return CheckResult(
        "min_class_count",
        not low,
        "ERROR",
        f"classes with fewer than {min_class_count} rows: {low}"
        if low
        else f"every class has ≥ {min_class_count} rows",
        {"counts": counts, "min_class_count": min_class_count, "low_classes": sorted(low)},
    )


def check_duplicates(raw: pl.DataFrame, *, max_share: float = 0.0) -> list[CheckResult]:
    """Exact duplicates (same content_hash) and near duplicates (near_duplicate_of set), each a
    WARN when their share exceeds max_share. They are kept in one split by `build_splits`, but a
    high rate points at a feed or extraction problem."""
    _need(raw, ["article_id", "content_hash"], "duplicates")
    n = raw.height
    dup_groups = (
        raw.filter(pl.col("content_hash").is_not_null())
        .group_by("content_hash")
        .agg(pl.col("article_id").sort().alias("ids"))
        .filter(pl.col("ids").list.len() > 1)
    )
    exact = int(dup_groups["ids"].list.len().sum() - dup_groups.height) if dup_groups.height else 0
    examples = [ids[:3] for ids in dup_groups["ids"].head(5).to_list()]
    out = [
        CheckResult(
            "exact_duplicates",
            n == 0 or exact / n <= max_share,
            "WARN",
            f"{exact} of {n} articles repeat another's exact text",
            {"exact_duplicates": exact, "groups": dup_groups.height, "examples": examples},
        )
    ]
    if "near_duplicate_of" in raw.columns:
        near = raw.filter(pl.col("near_duplicate_of").is_not_null())
        out.append(
            CheckResult(
                "near_duplicates",
                n == 0 or near.height / n <= max_share,
                "WARN",
                f"{near.height} of {n} articles are near-duplicates of another",
                {
                    "near_duplicates": near.height,
                    "examples": near.select("article_id", "near_duplicate_of").head(5).rows(),
                },
            )
        )
    return out


def check_text_lengths(
    raw: pl.DataFrame, *, min_chars: int, max_chars: int, max_share: float = 0.0
) -> CheckResult:
    """WARN on texts shorter than min_chars (teasers, failed extraction) or longer than max_chars
    (pages that swallowed comments or listings)."""
    _need(raw, ["article_id", "text"], "text_lengths")
    lengths = raw.select("article_id", pl.col("text").fill_null("").str.len_chars().alias("n"))
    short = lengths.filter(pl.col("n") < min_chars)
    long = lengths.filter(pl.col("n") > max_chars)
    bad = short.height + long.height
    return CheckResult(
        "text_lengths",
        bad == 0,
        "WARN",
        f"{short.height} texts shorter than {min_chars} chars, {long.height} longer than {max_chars}",
        {
            "too_short": short.height,
            "too_long": long.height,
            "short_examples": short["article_id"].head(5).to_list(),
            "long_examples": long["article_id"].head(5).to_list(),
            "median_chars": float(lengths["n"].median()) if lengths.height else 0.0,
        },
    )


def check_feedback_conflicts(
    labeled: pl.DataFrame, trusted: pl.DataFrame, *, max_share: float = 0.0
) -> CheckResult:
    """WARN where a trusted label (feedback or source gold) disagrees with the auto-label; the
    disagreement rate is the auto-labeller's visible error rate."""
    _need(labeled, ["article_id", "label"], "feedback_conflicts")
    _need(trusted, ["article_id", "label"], "feedback_conflicts")
    joined = (
        labeled.select("article_id", "label")
        .join(trusted.select("article_id", pl.col("label").alias("trusted")), on="article_id", how="inner")
        .filter(pl.col("label").is_not_null())
    )
    conflicts = joined.filter(pl.col("label") != pl.col("trusted"))
    n = joined.height
    return CheckResult(
        "feedback_conflicts",
        conflicts.height == 0,
        "WARN",
        f"{conflicts.height} of {n} auto-labelled articles with a trusted label disagree with it",
        {
            "conflicts": conflicts.height,
            "compared": n,
            "agreement": float(1 - conflicts.height / n) if n else None,
            "examples": conflicts.head(10).rows(),
        },
    )


def run_quality_checks(
    *,
    raw: pl.DataFrame,
    labeled: pl.DataFrame,
    labels: Sequence[str],
    quality_cfg: QualityConfig,
    trusted: pl.DataFrame | None = None,
) -> list[CheckResult]:
    """All checks above with the configured thresholds (feedback conflicts only with `trusted`)."""
    results = [
        check_coverage(labeled, min_coverage=quality_cfg.min_coverage),
        check_class_balance(labeled, labels=labels, min_class_share=quality_cfg.min_class_share),
        check_min_class_count(labeled, labels=labels, min_class_count=quality_cfg.min_class_count),
        *check_duplicates(raw, max_share=quality_cfg.max_duplicate_share),
        check_text_lengths(
            raw,
            min_chars=quality_cfg.min_text_chars,
            max_chars=quality_cfg.max_text_chars,
            max_share=quality_cfg.max_bad_length_share,
        ),
    ]
    if trusted is not None:
        results.append(check_feedback_conflicts(labeled, trusted, max_share=quality_cfg.max_conflict_share))
    return results
