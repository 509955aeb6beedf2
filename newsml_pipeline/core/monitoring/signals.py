"""Turn scored rows into the numeric streams the drift detectors watch.

A scored row (table `scored_articles`) has article_id, model_version, label, confidence,
auto_label (nullable) and scored_at. Each monitored signal maps a row to a value in [0, 1]
(ADWIN's bound assumes values in [0, 1]) or skips it:

- `confidence`: the champion's confidence in its own label. A topic shift pushes articles away
  from what the model knows, so its confidence drops.
- `disagreement`: 1.0 when the champion's label differs from the auto-label, else 0.0; rows
  without an auto-label (the labeler abstained) are skipped. An estimate of the error rate
  that needs no human.
- `no_fit`: 1.0 when no class of the schema fits the article (the auto-labeller's best cosine
  similarity to a class description, `class_fit`, is below `no_fit_below`), else 0.0; rows
  without class_fit are skipped. It reads the labeller, not the champion, so it works before
  any deployment and is not restarted when the champion changes (LABELLER_SIGNALS). A topic
  that no class describes raises it at once, where the labeller's own confidence barely moves
  (bench/drift.py: the demo's day-8 change).
- `label_mix`: the auto-labeller's class mix, one 0/1 stream per category (1.0 when the row's
  auto-label is that class; abstentions are the category `(abstained)`). A shift of the mix
  inside the schema (more crude-oil stories, fewer earnings) fits every class and leaves
  no_fit flat; each category's ADWIN sees its share move. From the labeller alone, so it
  works before any deployment (LABELLER_SIGNALS).

Arrays in, arrays out: every signal comes back as the row offsets it used plus the values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

SignalName = Literal["confidence", "disagreement", "no_fit", "label_mix"]
SIGNALS: tuple[str, ...] = ("confidence", "disagreement", "no_fit", "label_mix")
# Signals computed from the auto-labeller alone: a new champion does not change them.
LABELLER_SIGNALS: frozenset[str] = frozenset({"no_fit", "label_mix"})
# label_mix's category for rows the auto-labeller abstained on.
ABSTAINED = "(abstained)"
# label_mix feeds one stream per category; their detectors are keyed "label_mix:<category>".
LABEL_MIX_KEY = "label_mix:"
# Default class_fit below which an article counts as fitting no class (DriftConfig.no_fit_below).
NO_FIT_BELOW = 0.12

# Columns each signal needs from the scored rows.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "confidence": ("confidence",),
    "disagreement": ("label", "auto_label"),
    "no_fit": ("class_fit",),
    "label_mix": ("auto_label",),
}


class SignalError(ValueError):
    """Scored rows cannot be turned into a signal (missing column, value out of range)."""


@dataclass(frozen=True)
class SignalBatch:
    """One signal over one batch of rows.

    row_offsets: int64 [m], offsets into the batch of the rows that produced a value (sorted).
    values: float64 [m], the signal values in [0, 1].
    """

    name: str
    row_offsets: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return int(self.values.shape[0])


def check_signal_names(signals: Sequence[str]) -> tuple[str, ...]:
    """Validate signal names (unique, known); returns them as a tuple in the given order."""
    unknown = [s for s in signals if s not in SIGNALS]
    if unknown:
        raise SignalError(f"unknown drift signal(s) {unknown}; known: {list(SIGNALS)}")
    if len(set(signals)) != len(signals):
        raise SignalError(f"drift signals must be unique, got {list(signals)}")
    if not signals:
        raise SignalError("at least one drift signal must be monitored")
    return tuple(signals)


def confidence_signal(rows: pl.DataFrame) -> SignalBatch:
    """The champion's confidence per row; a null or out-of-[0, 1] confidence is an error."""
    _require(rows, "confidence")
    conf = rows.get_column("confidence").cast(pl.Float64)
    bad = conf.is_null() | conf.is_nan() | (conf < 0.0) | (conf > 1.0)
    if bad.any():
        first = int(bad.arg_true()[0])
        where = _describe_row(rows, first)
        raise SignalError(
            f"confidence must be a number in [0, 1]; {int(bad.sum())} row(s) are not, first at {where}: "
            f"{conf[first]!r}"
        )
    values = conf.to_numpy().astype(np.float64, copy=False)
    return SignalBatch("confidence", np.arange(len(values), dtype=np.int64), values)


