"""raw_articles partition logic: partition dates, content hashes, duplicates, idempotent writes.

`prepare_partition` turns one day's collected batch into the rows to write with
`Warehouse.replace_partition`. It only ever removes rows from the batch, never touches other
partitions, and drops whatever already lives in another partition (same article_id or same
text), so `article_id` stays unique across the whole table after any sequence of re-runs.
"""

from __future__ import annotations

import hashlib
import logging
import re
import zlib
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import polars as pl

from newsml_pipeline.core.data.schema import RAW_ARTICLES, conform

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w+", re.UNICODE)
_MERSENNE = np.uint64((1 << 61) - 1)


def normalise_text(text: str) -> str:
    return " ".join(text.lower().split())


def content_hash(text: str | None) -> str:
    """sha1 of the whitespace-normalised lowercase text: exact duplicates share it."""
    return hashlib.sha1(normalise_text(text or "").encode("utf-8")).hexdigest()


def with_partition_date(df: pl.DataFrame) -> pl.DataFrame:
    """Set `partition_date`: the UTC date of `published_at`, else of `fetched_at`."""
    return df.with_columns(
        pl.coalesce(
            pl.col("published_at").dt.convert_time_zone("UTC").dt.date(),
            pl.col("fetched_at").dt.convert_time_zone("UTC").dt.date(),
        ).alias("partition_date")
    )


def filter_partition(df: pl.DataFrame, day: date) -> pl.DataFrame:
    """Rows of one daily partition (UTC published date, else UTC fetch date)."""
    if "partition_date" not in df.columns:
        df = with_partition_date(df)
    return df.filter(pl.col("partition_date") == day)


