"""`review_queue`: per day, the articles most worth a person's label, served by `newsml label`."""

import logging
from datetime import date
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from newsml_pipeline.core.labeling.functions.zero_shot import configured_article_embeddings
from newsml_pipeline.core.labeling.needs import trusted_labels_needed_by_config
from newsml_pipeline.core.labeling.review_queue import QUEUE_SCHEMA, select_for_review
from newsml_pipeline.core.serving.predictor import AUTO_LABELER_VERSION
from newsml_pipeline.defs.metadata import preview_table
from newsml_pipeline.defs.placement import CRAWL_STEP
from newsml_pipeline.defs.resources import NewsmlSettings, WarehouseResource
from newsml_pipeline.defs.retries import TRANSIENT_RETRY, retry_transient_only

log = logging.getLogger(__name__)

TABLE = "review_queue"
CODE_VERSION = "1"


def trusted_counts(wh) -> dict[str, int]:
    """Trusted labels per class so far: label_feedback (feedback files, the page, source gold)."""
    if not wh.table_exists("label_feedback"):
        return {}
    df = wh.query("SELECT label, count(*) AS n FROM label_feedback GROUP BY label")
    return dict(df.iter_rows())


def candidates_of_day(wh, day: date) -> pl.DataFrame:
    """The day's articles without a trusted label, with the champion's (else the labeler's) guess."""
    has_fb = wh.table_exists("label_feedback")
    has_scored = wh.table_exists("scored_articles")
    scored_join = (
        "LEFT JOIN scored_articles s ON s.article_id = l.article_id AND s.partition_date = l.partition_date"
        if has_scored
        else ""
    )
    champion = (
        f"s.model_version IS NOT NULL AND s.model_version <> '{AUTO_LABELER_VERSION}'"
        if has_scored
        else "FALSE"
    )
    no_feedback = "AND l.article_id NOT IN (SELECT article_id FROM label_feedback)" if has_fb else ""
    return wh.query(
        f"""
        SELECT l.article_id, l.partition_date, r.title, r.text, r.url,
               CASE WHEN {champion} THEN s.label ELSE l.label END AS suggested_label,
               CASE WHEN {champion} THEN s.confidence ELSE l.confidence END AS confidence
        FROM labeled_articles l JOIN raw_articles r USING (article_id)
        {scored_join}
        WHERE l.partition_date = ? AND r.gold_label IS NULL {no_feedback}
        ORDER BY l.article_id
        """,
        [day],
    )


def build_review_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name=TABLE,
        group_name="labeling",
        partitions_def=partitions,
        deps=[dg.AssetKey("labeled_articles"), dg.AssetKey("scored_articles"), dg.AssetKey("label_feedback")],
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"duckdb", "scikitlearn"},
        code_version=CODE_VERSION,
        # a few hundred sentence embeddings and a k-means: CPU-sized (on Kubernetes, a CPU pod)
        op_tags=CRAWL_STEP,
        retry_policy=TRANSIENT_RETRY,  # network / shared-service faults (defs/retries.py)
        description=(
            "Per day, up to review.daily_budget articles most worth a person's label: the most uncertain "
            "(champion's, else the label model's confidence) in each k-means cluster of the labeller's "
            "sentence embeddings, favouring classes whose val/test still need trusted labels; never an "
            "article already labelled. Served one at a time by `newsml label`."
        ),
    )
    @retry_transient_only
    def review_queue(
        context: dg.AssetExecutionContext, newsml: NewsmlSettings, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        cfg = newsml.config
        wh = warehouse.get()
        labels = cfg.labels.names
        have = trusted_counts(wh)
        need = trusted_labels_needed_by_config(have, cfg=cfg)
        days = sorted(date.fromisoformat(k) for k in context.partition_keys)
        written: list[pl.DataFrame] = []
        for day in days:
            cands = candidates_of_day(wh, day)
            emb = (
                configured_article_embeddings(
                    cands["title"].to_list(), cands["text"].to_list(), labels_cfg=cfg.labels
                )
                if cands.height
                else np.zeros((0, 1))
            )
            queue = select_for_review(
                cands,
                emb,
                budget=cfg.review.daily_budget,
                need=need,
                coverage_weight=cfg.review.coverage_weight,
                seed=cfg.review.seed,
            )
            wh.replace_partition(TABLE, queue, partition_column="partition_date", partition_key=day)
            context.log.info("%s: queued %d of %d unlabelled articles", day, queue.height, cands.height)
            written.append(queue)
        queue = pl.concat(written) if written else pl.DataFrame(schema=QUEUE_SCHEMA)
        metadata: dict[str, Any] = {
            "dagster/row_count": dg.MetadataValue.int(queue.height),
            "trusted_labels_per_class": dg.MetadataValue.json({c: int(have.get(c, 0)) for c in labels}),
            "trusted_labels_still_needed": dg.MetadataValue.json(need),
            "still_needed_total": dg.MetadataValue.int(sum(need.values())),
            "queued_per_suggested_class": dg.MetadataValue.json(
                dict(queue.group_by("suggested_label").len().iter_rows()) if queue.height else {}
            ),
            "preview": dg.MetadataValue.md(
                preview_table(
                    queue, ["rank", "article_id", "title", "suggested_label", "confidence", "reason"]
                )
            ),
        }
        return dg.MaterializeResult(metadata=metadata)

    return [review_queue]
