"""`scored_articles`: the champion's predictions on each day's articles — the stream drift watches."""

import logging
from datetime import UTC, date, datetime

import dagster as dg
import polars as pl

from newsml_pipeline.core.data.schema import SCORED_ARTICLES, conform
from newsml_pipeline.core.monitoring.rescoring import keep_first_scoring
from newsml_pipeline.core.serving.predictor import AUTO_LABELER_VERSION, Predictor
from newsml_pipeline.defs.metadata import metadata_table
from newsml_pipeline.defs.placement import GPU_STEP, model_step_pool
from newsml_pipeline.defs.resources import NewsmlSettings, WarehouseResource
from newsml_pipeline.defs.retries import TRANSIENT_RETRY, retry_transient_only

log = logging.getLogger(__name__)

# Bump by hand when a change here (or in the core code its assets call) changes what they compute:
# the Dagster UI then marks the assets as stale because their code version changed.
CODE_VERSION = "3"

TABLE = "scored_articles"
# The contract columns plus what drift monitoring reads: the auto-label, agreement, how well the
# best class fits the article (from labeled_articles), scoring time.
SCORED_SCHEMA = SCORED_ARTICLES | {
    "auto_label": pl.String(),
    "agrees_with_auto_label": pl.Boolean(),
    "class_fit": pl.Float64(),  # the auto-labeller's best class similarity (drift signal no_fit)
    "scored_at": pl.Datetime("us", "UTC"),
}


def score_day(predictor: Predictor, raw: pl.DataFrame, labeled: pl.DataFrame, *, day: date) -> pl.DataFrame:
    """Predict every article of the day and put the auto-label beside the champion's label."""
    if raw.is_empty():
        return pl.DataFrame(schema=SCORED_SCHEMA)
    stand_in = predictor.model_version == AUTO_LABELER_VERSION and labeled.height > 0
    if stand_in:
        # No champion yet: the stand-in model IS the auto-labeller, whose answers for these very
        # articles (fitted on the whole day, every function voting) are in labeled_articles.
        # Only where it abstained (a model always answers) is the stand-in asked per article.
        known = labeled.filter(pl.col("label").is_not_null()).select("article_id", "label", "confidence")
        todo = raw.join(known, on="article_id", how="anti")
    else:
        known, todo = None, raw
    records = [
        {"title": t, "text": x} for t, x in zip(todo["title"].to_list(), todo["text"].to_list(), strict=True)
    ]
    answers = predictor.predict(records) if records else []
    asked = pl.DataFrame(
        {
            "article_id": todo["article_id"],
            "model_version": [a["model_version"] for a in answers],
            "label": [a["label"] for a in answers],
            "confidence": [float(a["confidence"]) for a in answers],
        },
        schema={
            "article_id": pl.String,
            "model_version": pl.String,
            "label": pl.String,
            "confidence": pl.Float64,
        },
    )
    if known is not None:
        from_labels = known.select(
            "article_id",
            pl.lit(AUTO_LABELER_VERSION).alias("model_version"),
            pl.col("label").cast(pl.String),
            pl.col("confidence").cast(pl.Float64),
        )
        asked = pl.concat([from_labels, asked])
    # in the day's article order, every raw row scored once
    scored = (
        raw.select("article_id")
        .join(asked, on="article_id", how="left", maintain_order="left")
        .select(
            "article_id",
            pl.lit(day).cast(pl.Date).alias("partition_date"),
            "model_version",
            "label",
            "confidence",
        )
    )
    fit = (
        pl.col("class_fit") if "class_fit" in labeled.columns else pl.lit(None, pl.Float64).alias("class_fit")
    )
    auto = labeled.select("article_id", pl.col("label").alias("auto_label"), fit.cast(pl.Float64))
    scored = scored.join(auto, on="article_id", how="left").with_columns(
        pl.when(pl.col("auto_label").is_null())
        .then(None)
        .otherwise(pl.col("label") == pl.col("auto_label"))
        .alias("agrees_with_auto_label"),
        pl.lit(datetime.now(UTC)).cast(pl.Datetime("us", "UTC")).alias("scored_at"),
    )
    return conform(scored.select(list(SCORED_SCHEMA)), SCORED_ARTICLES, table=TABLE)


def build_monitoring_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name=TABLE,
        group_name="monitoring",
        op_tags=GPU_STEP,
        retry_policy=TRANSIENT_RETRY,  # network / shared-service faults (defs/retries.py)
        partitions_def=partitions,
        deps=[dg.AssetKey("raw_articles"), dg.AssetKey("labeled_articles"), dg.AssetKey("deployed_model")],
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"duckdb", "pytorch"},
        code_version=CODE_VERSION,
        pool=model_step_pool(TABLE),  # the champion runs on CUDA when there is one
        description=(
            "The serving champion's label and confidence for each article of the day (the auto-labeler "
            "before any deployment, named so in model_version), with agreement with the auto-label. "
            "drift_sensor feeds this stream to river ADWIN."
        ),
    )
    @retry_transient_only
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
            if wh.table_exists(TABLE):  # a re-run: same article, same model = not new to the drift stream
                previous = wh.query(
                    f"SELECT article_id, model_version, scored_at FROM {TABLE} WHERE partition_date = ?",
                    [day],
                )
                scored = keep_first_scoring(scored, previous)
            wh.replace_partition(TABLE, scored, partition_column="partition_date", partition_key=day)
            frames.append(scored)
        scored = pl.concat(frames) if frames else pl.DataFrame(schema=SCORED_SCHEMA)
        metadata: dict = {
            "dagster/row_count": dg.MetadataValue.int(len(scored)),
            "model_version": predictor.model_version,
            "label_distribution": dg.MetadataValue.json(dict(scored.group_by("label").len().iter_rows())),
            "preview": metadata_table(
                scored.select("article_id", "model_version", "label", "confidence").head(10)
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
