"""Model input text and tokenized train/val/test datasets built from `dataset_splits` rows.

`format_input` is the one way an article becomes model text: training, evaluation and serving
all call it, so a model never sees text shaped differently from what it was trained on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from datasets import DatasetDict

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
REQUIRED_COLUMNS = ("article_id", "split", "label", "title", "text")
# Characters kept per token of max_length before tokenizing: long articles are truncated by the
# tokenizer anyway, this only saves tokenizing text that would be cut.
_CHARS_PER_TOKEN = 12


class DatasetError(ValueError):
    """The split frame cannot train a classifier (missing columns/rows/classes, unknown labels)."""


def format_input(title: str | None, text: str | None) -> str:
    """Title and body as one string (title first: it carries the topic most densely)."""
    title = (title or "").strip()
    text = (text or "").strip()
    if title and text:
        return f"{title}\n\n{text}"
    return title or text


def _check_frame(frame: pl.DataFrame, labels: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(f"training frame lacks columns {missing}; it has {frame.columns}")
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise DatasetError(f"labels must be at least two distinct names, got {labels}")
    bad_split = frame.filter(~pl.col("split").is_in(list(SPLITS)) | pl.col("split").is_null())
    if bad_split.height:
        raise DatasetError(
            f"{bad_split.height} rows have a split outside {SPLITS}, e.g. article "
            f"{bad_split['article_id'][0]!r} with split {bad_split['split'][0]!r}"
        )
    null_label = frame.filter(pl.col("label").is_null())
    if null_label.height:
        raise DatasetError(
            f"{null_label.height} rows have no label (abstentions must be dropped before training), "
            f"e.g. article {null_label['article_id'][0]!r}"
        )
    unknown = frame.filter(~pl.col("label").is_in(labels))
    if unknown.height:
        raise DatasetError(
            f"labels {sorted(set(unknown['label'].to_list()))} are not in the configured categories "
            f"{labels} (e.g. article {unknown['article_id'][0]!r})"
        )
    empty = frame.filter(
        (pl.col("title").fill_null("").str.strip_chars() == "")
        & (pl.col("text").fill_null("").str.strip_chars() == "")
    )
    if empty.height:
        raise DatasetError(
            f"{empty.height} rows have neither title nor text, e.g. {empty['article_id'][0]!r}"
        )
    dupes = frame.filter(pl.col("article_id").is_duplicated())
    if dupes.height:
        raise DatasetError(
            f"article_id must be unique in the training frame; {dupes['article_id'][0]!r} repeats"
        )
    counts = dict(frame.filter(pl.col("split") == "train").group_by("label").len().iter_rows())
    absent = [name for name in labels if counts.get(name, 0) == 0]
    if absent:
        raise DatasetError(
            f"classes {absent} have no rows in the train split (train counts: {counts}); the model "
            "could never predict them. Label more data for them or remove them from labels.categories."
        )
    if frame.filter(pl.col("split") == "val").height == 0:
        raise DatasetError("the val split is empty: early stopping and model selection need it")


def split_counts(frame: pl.DataFrame) -> dict[str, dict[str, int]]:
    """{split: {label: rows}} for the model card and run params."""
    out: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    for split, label, n in frame.group_by("split", "label").len().sort("split", "label").iter_rows():
        out[split][label] = int(n)
    return out


def tokenize_texts(tokenizer: Any, texts: list[str], *, max_length: int) -> dict[str, list[list[int]]]:
    """Token ids without padding (batches pad dynamically), truncated to max_length."""
    clipped = [t[: max_length * _CHARS_PER_TOKEN] for t in texts]
    enc = tokenizer(clipped, truncation=True, max_length=max_length, padding=False)
    return {k: enc[k] for k in ("input_ids", "attention_mask")}


def build_datasets(frame: pl.DataFrame, *, labels: list[str], tokenizer: Any, max_length: int) -> DatasetDict:
    """Tokenized DatasetDict with train/val/test (test may be empty).

    `frame`: one row per article with article_id, split, label, title, text. Columns of each
    split: article_id, input_ids, attention_mask, labels (class index into `labels`), length.
    Raises DatasetError naming the offending rows when the frame cannot train a classifier.
    """
    from datasets import Dataset, DatasetDict

    _check_frame(frame, labels)
    index = {name: i for i, name in enumerate(labels)}
    parts = {}
    for split in SPLITS:
        sub = frame.filter(pl.col("split") == split).sort("article_id")
        texts = [
            format_input(t, x) for t, x in zip(sub["title"].to_list(), sub["text"].to_list(), strict=True)
        ]
        enc = tokenize_texts(tokenizer, texts, max_length=max_length) if texts else {}
        parts[split] = Dataset.from_dict(
            {
                "article_id": sub["article_id"].to_list(),
                "input_ids": enc.get("input_ids", []),
                "attention_mask": enc.get("attention_mask", []),
                "labels": [index[name] for name in sub["label"].to_list()],
                "length": [len(ids) for ids in enc.get("input_ids", [])],
            }
        )
    logger.info("datasets built: %s rows (max_length=%d)", {s: len(d) for s, d in parts.items()}, max_length)
    return DatasetDict(parts)
