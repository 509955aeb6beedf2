"""Re-scoring a day is not new data: an article scored again by the same model keeps its scored_at.

The drift sensor consumes `scored_articles` in (scored_at, article_id) order after its cursor. A
backfill or a late-arrival re-run rewrites whole days; if every rewritten row got a fresh
scored_at, the sensor would feed the same articles to ADWIN a second time and a re-run could
look like (or hide) drift. Rows are new to the stream only when the article or the model is.
"""

from __future__ import annotations

import polars as pl


def keep_first_scoring(new: pl.DataFrame, previous: pl.DataFrame) -> pl.DataFrame:
    """`new` with `scored_at` taken from `previous` where (article_id, model_version) match.

    new / previous: scored_articles rows (article_id, model_version, scored_at, ...); previous may
    be empty or lack rows. Row order and every other column of `new` are kept.
    """
    if new.is_empty() or previous.is_empty():
        return new
    # the warehouse may hand timestamps back in another spelling of UTC ("Etc/UTC")
    first = pl.col("scored_at").dt.convert_time_zone("UTC").cast(new.schema["scored_at"])
    before = previous.select("article_id", "model_version", first.alias("_first_scored_at")).unique(
        subset=["article_id", "model_version"], keep="first"
    )
    return (
        new.join(before, on=["article_id", "model_version"], how="left")
        .with_columns(pl.coalesce("_first_scored_at", "scored_at").alias("scored_at"))
        .drop("_first_scored_at")
        .select(new.columns)
    )
