"""`scored_articles`: the champion's predictions on each day's articles — the stream drift watches."""

import logging
from datetime import UTC, date, datetime

import dagster as dg
import polars as pl

from newsml_pipeline.core.data.schema import SCORED_ARTICLES, conform
from newsml_pipeline.core.serving.predictor import Predictor
from newsml_pipeline.defs.metadata import preview_table
from newsml_pipeline.defs.resources import NewsmlSettings, WarehouseResource

log = logging.getLogger(__name__)

TABLE = "scored_articles"
# The contract columns plus what drift monitoring reads: the auto-label, agreement, scoring time.
SCORED_SCHEMA = SCORED_ARTICLES | {
    "auto_label": pl.String(),
    "agrees_with_auto_label": pl.Boolean(),
    "scored_at": pl.Datetime("us", "UTC"),
}


def score_day(predictor: Predictor, raw: pl.DataFrame, labeled: pl.DataFrame, *, day: date) -> pl.DataFrame:
    """Predict every article of the day and put the auto-label beside the champion's label."""
    if raw.is_empty():
        return pl.DataFrame(schema=SCORED_SCHEMA)
    records = [
        {"title": t, "text": x} for t, x in zip(raw["title"].to_list(), raw["text"].to_list(), strict=True)
    ]
    answers = predictor.predict(records)
    scored = pl.DataFrame(
        {
            "article_id": raw["article_id"],
            "partition_date": [day] * len(raw),
            "model_version": [a["model_version"] for a in answers],
            "label": [a["label"] for a in answers],
            "confidence": [float(a["confidence"]) for a in answers],
        }
    )
    auto = labeled.select("article_id", pl.col("label").alias("auto_label"))
    scored = scored.join(auto, on="article_id", how="left").with_columns(
        pl.when(pl.col("auto_label").is_null())
        .then(None)
        .otherwise(pl.col("label") == pl.col("auto_label"))
        .alias("agrees_with_auto_label"),
        pl.lit(datetime.now(UTC)).cast(pl.Datetime("us", "UTC")).alias("scored_at"),
    )
    return conform(scored, SCORED_ARTICLES, table=TABLE)


def build_monitoring_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name=TABLE,
        group_name="monitoring",
        partitions_def=partitions,
        deps=[dg.AssetKey("raw_articles"), dg.AssetKey("labeled_articles"), dg.AssetKey("deployed_model")],
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"duckdb", "pytorch"},
        pool="gpu",  # the champion runs on CUDA when there is one
        description=(
            "The serving champion's label and confidence for each article of the day (the auto-labeler "
            "before any deployment, named so in model_version), with agreement with the auto-label. "
            "drift_sensor feeds this stream to river ADWIN."
        ),
    )
    def scored_articles(
        context: dg.AssetExecutionContext, newsml: NewsmlSettings, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        wh = warehouse.get()
        predictor = Predictor.from_settings(newsml.settings)
        context.log.info("scoring with model version %s", predictor.model_version)
        days = sorted(date.fromisoformat(k) for k in context.partition_keys)
        frames = []
        for day in days:
            raw = wh.read("raw_articles", where="partition_date = ?", params=[day])
            labeled = wh.read("labeled_articles", where="partition_date = ?", params=[day])
            scored = score_day(predictor, raw, labeled, day=day)
            wh.replace_partition(TABLE, scored, partition_column="partition_date", partition_key=day)
            frames.append(scored)
        scored = pl.concat(frames) if frames else pl.DataFrame(schema=SCORED_SCHEMA)
        metadata: dict = {
            "dagster/row_count": dg.MetadataValue.int(len(scored)),
            "model_version": predictor.model_version,
            "label_distribution": dg.MetadataValue.json(dict(scored.group_by("label").len().iter_rows())),
            "preview": dg.MetadataValue.md(
                preview_table(scored, ["article_id", "model_version", "label", "confidence"])
            ),
        }
        # Means only where there is something to average: an empty day reports no number at all.
        if len(scored):
            metadata["mean_confidence"] = dg.MetadataValue.float(float(scored["confidence"].mean()))
        agree = scored["agrees_with_auto_label"].drop_nulls()
        if len(agree):
            metadata["agreement_with_auto_label"] = dg.MetadataValue.float(float(agree.mean()))
        return dg.MaterializeResult(metadata=metadata)

    return [scored_articles]
