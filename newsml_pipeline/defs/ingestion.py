"""`raw_articles`: crawl/load the configured sources and store one day's articles in DuckDB."""

import logging
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl

from newsml_pipeline.core.crawl.sources import collect_articles
from newsml_pipeline.core.data.articles import prepare_partition
from newsml_pipeline.defs.metadata import preview_table, source_report_table
from newsml_pipeline.defs.placement import CRAWL_STEP
from newsml_pipeline.defs.resources import NewsmlSettings, WarehouseResource

log = logging.getLogger(__name__)

TABLE = "raw_articles"


def build_ingestion_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name=TABLE,
        group_name="ingestion",
        op_tags=CRAWL_STEP,
        partitions_def=partitions,
        # A backfill over many days crawls/reads the sources once and writes every day in one run.
        backfill_policy=dg.BackfillPolicy.single_run(),
        # One writer at a time keeps article_id unique across partitions written concurrently.
        pool="ingestion",
        kinds={"duckdb", "python"},
        description=(
            "Articles of the day (by published date, else fetch date) from every configured source: "
            "RSS/Atom/JSON feeds with pages fetched and extracted, local files and HF datasets. "
            "One row per article_id across the whole table; exact duplicates collapse, near-duplicates "
            "are flagged in near_duplicate_of."
        ),
        tags={"layer": "bronze"},
        # The daily schedule ingests yesterday at 00:30 UTC; a day and a half without news is a problem.
        freshness_policy=dg.FreshnessPolicy.time_window(
            fail_window=timedelta(hours=48), warn_window=timedelta(hours=36)
        ),
    )
    def raw_articles(
        context: dg.AssetExecutionContext, newsml: NewsmlSettings, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        settings = newsml.settings
        cfg = settings.config
        days = sorted(date.fromisoformat(k) for k in context.partition_keys)
        fetched_at = datetime.now(UTC)
        context.log.info("collecting %d source(s) for %s..%s", len(cfg.sources), days[0], days[-1])
        batch, reports = collect_articles(
            cfg.sources,
            crawl_cfg=cfg.crawl,
            state_dir=settings.home,
            fetched_at=fetched_at,
        )
        wh = warehouse.get()
        totals: dict[str, int] = {}
        written: list[pl.DataFrame] = []
        for day in days:
            existing = (
                wh.query(f"SELECT article_id, content_hash FROM {TABLE} WHERE partition_date <> ?", [day])
                if wh.table_exists(TABLE)
                else pl.DataFrame(schema={"article_id": pl.String(), "content_hash": pl.String()})
            )
            rows, stats = prepare_partition(
                batch,
                existing_elsewhere=existing,
                partition_date=day,
                near_duplicate_threshold=cfg.crawl.near_duplicate_threshold,
            )
            replaced = wh.replace_partition(TABLE, rows, partition_column="partition_date", partition_key=day)
            context.log.info("%s: wrote %d rows (replaced %d)", day, len(rows), replaced)
            for k, v in stats.as_dict().items():
                if isinstance(v, int):
                    totals[k] = totals.get(k, 0) + v
            written.append(rows)
        all_rows = pl.concat(written, how="vertical_relaxed") if written else batch.head(0)
        errors = sum(len(r.errors) for r in reports)
        if errors:
            context.log.warning("%d source error(s); see the sources table in the metadata", errors)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(len(all_rows)),
                "rows_written": totals.get("rows_written", 0),
                "rows_collected": len(batch),
                "outside_partition": totals.get("outside_partition", 0),
                "exact_duplicates_dropped": totals.get("exact_duplicates_in_batch", 0),
                "already_in_other_partitions": totals.get("already_in_other_partitions", 0),
                "near_duplicates_flagged": totals.get("near_duplicates_flagged", 0),
                "source_errors": errors,
                "sources": dg.MetadataValue.md(source_report_table(reports)),
                "per_source_rows": dg.MetadataValue.json(
                    dict(all_rows.group_by("source").len().iter_rows()) if len(all_rows) else {}
                ),
                "preview": dg.MetadataValue.md(
                    preview_table(all_rows, ["article_id", "source", "title", "published_at", "gold_label"])
                ),
            }
        )

    return [raw_articles]
