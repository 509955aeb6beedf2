"""train / val / test assignment for `dataset_splits`: deterministic, leak-free, gold-evaluated.

How a row gets its split:
1. Rolling window: rows whose partition_date is at least `today - window_days` (undated rows are
   kept); all rows when `window_days` is null or no row has a date.
2. Group key: near-duplicates must not straddle splits, so each row's key is the content_hash of
   the root of its `near_duplicate_of` chain (ingestion points a near-duplicate at an EARLIER
   article, so the root is the oldest one and its key never changes when newer copies arrive);
   exact duplicates share a content_hash and so a key too. Keys are computed over the whole
   frame before windowing, so a root outside the window still anchors its group.
3. Bucket: a salted sha256 of the group key gives u in [0, 1): val if u < val_fraction, test if
   u < val_fraction + test_fraction, else train. It depends only on the key and `splits.salt`, so
   adding articles never moves an old one to another bucket.
4. Evaluation needs trusted labels: gold = feedback_label, else source_gold_label (only labels of
   the schema count). In a val/test bucket, gold rows are evaluation rows; if the group has no
   gold row at all, its rows go to train with their auto-labels; if it has one, its non-gold rows
   are dropped (counted) because training on them would leak the group into train.
   In the train bucket, rows carry their auto-label, or the gold label when
   `splits.train_on_gold` is on. Train rows without a usable label (abstained) are dropped (counted).
   With silver evaluation (`build_evaluated_splits`), a val/test row without gold uses its
   silver label (functions independent of the baseline agreed, core.labeling.silver).
   So a row's bucket never changes; what can change is whether it is usable: a row that gains a
   gold label (new feedback) in a val/test bucket moves from train to evaluation, and a non-gold
   row of such a group is then dropped from train rather than leaked.
5. Label issues (`splits.drop_label_issues`): auto-labelled train rows whose cross-fitted
   TF-IDF prediction disagrees with the auto-label are dropped (counted, with examples in the
   report), never moved to another split; gold train rows are never dropped. Each class keeps at
   least `min_per_class_train` rows.

Stratification: a class's gold rows fall into val/test in proportion to the bucket fractions
(the hash is independent of the label), so the test set's class mix follows gold's; the minimum
per-class counts then turn a too-small class into a clear `SplitError` instead of a silent hole.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from datetime import date, timedelta
from typing import Any

import polars as pl

from newsml_pipeline.core.labeling.label_issues import find_label_issues
from newsml_pipeline.core.labeling.silver import silver_labels
from newsml_pipeline.core.training.inputs import format_input
from newsml_pipeline.settings import GateConfig, SplitsConfig

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
INPUT_COLUMNS = (
    "article_id",
    "partition_date",
    "auto_label",
    "confidence",
    "title",
    "text",
    "url",
    "source",
    "content_hash",
    "near_duplicate_of",
    "source_gold_label",
    "feedback_label",
)
OUTPUT_SCHEMA: dict[str, pl.DataType] = {
    "article_id": pl.String(),
    "split": pl.String(),
    "label": pl.String(),
    "label_source": pl.String(),  # auto / gold / silver
    "partition_date": pl.Date(),
    "group_key": pl.String(),
}


class SplitError(ValueError):
    """The window holds too few labelled rows of some class in some split to train or evaluate."""


def bucket_value(key: str, *, salt: str) -> float:
    """Deterministic number in [0, 1) from a group key and a salt (same inputs, same number)."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def bucket_of(u: float, *, val_fraction: float, test_fraction: float) -> str:
    if u < val_fraction:
        return "val"
    if u < val_fraction + test_fraction:
        return "test"
    return "train"


def group_keys(
    article_ids: list[str], near_duplicate_of: list[str | None], content_hashes: list[str | None]
) -> list[str]:
    """Group key per row: content_hash of the root of its near-duplicate chain.

    A chain that leaves the frame (the article it points to is unknown) is keyed by that article's
    id; a row with neither a pointer nor a content hash is keyed by its own id. Cycles (not made by
    ingestion, but possible in hand-made data) resolve to the smallest article_id on the cycle.
    """
    parent = dict(zip(article_ids, near_duplicate_of, strict=True))
    chash = dict(zip(article_ids, content_hashes, strict=True))
    root_of: dict[str, str] = {}

    def root(aid: str) -> str:
        path: list[str] = []
        seen: set[str] = set()
        cur = aid
        while True:
            if cur in root_of:
                r = root_of[cur]
                break
            nxt = parent.get(cur)
            if nxt is None or nxt == cur:
                r = cur
                break
            if cur in seen:  # a cycle: pick a stable representative
                cycle = path[path.index(cur) :]
                r = min(cycle)
                break
            seen.add(cur)
            path.append(cur)
            cur = nxt
        for p in path:
            root_of[p] = r
        root_of[aid] = r
        return r

    keys = []
    for aid in article_ids:
        r = root(aid)
        h = chash.get(r)
        keys.append(f"h:{h}" if h else f"id:{r}")
    return keys


