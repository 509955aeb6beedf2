"""`build_splits`: labeled articles over a rolling window → deterministic train / val / test.

Rules (DESIGN.md §4, issue #3):
- Window: rows whose partition_date lies in (today - window_days, today]; rows without a date
  are kept (they cannot be placed in time); with `window_days: null` everything is kept.
- Groups: exact duplicates (same content_hash) and near-duplicate chains (near_duplicate_of,
  followed to its root) form one group, and a group never straddles two splits.
- Assignment: a salted SHA-1 of the group key maps to u in [0, 1). Only groups holding a
  trusted (gold) label can go to evaluation: u < test_fraction → test, u < test + val → val,
  else train. It depends on nothing but the group itself, so adding articles never moves old
  ones (unless a new article merges two groups, which must then share a split); because u is
  uniform and independent of the label, every class gets the same expected fractions
  (stratified in expectation, without a data-dependent quantile that would move rows).
- Labels: val/test rows carry their trusted label (label_source = gold); group members without
  one are left out of evaluation. Train rows carry the auto-label (label_source = auto) —
  gold-labelled train rows too, unless `splits.train_on_gold`, where they carry the gold label
  (label_source = gold). Train rows the labeller abstained on are left out.
- Each class needs `min_per_class_train` train rows and `min_per_class_eval` rows in val and in
  test, else `SplitError` names every class/split that falls short.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from newsml_pipeline.core.data.schema import DATASET_SPLITS, conform
from newsml_pipeline.settings import SplitsConfig

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class SplitError(ValueError):
    """The window does not hold enough rows per class and split to train and evaluate."""


def split_fraction(key: str, *, salt: str) -> float:
    """Deterministic u in [0, 1) from a salted SHA-1 of `key`."""
    digest = hashlib.sha1(f"{salt}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def group_keys(
    article_ids: Sequence[str], content_hashes: Sequence[str | None], near_duplicate_of: Sequence[str | None]
) -> list[str]:
    """Group key per article: near-duplicate chains followed to their root and exact duplicates
    (same content_hash) joined; the key is the smallest base key in the group, where an article's
    base key is its root's content hash (else the root's id). Roots are older articles, so new
    articles do not change old articles' keys."""
    pointer = {a: p for a, p in zip(article_ids, near_duplicate_of, strict=True) if p and p != a}
    hash_of = dict(zip(article_ids, content_hashes, strict=True))

    def root(a: str) -> str:
        seen = {a}
        while a in pointer and pointer[a] not in seen:
            a = pointer[a]
            seen.add(a)
        return a

    base = {}
    for a in article_ids:
        r = root(a)
        base[a] = f"h:{hash_of[r]}" if hash_of.get(r) else f"id:{r}"
    uf = _UnionFind()
    first_with_hash: dict[str, str] = {}
    for a, h in zip(article_ids, content_hashes, strict=True):
        uf.find(a)
        if h:
            if h in first_with_hash:
                uf.union(a, first_with_hash[h])
            else:
                first_with_hash[h] = a
        if a in pointer and pointer[a] in hash_of:
            uf.union(a, pointer[a])
    best: dict[str, str] = {}
    for a in article_ids:
        r = uf.find(a)
        if r not in best or base[a] < best[r]:
            best[r] = base[a]
    return [best[uf.find(a)] for a in article_ids]


def _window(df: pl.DataFrame, *, window_days: int | None, today: date) -> tuple[pl.DataFrame, dict[str, Any]]:
    info: dict[str, Any] = {"window_days": window_days, "today": today.isoformat()}
    if (
        window_days is None
        or "partition_date" not in df.columns
        or df["partition_date"].null_count() == df.height
    ):
        info["window_applied"] = False
        return df, info
    start = today - timedelta(days=window_days)
    keep = pl.col("partition_date").is_null() | (
        (pl.col("partition_date") > start) & (pl.col("partition_date") <= today)
    )
    out = df.filter(keep)
    info.update(
        window_applied=True,
        window_start_exclusive=start.isoformat(),
        dropped_outside_window=df.height - out.height,
        undated_rows=int(out["partition_date"].null_count()),
    )
    return out, info


