"""The bronze record of everything ever fetched: `crawled_articles`, keyed by article_id.

Feeds roll: an item that is on a feed this morning is gone tomorrow. So reading the sources
*appends* what they hold now to this table (one upsert, `article_id` a real PRIMARY KEY, one
transaction), and a `raw_articles` partition is a view of it: every stored article of that day.
Re-reading a source that dropped an item, backfilling a day, or a run whose sources are all down
never removes a stored row (DESIGN.md §7).

Rules, per row:
- `partition_date` is fixed when the article is first stored: its published date (UTC), else the
  date it was first fetched. It never moves, so no day ever loses an article to another.
- `fetched_at` is the first fetch, `last_seen_at` the latest one. When a later fetch brings a
  different text (`content_hash`), title and text are updated in place, `updated_at` says when and
  `revisions` counts the changes. A text that fell back to the feed summary never replaces an
  extracted page text.
- Every kind of source accumulates, local files and datasets included: a record deleted from a
  file stays stored (delete it from the warehouse on purpose if it must go); a changed record
  updates in place like a changed page.
- An article whose exact text is already stored under another id is stored too, with
  `duplicate_of` naming the first one; partitions leave such rows out. A near-identical story
  (also across days, see `near_duplicates`) gets `near_duplicate_of`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from newsml_pipeline.core.data.articles import with_partition_date
from newsml_pipeline.core.data.dialect import sql_type
from newsml_pipeline.core.data.near_duplicates import (
    INDEX_SCHEMA,
    INDEX_TABLE,
    find_near_duplicates,
    window_start,
)
from newsml_pipeline.core.data.schema import RAW_ARTICLES, UTC_DT, conform
from newsml_pipeline.core.data.warehouse import Warehouse

log = logging.getLogger(__name__)

STORE_TABLE = "crawled_articles"

# Columns of the store beyond the raw_articles contract.
STORE_EXTRA: dict[str, pl.DataType] = {
    "duplicate_of": pl.String(),  # article_id of the first article with the same exact text
    "last_seen_at": UTC_DT,  # latest fetch that saw it
    "updated_at": UTC_DT,  # when its text last changed (null: never)
    "revisions": pl.Int32(),  # how many times its text changed
}
STORE_SCHEMA: dict[str, pl.DataType] = {**RAW_ARTICLES, **STORE_EXTRA}

INDEX_KEY = "article_id"

# The upsert. In SET, bare `crawled_articles.x` is the stored value and `excluded.x` the new one;
# every right-hand side sees the stored row as it was before this statement.
_CHANGED = "(excluded.content_hash <> crawled_articles.content_hash AND NOT (excluded.text_from_summary AND NOT crawled_articles.text_from_summary))"
_UPSERT = f"""
INSERT INTO {STORE_TABLE} ({", ".join(STORE_SCHEMA)})
SELECT {", ".join(STORE_SCHEMA)} FROM _store_batch
ON CONFLICT (article_id) DO UPDATE SET
    title = CASE WHEN {_CHANGED} THEN excluded.title ELSE crawled_articles.title END,
    text = CASE WHEN {_CHANGED} THEN excluded.text ELSE crawled_articles.text END,
    text_from_summary = CASE WHEN {_CHANGED} THEN excluded.text_from_summary
                             ELSE crawled_articles.text_from_summary END,
    content_hash = CASE WHEN {_CHANGED} THEN excluded.content_hash ELSE crawled_articles.content_hash END,
    updated_at = CASE WHEN {_CHANGED} THEN excluded.last_seen_at ELSE crawled_articles.updated_at END,
    revisions = crawled_articles.revisions + CASE WHEN {_CHANGED} THEN 1 ELSE 0 END,
    url = coalesce(crawled_articles.url, excluded.url),
    published_at = coalesce(crawled_articles.published_at, excluded.published_at),
    gold_label = coalesce(excluded.gold_label, crawled_articles.gold_label),
    last_seen_at = greatest(crawled_articles.last_seen_at, excluded.last_seen_at)
"""


class StoreError(RuntimeError):
    """A write would break the store's guarantees (e.g. remove rows from a partition)."""


@dataclass
class RecordStats:
    """What one `record` call did; `as_dict` feeds asset metadata."""

    batch_rows: int = 0
    new: int = 0
    updated: int = 0  # stored before, text changed now
    seen_again: int = 0  # stored before, same text
    exact_duplicates: int = 0  # new rows whose text is stored under another id
    near_duplicates: int = 0  # new rows flagged near_duplicate_of
    new_per_day: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _order_for_batch(batch: pl.DataFrame) -> pl.DataFrame:
    """One row per article_id, in the order that decides "earlier": published, then first seen."""
    return (
        batch.with_row_index("_seen")
        .sort(["published_at", "_seen"], nulls_last=True)
        .unique(subset="article_id", keep="first", maintain_order=True)
        .drop("_seen")
    )