def _check_input(frame: pl.DataFrame, labels: list[str], cfg: SplitsConfig) -> None:
    missing = [c for c in INPUT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"build_splits: input lacks columns {missing} (has {frame.columns})")
    if frame["article_id"].null_count():
        raise ValueError(f"build_splits: {frame['article_id'].null_count()} rows have no article_id")
    dupes = frame.filter(pl.col("article_id").is_duplicated())["article_id"].unique().sort()
    if len(dupes):
        raise ValueError(
            f"build_splits: {len(dupes)} article_ids appear more than once (e.g. {dupes.head(5).to_list()}); "
            "the input must hold one row per article (check the feedback join)"
        )
    if cfg.val_fraction + cfg.test_fraction >= 1:
        raise ValueError(
            f"splits.val_fraction + splits.test_fraction must be < 1 to leave rows for training; "
            f"got {cfg.val_fraction} + {cfg.test_fraction}"
        )
    if len(set(labels)) < 2:
        raise ValueError(f"build_splits: need at least two labels, got {labels}")


def _window(frame: pl.DataFrame, *, window_days: int | None, today: date) -> tuple[pl.DataFrame, dict]:
    dates = frame["partition_date"].cast(pl.Date)
    if window_days is None:
        return frame, {"window_days": None, "from": None, "to": today.isoformat(), "outside_window": 0}
    if dates.null_count() == frame.height:
        return frame, {
            "window_days": window_days,
            "from": None,
            "to": today.isoformat(),
            "outside_window": 0,
            "note": "no row has a partition_date: all rows used",
        }
    start = today - timedelta(days=window_days)
    keep = dates.is_null() | (dates >= start)
    kept = frame.filter(keep)
    return kept, {
        "window_days": window_days,
        "from": start.isoformat(),
        "to": today.isoformat(),
        "outside_window": frame.height - kept.height,
        "undated_kept": int(dates.is_null().sum()),
    }


def _share_gaps(
    per_class: dict[str, dict[str, int]], gold_per_class: dict[str, int], labels: list[str]
) -> dict[str, dict[str, float]]:
    """Per eval split and class: its share there minus its share among gold rows (stratification).

    Hash assignment is stratified only in expectation: expect gaps of about
    sqrt(p(1-p)/n) for a class of gold share p in a split of n rows.
    """
    gold_total = sum(gold_per_class.get(lab, 0) for lab in labels)
    gaps: dict[str, dict[str, float]] = {}
    for split in ("val", "test"):
        n = sum(per_class[split].values())
        if not n or not gold_total:
            continue
        gaps[split] = {
            lab: round(per_class[split].get(lab, 0) / n - gold_per_class.get(lab, 0) / gold_total, 4)
            for lab in labels
        }
    return gaps


def _min_count_failures(
    per_class: dict[str, dict[str, int]], labels: list[str], cfg: SplitsConfig
) -> list[tuple[str, str, int, int]]:
    failures = []
    for split in SPLITS:
        need = cfg.min_per_class_train if split == "train" else cfg.min_per_class_eval
        for lab in labels:
            have = per_class[split].get(lab, 0)
            if have < need:
                failures.append((lab, split, have, need))
    return failures


def _split_error_message(
    failures: list[tuple[str, str, int, int]], report: dict[str, Any], cfg: SplitsConfig
) -> str:
    lines = ["dataset splits are too small to train or evaluate every class:"]
    for lab, split, have, need in failures:
        lines.append(f"  class {lab!r} has {have} rows in {split} (needs ≥ {need})")
    hints = []
    if any(s != "train" for _, s, _, _ in failures):
        gold = report["gold_per_class"]
        silver = (
            " or silver labels (the keyword rules did not agree on enough held-out articles)"
            if report.get("evaluation") == "silver"
            else ""
        )
        hints.append(
            f"val/test rows need gold labels{silver}: label the short classes on the labelling page "
            f"(`newsml label`) or add feedback files (gold rows in the window per class: {gold})"
        )
    if any(s == "train" for _, s, _, _ in failures):
        hints.append(
            "train rows carry auto-labels: check the class's description/keywords so the labeler "
            "covers it, or set splits.train_on_gold: true to train on gold labels too"
        )
    if cfg.window_days is not None:
        hints.append(f"or widen splits.window_days (now {cfg.window_days}; null = all rows)")
    lines.append("to fix: " + "; ".join(hints))
    return "\n".join(lines)


