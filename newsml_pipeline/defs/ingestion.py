"""Ingestion: `crawled_articles` (the bronze record, crawled hourly) and `raw_articles` (its days).

Reading the sources appends what they hold now to `crawled_articles` (core.data.article_store);
a `raw_articles` partition is written as every stored article of that day. Both assets read the
configured sources, so a manual run or a backfill of a day also picks up what the sources hold
now. A run in which every source fails raises a `Failure` before anything is written.
"""

import logging
from datetime import date, timedelta
from typing import Any

import dagster as dg
import polars as pl

from newsml_pipeline.core.crawl.sources import SourceReport, collect_articles, every_source_failed
from newsml_pipeline.core.data.article_store import STORE_TABLE, ArticleStore, RecordStats, check_no_loss
from newsml_pipeline.core.data.coverage import days_label, unservable_days
from newsml_pipeline.core.entities.trusted import GOLD_COLUMN, GOLD_TABLE, gold_rows, record_gold
from newsml_pipeline.defs.clock import run_time
from newsml_pipeline.defs.metadata import preview_table, source_report_table
from newsml_pipeline.defs.placement import CRAWL_STEP
from newsml_pipeline.defs.resources import NewsmlSettings, WarehouseResource
from newsml_pipeline.defs.retries import TRANSIENT_RETRY, TransientFailure, retry_transient_only
from newsml_pipeline.settings import Settings

log = logging.getLogger(__name__)

TABLE = "raw_articles"
# Bump when a change to this module changes what the assets write (the UI then marks them stale).
CODE_VERSION = "2"


def article_store(settings: Settings, warehouse: WarehouseResource) -> ArticleStore:
    crawl = settings.config.crawl
    return ArticleStore(
        warehouse.get(),
        near_duplicate_threshold=crawl.near_duplicate_threshold,
        near_duplicate_window_days=crawl.near_duplicate_window_days,
    )


def crawl_into_store(
    context: dg.AssetExecutionContext, settings: Settings, store: ArticleStore
) -> tuple[pl.DataFrame, list[SourceReport], RecordStats]:
    """Read every configured source once and record what they hold now in the store."""
    cfg = settings.config
    context.log.info("collecting %d source(s)", len(cfg.sources))
    batch, reports = collect_articles(
        cfg.sources, crawl_cfg=cfg.crawl, state_dir=settings.home, fetched_at=run_time(context)
    )
    failed = every_source_failed(reports)
    if failed:
        # every source at once is most often the network or a proxy: retried with backoff
        raise TransientFailure(
            description=failed,
            metadata={"sources": dg.MetadataValue.md(source_report_table(reports))},
        )
    stats = store.record(batch)
    # Gold entity spans a local source carries: trusted rows for the entity evaluation only; the
    # article store keeps the article, never its spans (core/entities/trusted.py).
    n_gold = record_gold(store.wh, gold_rows(batch, recorded_at=run_time(context)))
    if n_gold:
        context.log.info("%d articles carry gold entity spans (table %s)", n_gold, GOLD_TABLE)
    errors = sum(len(r.errors) for r in reports)
    if errors:
        context.log.warning("%d source error(s); see the sources table in the metadata", errors)
    return batch, reports, stats


def _crawl_metadata(batch: pl.DataFrame, reports: list[SourceReport], stats: RecordStats) -> dict[str, Any]:
    return {
        "rows_collected": len(batch),
        "gold_entity_articles": int(batch[GOLD_COLUMN].is_not_null().sum())
        if GOLD_COLUMN in batch.columns
        else 0,
        "new_articles": stats.new,
        "updated_articles": stats.updated,
        "seen_again": stats.seen_again,
        "exact_duplicates": stats.exact_duplicates,
        "near_duplicates_flagged": stats.near_duplicates,
        "new_per_day": dg.MetadataValue.json(stats.new_per_day),
        "source_errors": sum(len(r.errors) for r in reports),
        "failed_sources": dg.MetadataValue.json([r.source for r in reports if r.failed]),
        "sources": dg.MetadataValue.md(source_report_table(reports)),
    }


def _unservable(batch: pl.DataFrame, day_rows: dict[date, pl.DataFrame]) -> list[date]:
    """Requested days that neither the store nor what the sources hold now can fill."""
    oldest = batch["partition_date"].min() if len(batch) else None
    return unservable_days(
        sorted(day_rows), stored={d: len(r) for d, r in day_rows.items()}, oldest_served=oldest
    )