def collapse_exact_duplicates(df: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Keep one row per article_id and per content_hash: earliest published, then first seen.

    Deterministic: ties on the publication time keep the row that came first in the batch.
    """
    if df.is_empty():
        return df, 0
    ordered = (
        df.with_row_index("_seen")
        .sort(["published_at", "_seen"], nulls_last=True)
        .unique(subset="article_id", keep="first", maintain_order=True)
        .unique(subset="content_hash", keep="first", maintain_order=True)
        .sort("_seen")
        .drop("_seen")
    )
    return ordered, len(df) - len(ordered)


# ---------------------------------------------------------------- near duplicates (MinHash + LSH)


def _shingles(text: str, k: int) -> np.ndarray:
    words = _WORD.findall(text.lower())
    if len(words) < k:
        grams = [" ".join(words)] if words else []
    else:
        grams = [" ".join(words[i : i + k]) for i in range(len(words) - k + 1)]
    return np.unique(
        np.fromiter((zlib.crc32(g.encode("utf-8")) for g in grams), dtype=np.uint64, count=len(grams))
    )


def minhash_signatures(
    texts: list[str], *, num_perm: int = 128, shingle_words: int = 5, seed: int = 1
) -> tuple[np.ndarray, list[np.ndarray]]:
    """MinHash signatures (n × num_perm, uint64) of word-shingle sets, and the shingle sets.

    Hashes are h(x) = (a·x + b) mod (2^61 − 1) over 32-bit shingle hashes; a < 2^29 keeps
    a·x below 2^61, so the arithmetic is exact in uint64.
    """
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1 << 29, size=num_perm, dtype=np.uint64)
    b = rng.integers(0, 1 << 60, size=num_perm, dtype=np.uint64)
    sets = [_shingles(t or "", shingle_words) for t in texts]
    sigs = np.full((len(texts), num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
    for i, s in enumerate(sets):
        if len(s):
            sigs[i] = ((np.outer(s, a) + b) % _MERSENNE).min(axis=0)
    return sigs, sets


def _jaccard(x: np.ndarray, y: np.ndarray) -> float:
    if not len(x) and not len(y):
        return 1.0
    inter = len(np.intersect1d(x, y, assume_unique=True))
    return inter / (len(x) + len(y) - inter)


def near_duplicate_pairs(
    texts: list[str], *, threshold: float, num_perm: int = 128, bands: int = 32, shingle_words: int = 5
) -> dict[int, int]:
    """For each row that nearly duplicates an EARLIER row, the index of the earliest such row.

    LSH over MinHash bands proposes candidates (with 32 bands of 4 rows, pairs at Jaccard 0.6
    are proposed with probability > 0.98); each candidate is confirmed with the exact
    Jaccard of the shingle sets, so the threshold is applied exactly, not estimated.
    """
    if len(texts) < 2:
        return {}
    if num_perm % bands:
        raise ValueError(f"num_perm ({num_perm}) must be a multiple of bands ({bands})")
    sigs, sets = minhash_signatures(texts, num_perm=num_perm, shingle_words=shingle_words)
    rows = num_perm // bands
    candidates: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[bytes, list[int]] = {}
        block = np.ascontiguousarray(sigs[:, band * rows : (band + 1) * rows])
        for i in range(len(texts)):
            if len(sets[i]):
                buckets.setdefault(block[i].tobytes(), []).append(i)
        for members in buckets.values():
            for j in range(1, len(members)):
                for i in members[:j]:
                    candidates.add((i, members[j]))
    best: dict[int, int] = {}
    for i, j in sorted(candidates):
        if j in best and best[j] <= i:
            continue
        if _jaccard(sets[i], sets[j]) >= threshold:
            best[j] = min(i, best.get(j, i))
    return best


def flag_near_duplicates(df: pl.DataFrame, *, threshold: float) -> tuple[pl.DataFrame, int]:
    """Set `near_duplicate_of` to the article_id of an earlier near-identical row (Jaccard ≥ threshold)."""
    if df.is_empty():
        return df.with_columns(pl.lit(None, dtype=pl.String()).alias("near_duplicate_of")), 0
    pairs = near_duplicate_pairs(df["text"].fill_null("").to_list(), threshold=threshold)
    ids = df["article_id"].to_list()
    flags = [ids[pairs[i]] if i in pairs else None for i in range(len(df))]
    return df.with_columns(pl.Series("near_duplicate_of", flags, dtype=pl.String())), len(pairs)


# ---------------------------------------------------------------- the partition


@dataclass
class PartitionStats:
    input_rows: int = 0
    outside_partition: int = 0  # rows of the batch that belong to another day
    exact_duplicates_in_batch: int = 0
    already_in_other_partitions: int = 0
    near_duplicates_flagged: int = 0
    rows_written: int = 0
    per_source: dict[str, int] = field(default_factory=dict)  # rows written per source

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def prepare_partition(
    batch: pl.DataFrame,
    *,
    existing_elsewhere: pl.DataFrame,
    partition_date: date | None = None,
    near_duplicate_threshold: float = 0.9,
) -> tuple[pl.DataFrame, PartitionStats]:
    """The rows to write for one partition, and what was dropped or flagged on the way.

    `existing_elsewhere`: article_id and content_hash of every row in OTHER partitions of
    raw_articles (not the one being replaced). With `partition_date`, rows of other days are
    left out first. Ordering: in-batch exact duplicates collapse (earliest published wins),
    then rows already stored elsewhere are dropped, then near-duplicates are flagged.
    """
    missing = [c for c in ("article_id", "content_hash") if c not in existing_elsewhere.columns]
    if missing:
        raise ValueError(f"existing_elsewhere lacks columns {missing}; pass article_id and content_hash")
    stats = PartitionStats(input_rows=len(batch))
    df = batch if "partition_date" in batch.columns else with_partition_date(batch)
    df = conform(
        df.with_columns(pl.lit(None, dtype=pl.String()).alias("near_duplicate_of")),
        RAW_ARTICLES,
        table="raw_articles",
    )
    if partition_date is not None:
        kept = df.filter(pl.col("partition_date") == partition_date)
        stats.outside_partition = len(df) - len(kept)
        df = kept
    df, stats.exact_duplicates_in_batch = collapse_exact_duplicates(df)
    before = len(df)
    df = df.filter(
        ~pl.col("article_id").is_in(existing_elsewhere["article_id"].implode())
        & ~pl.col("content_hash").is_in(existing_elsewhere["content_hash"].implode())
    )
    stats.already_in_other_partitions = before - len(df)
    df, stats.near_duplicates_flagged = flag_near_duplicates(df, threshold=near_duplicate_threshold)
    df = conform(df, RAW_ARTICLES, table="raw_articles")
    stats.rows_written = len(df)
    stats.per_source = dict(sorted(df.group_by("source").len().iter_rows())) if len(df) else {}
    log.info("raw_articles partition %s: %s", partition_date, stats.as_dict())
    return df, stats