def disagreement_signal(rows: pl.DataFrame) -> SignalBatch:
    """1.0 where label != auto_label, 0.0 where equal; rows without auto_label are skipped."""
    _require(rows, "disagreement")
    label = rows.get_column("label").cast(pl.String)
    auto = rows.get_column("auto_label").cast(pl.String)
    if label.is_null().any():
        first = int(label.is_null().arg_true()[0])
        raise SignalError(f"scored row without a label at {_describe_row(rows, first)}")
    has_auto = auto.is_not_null()
    offsets = has_auto.arg_true().to_numpy().astype(np.int64, copy=False)
    values = (label.filter(has_auto) != auto.filter(has_auto)).cast(pl.Float64).to_numpy()
    return SignalBatch("disagreement", offsets, values.astype(np.float64, copy=False))


def no_fit_signal(rows: pl.DataFrame, *, below: float = NO_FIT_BELOW) -> SignalBatch:
    """1.0 where class_fit < below (no class fits), 0.0 elsewhere; rows without class_fit skipped."""
    _require(rows, "no_fit")
    fit = rows.get_column("class_fit").cast(pl.Float64)
    if fit.is_nan().any():
        first = int(fit.is_nan().arg_true()[0])
        raise SignalError(f"class_fit is NaN at {_describe_row(rows, first)}")
    has_fit = fit.is_not_null()
    offsets = has_fit.arg_true().to_numpy().astype(np.int64, copy=False)
    values = (fit.filter(has_fit) < below).cast(pl.Float64).to_numpy()
    return SignalBatch("no_fit", offsets, values.astype(np.float64, copy=False))


def label_mix_signals(rows: pl.DataFrame, *, known: Sequence[str] = ()) -> dict[str, SignalBatch]:
    """One 0/1 stream per category, keyed "label_mix:<category>", every row in each.

    Categories: `known` (those the caller already watches: a class absent from this batch still
    gets its zeros) plus every auto-label in the batch; a null auto-label is ABSTAINED.
    """
    _require(rows, "label_mix")
    auto = rows.get_column("auto_label").cast(pl.String).fill_null(ABSTAINED)
    offsets = np.arange(rows.height, dtype=np.int64)
    cats = list(dict.fromkeys([*known, *sorted(auto.unique().to_list())]))
    values = auto.to_numpy()
    return {
        f"{LABEL_MIX_KEY}{c}": SignalBatch("label_mix", offsets, (values == c).astype(np.float64))
        for c in cats
    }


def extract_signals(
    rows: pl.DataFrame,
    *,
    signals: Sequence[str],
    no_fit_below: float = NO_FIT_BELOW,
    label_mix_known: Sequence[str] = (),
) -> dict[str, SignalBatch]:
    """Every requested signal over `rows` (n rows in stream order) -> {detector key: SignalBatch}.

    The key is the signal's name, except label_mix's per-category streams (label_mix_signals).
    """
    names = check_signal_names(signals)
    out: dict[str, SignalBatch] = {}
    for name in names:
        if name == "confidence":
            out[name] = confidence_signal(rows)
        elif name == "disagreement":
            out[name] = disagreement_signal(rows)
        elif name == "no_fit":
            out[name] = no_fit_signal(rows, below=no_fit_below)
        else:
            out.update(label_mix_signals(rows, known=label_mix_known))
    return out


def _require(rows: pl.DataFrame, signal: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS[signal] if c not in rows.columns]
    if missing:
        raise SignalError(
            f"signal {signal!r} needs column(s) {missing} in the scored rows; got columns {rows.columns}"
        )


def _describe_row(rows: pl.DataFrame, offset: int) -> str:
    if "article_id" in rows.columns:
        return f"row {offset} (article_id={rows.get_column('article_id')[offset]!r})"
    return f"row {offset}"