def build_ingestion_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name=STORE_TABLE,
        group_name="ingestion",
        # One writer at a time: crawls and day writes of the store queue instead of racing.
        pool="ingestion",
        op_tags=CRAWL_STEP,
        retry_policy=TRANSIENT_RETRY,  # network / shared-service faults (defs/retries.py)
        kinds={"duckdb", "python"},
        code_version=CODE_VERSION,
        description=(
            "Every article ever fetched, one row per article_id (a PRIMARY KEY): the sources are read and "
            "what they hold now is upserted (new articles added, changed texts updated in place with "
            "updated_at). Crawled hourly by crawl_job (crawl.schedule) so items that roll off a feed "
            "between the daily runs are kept. Never shrinks."
        ),
        tags={"layer": "bronze"},
    )
    @retry_transient_only
    def crawled_articles(
        context: dg.AssetExecutionContext, newsml: NewsmlSettings, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        settings = newsml.settings
        store = article_store(settings, warehouse)
        batch, reports, stats = crawl_into_store(context, settings, store)
        total = store.wh.query(f"SELECT count(*) AS n FROM {STORE_TABLE}")["n"].item()
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(int(total)),
                **_crawl_metadata(batch, reports, stats),
            }
        )

    @dg.asset(
        name=TABLE,
        group_name="ingestion",
        op_tags=CRAWL_STEP,
        retry_policy=TRANSIENT_RETRY,  # network / shared-service faults (defs/retries.py)
        partitions_def=partitions,
        deps=[dg.AssetKey(STORE_TABLE)],
        # A backfill over many days reads the sources once and writes every day in one run.
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool="ingestion",
        kinds={"duckdb", "python"},
        code_version=CODE_VERSION,
        description=(
            "Articles of the day (UTC published date, else first-fetch date): every article of that day "
            "in crawled_articles, after reading the sources once more. Re-materializing or backfilling a "
            "day never removes an article; exact duplicates are left out, near-duplicates (also across "
            "days) flagged in near_duplicate_of."
        ),
        tags={"layer": "bronze"},
        # The daily schedule ingests yesterday at 00:30 UTC; a day and a half without news is a problem.
        freshness_policy=dg.FreshnessPolicy.time_window(
            fail_window=timedelta(hours=48), warn_window=timedelta(hours=36)
        ),
    )
    @retry_transient_only
    def raw_articles(
        context: dg.AssetExecutionContext, newsml: NewsmlSettings, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        settings = newsml.settings
        days = sorted(date.fromisoformat(k) for k in context.partition_keys)
        store = article_store(settings, warehouse)
        batch, reports, stats = crawl_into_store(context, settings, store)
        wh = store.wh
        day_rows = {day: store.day(day) for day in days}
        cannot = _unservable(batch, day_rows)
        if len(cannot) == len(days):  # nothing in this run can be ingested: say so, write nothing
            raise dg.Failure(
                description=(
                    f"no source can serve {days_label(cannot)}: nothing is stored for those days and the "
                    f"sources hold articles from {batch['partition_date'].min()} on (feeds keep days, not "
                    "years). Nothing was written. Backfill later days, or drop an archive covering them "
                    "into a local source."
                ),
                allow_retries=False,
                metadata={"sources": dg.MetadataValue.md(source_report_table(reports))},
            )
        if cannot:
            context.log.warning(
                "no source can serve %s (nothing stored, older than every article the sources hold): "
                "written empty",
                days_label(cannot),
            )
        written: list[pl.DataFrame] = []
        for day in days:
            rows = day_rows[day]
            old = (
                set(wh.query(f"SELECT article_id FROM {TABLE} WHERE partition_date = ?", [day])["article_id"])
                if wh.table_exists(TABLE)
                else set()
            )
            check_no_loss(old, set(rows["article_id"].to_list()), where=f"{TABLE} partition {day}")
            wh.replace_partition(TABLE, rows, partition_column="partition_date", partition_key=day)
            context.log.info(
                "%s: %d articles (%d new since the last write)", day, len(rows), len(rows) - len(old)
            )
            written.append(rows)
        all_rows = pl.concat(written, how="vertical_relaxed")  # a run has at least one partition
        run_days = {d.isoformat() for d in days}
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(len(all_rows)),
                "rows_written": len(all_rows),
                **_crawl_metadata(batch, reports, stats),
                "unservable_days": len(cannot),
                "stored_for_other_days": sum(n for d, n in stats.new_per_day.items() if d not in run_days),
                "per_source_rows": dg.MetadataValue.json(
                    dict(all_rows.group_by("source").len().iter_rows()) if len(all_rows) else {}
                ),
                "preview": dg.MetadataValue.md(
                    preview_table(all_rows, ["article_id", "source", "title", "published_at", "gold_label"])
                ),
            }
        )

    return [crawled_articles, raw_articles]
