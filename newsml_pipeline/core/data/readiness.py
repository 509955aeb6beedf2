"""Can a retrain run now? The one answer the schedule, the drift sensor and `dataset_splits` share.

A retrain either runs to a gate verdict or does not start (DESIGN §8). What stops it before the
gate is always the same: the splits cannot be built (a class without enough rows in train, val
or test; no trusted or silver test rows) or the train split fails the blocking `min_class_count`
check. `assess_splits` answers by building the splits exactly as `dataset_splits` does, so the
check that lets a run start and the asset that would then fail cannot disagree; the schedule and
the sensor turn a `not ready` into a skip whose reason names what is missing, `dataset_splits`
raises the same error when run by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from newsml_pipeline.core.data.quality import QualityResult, check_min_class_count
from newsml_pipeline.core.data.splits import SplitError, build_evaluated_splits
from newsml_pipeline.settings import NewsmlConfig

SPLIT_INPUTS = ("raw_articles", "labeled_articles")


@dataclass(frozen=True)
class SplitsAssessment:
    """The splits a retrain would train on, or why there are none yet.

    ready: True when `dataset_splits` would materialize and pass its blocking check.
    missing: one line per thing that stops it (a table, a class short in a split, the check).
    error: the SplitError `dataset_splits` raises (None when the splits were built).
    splits / report: what `build_evaluated_splits` returned (None on a SplitError or no input).
    train_check: `min_class_count` on the train split (None when no splits were built).
    """

    ready: bool
    missing: tuple[str, ...]
    error: SplitError | None = None
    splits: pl.DataFrame | None = None
    report: dict[str, Any] | None = None
    train_check: QualityResult | None = None

    @property
    def reason(self) -> str:
        """One line for a SkipReason: what is missing, or that the splits can be built."""
        if self.ready:
            return "the splits can be built"
        return "the splits cannot be built yet: " + "; ".join(self.missing)


def missing_inputs(missing_tables: list[str]) -> SplitsAssessment:
    """Not ready because tables the splits read do not exist yet."""
    return SplitsAssessment(
        ready=False,
        missing=(f"{', '.join(missing_tables)} not materialized (run ingest_job for some days first)",),
    )


def _split_error_lines(error: SplitError) -> tuple[str, ...]:
    """The 'class X has n rows in split (needs ≥ m)' lines of a SplitError, else its first line."""
    lines = [ln.strip() for ln in str(error).splitlines()]
    classes = tuple(ln for ln in lines if ln.startswith("class "))
    return classes or (lines[0],)


def verdict_needs_label_issues(config: NewsmlConfig) -> bool:
    """Whether the label-issue pass can change `ready` (else a tick may skip its cross-fitting).

    The pass drops only auto-labelled train rows and never takes a class below
    `splits.min_per_class_train` (core.labeling.label_issues), so a class at or above that floor
    stays there and one below it stays below: the SplitError verdict is the same with or without
    it, val/test rows are untouched, and so is the gold/silver choice. Only a `min_class_count`
    check stricter than that floor could see the difference.
    """
    return (
        config.splits.drop_label_issues and config.quality.min_class_count > config.splits.min_per_class_train
    )


def assess_splits(
    frame: pl.DataFrame, *, config: NewsmlConfig, today: date, verdict_only: bool = False
) -> SplitsAssessment:
    """Build the splits of `frame` (labeled ⋈ raw ⋈ feedback, see build_splits) as dataset_splits does.

    verdict_only: the caller wants `ready` / `missing`, not the rows (the schedule's and the
    sensor's ticks): the label-issue pass, a cross-fitted TF-IDF model and most of the cost, is
    left out where it cannot change the verdict (`verdict_needs_label_issues`); the returned
    splits then still hold the rows it would drop. Configuration mistakes (a bad input frame,
    fractions that leave no train rows) raise ValueError: they are not "not yet", they are broken.
    """
    config_used = config
    if verdict_only and config.splits.drop_label_issues and not verdict_needs_label_issues(config):
        config_used = config.model_copy(
            update={"splits": config.splits.model_copy(update={"drop_label_issues": False})}
        )
    try:
        splits, report = build_evaluated_splits(
            frame,
            splits_cfg=config_used.splits,
            gate_cfg=config.gate,
            labels=config.labels.names,
            today=today,
        )
    except SplitError as e:
        return SplitsAssessment(ready=False, missing=_split_error_lines(e), error=e)
    train_check = check_min_class_count(
        splits.filter(pl.col("split") == "train"), labels=config.labels.names, cfg=config.quality
    )
    missing = () if train_check.passed else (f"train split: {train_check.description}",)
    return SplitsAssessment(
        ready=train_check.passed,
        missing=missing,
        splits=splits,
        report=report,
        train_check=train_check,
    )
