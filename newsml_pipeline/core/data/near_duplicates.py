"""Near-duplicate stories across days: datasketch MinHash signatures kept with the warehouse.

Wire stories are re-run the next day with a new headline or a paragraph more. Such a copy must
be flagged (`near_duplicate_of` → the earlier article) so that `dataset_splits` keeps its group in
one split; otherwise the test split leaks into train. A batch alone cannot see yesterday's
story, so each stored article's MinHash signature (word 5-gram shingles, 128 permutations) lives
in the warehouse table `near_duplicate_index`, and every new batch is checked against the
signatures of the last `window_days` days with datasketch's MinHash LSH, then confirmed by the
estimated Jaccard similarity.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:  # datasketch pulls in scipy (~0.5 s): imported by the ingest step that signs articles
    from datasketch import MinHash

log = logging.getLogger(__name__)

INDEX_TABLE = "near_duplicate_index"
NUM_PERM = 128
SHINGLE_WORDS = 5
SEED = 1
SCHEME = "affine32"
_WORD = re.compile(r"\w+", re.UNICODE)

INDEX_SCHEMA: dict[str, pl.DataType] = {
    "article_id": pl.String(),
    "partition_date": pl.Date(),
    "minhash": pl.Binary(),  # NUM_PERM uint64 hash values, little-endian
}


def shingles(text: str, k: int = SHINGLE_WORDS) -> set[bytes]:
    """Word k-grams of the lowercased text (the whole text when shorter than k words)."""
    words = _WORD.findall((text or "").lower())
    if len(words) < k:
        return {" ".join(words).encode("utf-8")} if words else set()
    return {" ".join(words[i : i + k]).encode("utf-8") for i in range(len(words) - k + 1)}


class Signer:
    """Builds MinHash signatures with one shared set of permutations (cheap per document)."""

    def __init__(self, num_perm: int = NUM_PERM, seed: int = SEED) -> None:
        from datasketch import MinHash

        self.num_perm = num_perm
        self.seed = seed
        # datasketch 2 needs the scheme named when signatures are rebuilt from stored values.
        self._template = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME)

    def sign(self, text: str) -> MinHash | None:
        """The text's MinHash, or None for a text without words (it duplicates nothing)."""
        from datasketch import MinHash

        grams = shingles(text)
        if not grams:
            return None
        m = MinHash(
            num_perm=self.num_perm, seed=self.seed, permutations=self._template.permutations, scheme=SCHEME
        )
        m.update_batch(list(grams))
        return m

    def from_bytes(self, raw: bytes) -> MinHash:
        from datasketch import MinHash

        values = np.frombuffer(raw, dtype="<u8")
        return MinHash(
            num_perm=self.num_perm,
            seed=self.seed,
            hashvalues=values.copy(),
            permutations=self._template.permutations,
            scheme=SCHEME,
        )


def to_bytes(m: MinHash) -> bytes:
    return np.asarray(m.hashvalues, dtype="<u8").tobytes()


@dataclass(frozen=True)
class Match:
    article_id: str
    near_duplicate_of: str
    similarity: float


def find_near_duplicates(
    new: pl.DataFrame,
    *,
    indexed: pl.DataFrame,
    threshold: float,
    signer: Signer | None = None,
) -> tuple[list[Match], pl.DataFrame]:
    """Flag each new article that nearly duplicates an indexed one or an EARLIER new one.

    new: article_id, partition_date, text — in the order articles count as earlier (the caller
    sorts by publication/fetch time). indexed: rows of `near_duplicate_index` to compare with.
    Returns the matches (the earliest indexed match wins, else the first earlier new one) and
    the index rows to add for the new articles (every new article is indexed, flagged or not,
    so a third copy still finds the story).
    """
    from datasketch import MinHashLSH

    signer = signer or Signer()
    lsh = MinHashLSH(threshold=threshold, num_perm=signer.num_perm)
    order: dict[str, int] = {}
    sigs: dict[str, MinHash] = {}
    for i, (aid, raw) in enumerate(
        zip(indexed["article_id"].to_list(), indexed["minhash"].to_list(), strict=True)
    ):
        if aid in sigs:
            continue
        m = signer.from_bytes(raw)
        sigs[aid] = m
        order[aid] = i
        lsh.insert(aid, m)
    matches: list[Match] = []
    rows: list[dict] = []
    base = len(order)
    for j, (aid, day, text) in enumerate(
        zip(new["article_id"].to_list(), new["partition_date"].to_list(), new["text"].to_list(), strict=True)
    ):
        if aid in sigs:  # already indexed (a re-run): its flag was decided when it first came
            continue
        m = signer.sign(text or "")
        if m is None:
            continue
        best: tuple[int, str, float] | None = None
        for cand in lsh.query(m):
            sim = float(m.jaccard(sigs[cand]))
            if sim >= threshold and (best is None or order[cand] < best[0]):
                best = (order[cand], cand, sim)
        if best is not None:
            matches.append(Match(article_id=aid, near_duplicate_of=best[1], similarity=round(best[2], 4)))
        sigs[aid] = m
        order[aid] = base + j
        lsh.insert(aid, m)
        rows.append({"article_id": aid, "partition_date": day, "minhash": to_bytes(m)})
    log.info(
        "near-duplicate check: %d new article(s) against %d indexed, %d flagged",
        len(rows),
        len(indexed),
        len(matches),
    )
    return matches, pl.DataFrame(rows, schema=INDEX_SCHEMA)


def window_start(days: list[date], window_days: int) -> date:
    """First partition date whose signatures a batch spanning `days` is compared with."""
    return min(days) - timedelta(days=window_days)