class ArticleStore:
    """`crawled_articles` plus its near-duplicate index, in one warehouse."""

    def __init__(
        self,
        warehouse: Warehouse,
        *,
        near_duplicate_threshold: float = 0.9,
        near_duplicate_window_days: int = 14,
    ) -> None:
        self.wh = warehouse
        self.threshold = near_duplicate_threshold
        self.window_days = near_duplicate_window_days
        self._ensured = False

    # ------------------------------------------------------------ schema

    def ensure(self) -> None:
        """Create the tables; a warehouse from before the store seeds it from raw_articles once.

        Once per instance: it takes the write lock, and every read of a day would otherwise too."""
        if self._ensured:
            return
        with self.wh.transaction(lock=(STORE_TABLE, INDEX_TABLE)) as s:
            had = s.table_exists(STORE_TABLE)
            s.create_table(STORE_TABLE, STORE_SCHEMA, primary_key="article_id")
            s.create_table(INDEX_TABLE, INDEX_SCHEMA, primary_key=INDEX_KEY)
            if not had and s.table_exists("raw_articles"):
                cols = set(s.columns("raw_articles"))
                select = ", ".join(
                    c if c in cols else _seed_default(c, STORE_SCHEMA[c], dialect=s.dialect)
                    for c in STORE_SCHEMA
                )
                s.execute(
                    f"INSERT INTO {STORE_TABLE} ({', '.join(STORE_SCHEMA)}) SELECT {select} FROM raw_articles "
                    "ON CONFLICT (article_id) DO NOTHING"
                )
                n = s.scalar(f"SELECT count(*) FROM {STORE_TABLE}")
                log.info("seeded %s with the %d rows already in raw_articles", STORE_TABLE, n)
        self._ensured = True

    # ------------------------------------------------------------ writing

    def record(self, batch: pl.DataFrame) -> RecordStats:
        """Upsert a collected batch (raw_articles contract); returns what changed."""
        self.ensure()
        stats = RecordStats(batch_rows=len(batch))
        if batch.is_empty():
            return stats
        if "partition_date" not in batch.columns:
            batch = with_partition_date(batch)
        df = _order_for_batch(conform(batch, RAW_ARTICLES, table=STORE_TABLE))
        ids = df.select("article_id")
        stored = self.wh.query(
            f"SELECT s.article_id, s.content_hash FROM {STORE_TABLE} s "
            "WHERE s.article_id IN (SELECT article_id FROM ids)",
            None,
            frames={"ids": ids},
        )
        stored_hash = dict(zip(stored["article_id"].to_list(), stored["content_hash"].to_list(), strict=True))
        is_new = ~pl.col("article_id").is_in(list(stored_hash))
        new = df.filter(is_new)
        # Exact duplicates: the first stored article with that text, else the first in this batch.
        hashes = new.select("content_hash").unique()
        stored_reps = self.wh.query(
            f"SELECT content_hash, min(article_id) AS rep FROM {STORE_TABLE} "
            "WHERE duplicate_of IS NULL AND content_hash IN (SELECT content_hash FROM hashes) "
            "GROUP BY content_hash",
            None,
            frames={"hashes": hashes},
        )
        batch_reps = new.group_by("content_hash", maintain_order=True).agg(
            pl.col("article_id").first().alias("brep")
        )
        new = (
            new.join(stored_reps, on="content_hash", how="left")
            .join(batch_reps, on="content_hash", how="left")
            .with_columns(
                pl.coalesce(
                    "rep", pl.when(pl.col("brep") != pl.col("article_id")).then(pl.col("brep"))
                ).alias("duplicate_of")
            )
            .drop("rep", "brep")
        )
        stats.exact_duplicates = int(new["duplicate_of"].is_not_null().sum())
        originals = new.filter(pl.col("duplicate_of").is_null())
        matches, index_rows = self._near_duplicates(originals)
        flags = {m.article_id: m.near_duplicate_of for m in matches}
        stats.near_duplicates = len(flags)
        new = new.with_columns(
            pl.Series(
                "near_duplicate_of", [flags.get(a) for a in new["article_id"].to_list()], dtype=pl.String()
            )
        )
        seen = df.filter(~is_new)
        if len(seen):
            changed = seen.filter(
                pl.col("content_hash") != pl.col("article_id").replace_strict(stored_hash, default=None)
            )
            stats.updated = len(changed)
            stats.seen_again = len(seen) - len(changed)
        stats.new = len(new)
        stats.new_per_day = {
            d.isoformat(): n
            for d, n in sorted(new.group_by("partition_date").len().iter_rows())
            if d is not None
        }
        rows = pl.concat(
            [
                new.with_columns(pl.col("fetched_at").alias("last_seen_at")),
                seen.with_columns(
                    pl.lit(None, pl.String()).alias("duplicate_of"),
                    pl.col("fetched_at").alias("last_seen_at"),
                ),
            ],
            how="diagonal_relaxed",
        ).with_columns(pl.lit(None, UTC_DT).alias("updated_at"), pl.lit(0, pl.Int32()).alias("revisions"))
        rows = conform(rows, STORE_SCHEMA, table=STORE_TABLE).select(list(STORE_SCHEMA))
        # Postgres: writers of the store queue (like DuckDB's one writer), so concurrent runs never
        # deadlock on each other's keys; the upsert itself is safe either way.
        with self.wh.transaction(lock=(STORE_TABLE, INDEX_TABLE)) as s:
            s.register("_store_batch", rows)
            s.register("_index_rows", index_rows)
            cols = ", ".join(INDEX_SCHEMA)
            s.execute(
                f"INSERT INTO {INDEX_TABLE} ({cols}) SELECT {cols} FROM _index_rows ON CONFLICT DO NOTHING"
            )
            s.execute(_UPSERT)
            s.unregister("_store_batch")
            s.unregister("_index_rows")
        log.info("%s: %s", STORE_TABLE, {k: v for k, v in stats.as_dict().items() if k != "new_per_day"})
        return stats

    def _near_duplicates(self, originals: pl.DataFrame):
        if originals.is_empty():
            return [], pl.DataFrame(schema=INDEX_SCHEMA)
        days = [d for d in originals["partition_date"].to_list() if d is not None]
        since = window_start(days, self.window_days) if days else date.min
        indexed = self.wh.query(
            f"SELECT i.article_id, i.partition_date, i.minhash FROM {INDEX_TABLE} i "
            "WHERE i.partition_date >= ? ORDER BY i.partition_date, i.article_id",
            [since],
        )
        return find_near_duplicates(originals, indexed=indexed, threshold=self.threshold)

    # ------------------------------------------------------------ reading

    def day(self, day: date) -> pl.DataFrame:
        """Every stored article of one partition (exact duplicates left out), raw_articles columns
        first, then `updated_at` and `revisions`."""
        self.ensure()
        cols = [*RAW_ARTICLES, "updated_at", "revisions"]
        df = self.wh.query(
            f"SELECT {', '.join(cols)} FROM {STORE_TABLE} "
            "WHERE partition_date = ? AND duplicate_of IS NULL ORDER BY fetched_at, article_id",
            [day],
        )
        return conform(
            df, {**RAW_ARTICLES, "updated_at": UTC_DT, "revisions": pl.Int32()}, table="raw_articles"
        )

    def missing_from(self, table: str, *, since: date) -> dict[date, int]:
        """Stored articles of days ≥ `since` that `table` (a view written earlier) lacks, per day.

        Read-only (schedules call it): no store yet means nothing is missing."""
        if not self.wh.table_exists(STORE_TABLE):
            return {}
        if not self.wh.table_exists(table):
            sql = (
                f"SELECT partition_date, count(*) AS n FROM {STORE_TABLE} "
                "WHERE partition_date >= ? AND duplicate_of IS NULL GROUP BY partition_date"
            )
        else:
            sql = (
                f"SELECT s.partition_date, count(*) AS n FROM {STORE_TABLE} s "
                f"LEFT JOIN {table} t USING (article_id) WHERE s.partition_date >= ? "
                "AND s.duplicate_of IS NULL AND t.article_id IS NULL GROUP BY s.partition_date"
            )
        df = self.wh.query(sql, [since])
        return dict(df.sort("partition_date").iter_rows())


def _seed_default(col: str, dtype: pl.DataType, *, dialect: str) -> str:
    """Value of a store column when seeding from an older raw_articles that lacks it.

    A typed NULL: Postgres will not put an untyped NULL into a TIMESTAMPTZ column of a SELECT."""
    if col == "last_seen_at":
        return "fetched_at"
    if col == "revisions":
        return "0"
    if col == "text_from_summary":
        return "false"
    return f"CAST(NULL AS {sql_type(dtype, dialect=dialect)})"


def check_no_loss(old_ids: set[str], new_ids: set[str], *, where: str) -> None:
    """Raise if a rewrite of `where` would drop rows it held (the store never shrinks a day)."""
    lost = old_ids - new_ids
    if lost:
        sample = sorted(lost)[:5]
        raise StoreError(
            f"{where}: refusing to write: {len(lost)} stored article(s) would be removed, e.g. {sample}"
        )