def build_splits(
    labeled_with_raw: pl.DataFrame,
    *,
    splits_cfg: SplitsConfig,
    labels: Sequence[str],
    today: date | None = None,
    trusted: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Assign rows to train / val / test (see the module docstring).

    labeled_with_raw: article_id, label (auto, nullable); optional partition_date,
    content_hash, near_duplicate_of, gold_label (trusted label, nullable). `trusted`
    (article_id, label), e.g. the label_feedback table, overrides gold_label where given.
    Returns (splits conforming to DATASET_SPLITS + group_key, partition_date; report dict).
    Raises SplitError when a class/split is below its minimum count.
    """
    df = labeled_with_raw
    for col in ("article_id", "label"):
        if col not in df.columns:
            raise ValueError(f"build_splits: input lacks column {col!r} (has {df.columns})")
    if df["article_id"].n_unique() != df.height:
        raise ValueError(
            f"build_splits: {df.height - df['article_id'].n_unique()} duplicate article_id values in the input"
        )
    today = today or datetime.now(UTC).date()
    valid = set(labels)
    bad_auto = sorted(set(df["label"].drop_nulls().to_list()) - valid)
    if bad_auto:
        raise ValueError(f"build_splits: auto-labels {bad_auto} are not in the schema {sorted(valid)}")
    for col, dtype in (
        ("partition_date", pl.Date),
        ("content_hash", pl.String),
        ("near_duplicate_of", pl.String),
        ("gold_label", pl.String),
    ):
        if col not in df.columns:
            df = df.with_columns(pl.lit(None, dtype).alias(col))
    if trusted is not None:
        if not {"article_id", "label"} <= set(trusted.columns):
            raise ValueError(
                f"build_splits: trusted frame needs article_id and label (has {trusted.columns})"
            )
        t = trusted.select("article_id", pl.col("label").alias("_trusted")).unique("article_id", keep="last")
        df = (
            df.join(t, on="article_id", how="left")
            .with_columns(pl.coalesce("_trusted", "gold_label").alias("gold_label"))
            .drop("_trusted")
        )
    out_of_schema = df.filter(
        pl.col("gold_label").is_not_null() & ~pl.col("gold_label").is_in(list(valid))
    ).height
    df = df.with_columns(
        pl.when(pl.col("gold_label").is_in(list(valid)))
        .then(pl.col("gold_label"))
        .otherwise(None)
        .alias("gold_label")
    )

    df, report = _window(df, window_days=splits_cfg.window_days, today=today)
    keys = group_keys(
        df["article_id"].to_list(), df["content_hash"].to_list(), df["near_duplicate_of"].to_list()
    )
    df = df.with_columns(pl.Series("group_key", keys, dtype=pl.String))
    eligible = df.group_by("group_key").agg(pl.col("gold_label").is_not_null().any().alias("_eligible"))
    t_frac, v_frac = splits_cfg.test_fraction, splits_cfg.val_fraction
    if t_frac + v_frac >= 1:
        raise ValueError(f"splits: val_fraction + test_fraction must be < 1, got {v_frac} + {t_frac}")
    u = [split_fraction(k, salt=splits_cfg.salt) for k in eligible["group_key"].to_list()]
    group_split = [
        ("test" if x < t_frac else "val" if x < t_frac + v_frac else "train") if ok else "train"
        for x, ok in zip(u, eligible["_eligible"].to_list(), strict=True)
    ]
    df = df.join(
        eligible.with_columns(pl.Series("split", group_split)).select("group_key", "split"), on="group_key"
    )

    is_eval = pl.col("split") != "train"
    gold_train = pl.col("gold_label").is_not_null() & splits_cfg.train_on_gold
    df = df.with_columns(
        pl.when(is_eval)
        .then(pl.col("gold_label"))
        .when(gold_train)
        .then(pl.col("gold_label"))
        .otherwise(pl.col("label"))
        .alias("label"),
        pl.when(is_eval | gold_train).then(pl.lit("gold")).otherwise(pl.lit("auto")).alias("label_source"),
    )
    excluded_eval = df.filter(is_eval & pl.col("label").is_null()).height
    excluded_abstain = df.filter(~is_eval & pl.col("label").is_null()).height
    out = df.filter(pl.col("label").is_not_null()).sort("article_id")

    counts = {s: dict.fromkeys(labels, 0) for s in SPLITS}
    for row in out.group_by("split", "label").len().to_dicts():
        counts[row["split"]][row["label"]] = int(row["len"])
    short = []
    for s in SPLITS:
        need = splits_cfg.min_per_class_train if s == "train" else splits_cfg.min_per_class_eval
        for c in labels:
            if counts[s][c] < need:
                short.append(f"class {c!r} has {counts[s][c]} {s} rows (minimum {need})")
    report.update(
        rows=out.height,
        groups=int(df["group_key"].n_unique()),
        counts=counts,
        rows_per_split={s: sum(counts[s].values()) for s in SPLITS},
        label_source={
            r["label_source"]: int(r["len"]) for r in out.group_by("label_source").len().to_dicts()
        },
        gold_rows_in_window=int(df["gold_label"].is_not_null().sum()),
        excluded_untrusted_in_eval_groups=excluded_eval,
        excluded_abstained_train=excluded_abstain,
        gold_labels_outside_schema=out_of_schema,
        train_on_gold=splits_cfg.train_on_gold,
        salt=splits_cfg.salt,
    )
    if short:
        raise SplitError(
            "not enough rows to train and evaluate: "
            + "; ".join(short)
            + f" (rows per split: {report['rows_per_split']})"
        )
    log.info("splits: %s", report["rows_per_split"])
    frame = out.select("article_id", "split", "label", "label_source", "group_key", "partition_date")
    return conform(frame, DATASET_SPLITS, table="dataset_splits"), report