def _drop_label_issues(
    out: pl.DataFrame, windowed: pl.DataFrame, cfg: SplitsConfig, *, examples: int = 20
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Drop auto-labelled train rows flagged by `find_label_issues` (fitted on all train rows)."""
    train = out.filter(pl.col("split") == "train").join(
        windowed.select("article_id", "title", "text"), on="article_id", how="left"
    )
    if train.height == 0:
        return out, {"enabled": True, "dropped": 0, "skipped_reason": "no train rows"}
    issues = find_label_issues(
        [format_input(t, x) for t, x in zip(train["title"], train["text"], strict=True)],
        train["label"].to_list(),
        folds=cfg.label_issue_folds,
        min_per_class=cfg.min_per_class_train,
    )
    flagged = train.with_columns(
        pl.Series("flagged", issues.flagged),
        pl.Series("out_of_fold_label", issues.out_of_fold_label, dtype=pl.String),
    ).filter(pl.col("flagged") & (pl.col("label_source") == "auto"))
    report: dict[str, Any] = {
        "enabled": True,
        "dropped": flagged.height,
        "train_rows_checked": train.height,
        "folds": issues.folds,
        "per_class": dict(Counter(flagged["label"].to_list())),
        "examples": flagged.head(examples)
        .select("article_id", "label", "out_of_fold_label", "title")
        .to_dicts(),
    }
    if issues.skipped_reason:
        report["skipped_reason"] = issues.skipped_reason
        log.warning("label-issue check skipped: %s", issues.skipped_reason)
    return out.filter(~pl.col("article_id").is_in(flagged["article_id"].to_list())), report


def build_splits(
    frame: pl.DataFrame,
    *,
    splits_cfg: SplitsConfig,
    labels: list[str],
    today: date,
    evaluation: str = "gold",
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Assign labelled articles to train/val/test (rules in the module docstring).

    frame: one row per article with INPUT_COLUMNS (labeled_articles ⋈ raw_articles ⋈ feedback),
    plus `silver_label` when `evaluation="silver"`: then an evaluation bucket uses a row's gold
    label, else its silver label (`label_source` "silver"), so held-out articles evaluate the
    candidate before people have labelled enough (see core.labeling.silver).
    Returns (splits[article_id, split, label, label_source, partition_date, group_key], report)
    where report holds sizes, per-class counts per split, dropped counts, gold usage and groups.
    Raises SplitError when a class has fewer than the configured minimum rows in some split.
    """
    cfg = splits_cfg
    _check_input(frame, labels, cfg)
    label_set = set(labels)
    keys = group_keys(
        frame["article_id"].cast(pl.String).to_list(),
        frame["near_duplicate_of"].cast(pl.String).to_list(),
        frame["content_hash"].cast(pl.String).to_list(),
    )
    frame = frame.with_columns(pl.Series("group_key", keys, dtype=pl.String))
    windowed, window_report = _window(frame, window_days=cfg.window_days, today=today)

    ids = windowed["article_id"].to_list()
    auto = windowed["auto_label"].cast(pl.String).to_list()
    fb = windowed["feedback_label"].cast(pl.String).to_list()
    src = windowed["source_gold_label"].cast(pl.String).to_list()
    pdates = windowed["partition_date"].cast(pl.Date).to_list()
    gkeys = windowed["group_key"].to_list()

    gold: list[str | None] = []
    gold_outside_schema = 0
    for f, s in zip(fb, src, strict=True):
        g = f if f is not None else s
        if g is not None and g not in label_set:
            gold_outside_schema += 1
            g = None
        gold.append(g)
    if evaluation not in ("gold", "silver"):
        raise ValueError(f"evaluation must be 'gold' or 'silver', got {evaluation!r}")
    if evaluation == "silver":
        if "silver_label" not in windowed.columns:
            raise ValueError("build_splits(evaluation='silver') needs a silver_label column")
        silver = [v if v in label_set else None for v in windowed["silver_label"].cast(pl.String).to_list()]
    else:
        silver = [None] * len(gold)
    # The label an evaluation bucket uses: gold first, then (silver evaluation only) silver.
    trusted = [
        (g, "gold") if g is not None else ((v, "silver") if v is not None else (None, None))
        for g, v in zip(gold, silver, strict=True)
    ]

    bucket = {
        k: bucket_of(
            bucket_value(k, salt=cfg.salt), val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction
        )
        for k in set(gkeys)
    }
    group_has_gold = {k for k, (t, _) in zip(gkeys, trusted, strict=True) if t is not None}

    dropped = Counter()
    rows: list[tuple[str, str, str, str, date | None, str]] = []
    for aid, a, g, (t, t_src), d, k in zip(ids, auto, gold, trusted, pdates, gkeys, strict=True):
        b = bucket[k]
        if b != "train":
            if t is not None:
                rows.append((aid, b, t, t_src, d, k))
                continue
            if k in group_has_gold:
                dropped["unlabelled_in_eval_group"] += 1
                continue
        # train: this group is not evaluated (train bucket, or an eval bucket with no gold at all)
        if cfg.train_on_gold and g is not None:
            rows.append((aid, "train", g, "gold", d, k))
        elif a is None:
            dropped["abstained"] += 1
        elif a not in label_set:
            dropped["auto_label_outside_schema"] += 1
        else:
            rows.append((aid, "train", a, "auto", d, k))

    out = pl.DataFrame(rows, schema=OUTPUT_SCHEMA, orient="row").sort("article_id")
    issues_report: dict[str, Any] = {"enabled": cfg.drop_label_issues}
    if cfg.drop_label_issues:
        out, issues_report = _drop_label_issues(out, windowed, cfg)
        dropped["label_issue"] = issues_report.get("dropped", 0)
    per_class = {
        s: {lab: 0 for lab in labels}
        | dict(out.filter(pl.col("split") == s).group_by("label").len().sort("label").iter_rows())
        for s in SPLITS
    }
    gold_per_class = dict(Counter(g for g in gold if g is not None))
    report: dict[str, Any] = {
        "rows_in": frame.height,
        "rows_in_window": windowed.height,
        "sizes": {s: int((out["split"] == s).sum()) for s in SPLITS},
        "per_class": per_class,
        "label_sources": {
            f"{s}/{src_}": n
            for s, src_, n in out.group_by("split", "label_source")
            .len()
            .sort("split", "label_source")
            .iter_rows()
        },
        "dropped": {
            "outside_window": window_report["outside_window"],
            "abstained": dropped["abstained"],
            "auto_label_outside_schema": dropped["auto_label_outside_schema"],
            "unlabelled_in_eval_group": dropped["unlabelled_in_eval_group"],
            "label_issue": dropped["label_issue"],
        },
        "label_issues": issues_report,
        "gold_rows": sum(g is not None for g in gold),
        "gold_per_class": {lab: gold_per_class.get(lab, 0) for lab in labels},
        "gold_used": {s: int(((out["split"] == s) & (out["label_source"] == "gold")).sum()) for s in SPLITS},
        "silver_used": {
            s: int(((out["split"] == s) & (out["label_source"] == "silver")).sum()) for s in SPLITS
        },
        "evaluation": evaluation,
        "gold_outside_schema": gold_outside_schema,
        "eval_class_share_minus_gold_share": _share_gaps(per_class, gold_per_class, labels),
        "groups": len(bucket),
        "groups_per_split": dict(Counter(bucket.values())),
        "window": window_report,
        "salt": cfg.salt,
    }
    if dropped["auto_label_outside_schema"]:
        log.warning(
            "dropped %d train rows whose auto-label is not in the schema %s; re-materialize "
            "labeled_articles after a schema change",
            dropped["auto_label_outside_schema"],
            labels,
        )
    failures = _min_count_failures(per_class, labels, cfg)
    if failures:
        raise SplitError(_split_error_message(failures, report, cfg))
    log.info("splits: %s (dropped %s)", report["sizes"], report["dropped"])
    return out, report


def build_evaluated_splits(
    frame: pl.DataFrame, *, splits_cfg: SplitsConfig, gate_cfg: GateConfig, labels: list[str], today: date
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """`build_splits` with the evaluation `gate.evaluation` asks for (report["evaluation"] says which).

    auto: gold when the gold splits can be built and hold at least `gate.min_test_rows` gold test
    rows, else silver (report["why_silver"] says why). Silver labels come from the `votes` column
    (labeled_articles) through `core.labeling.silver`. gold: SplitError when gold is short.
    """
    if "votes" in frame.columns and "silver_label" not in frame.columns:
        frame = frame.with_columns(
            pl.Series(
                "silver_label",
                silver_labels(
                    frame["votes"].cast(pl.String).to_list(),
                    functions=gate_cfg.silver_functions,
                    min_votes=gate_cfg.silver_min_votes,
                    labels=labels,
                ),
                dtype=pl.String(),
            )
        )
    mode = gate_cfg.evaluation
    why = "gate.evaluation is silver"
    if mode in ("gold", "auto"):
        try:
            out, report = build_splits(frame, splits_cfg=splits_cfg, labels=labels, today=today)
        except SplitError as e:
            if mode == "gold":
                raise
            why = "gold is short: " + str(e).splitlines()[1].strip()
        else:
            n_gold_test = report["gold_used"]["test"]
            if mode == "gold" or n_gold_test >= gate_cfg.min_test_rows:
                return out, report
            why = f"{n_gold_test} gold test rows < gate.min_test_rows={gate_cfg.min_test_rows}"
    if "silver_label" not in frame.columns:
        raise SplitError(f"silver evaluation needs the labelling functions' votes ({why})")
    out, report = build_splits(frame, splits_cfg=splits_cfg, labels=labels, today=today, evaluation="silver")
    report["why_silver"] = why
    log.info("silver evaluation: %s", why)
    return out, report
