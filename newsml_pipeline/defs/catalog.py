"""Catalog metadata applied once to every asset: owners, and the column schema of every table.

Owners and `dagster/column_schema` are what the Dagster UI's catalog filters and shows (who to ask,
which columns a table has) without opening code. The schemas come from the same polars contracts
the writers conform to (core/data/schema.py and friends), so the catalog cannot drift from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dagster as dg
import polars as pl

from newsml_pipeline.core.data.article_store import STORE_EXTRA, STORE_SCHEMA, STORE_TABLE
from newsml_pipeline.core.data.schema import LABELED_ARTICLES, RAW_ARTICLES
from newsml_pipeline.core.data.splits import OUTPUT_SCHEMA
from newsml_pipeline.core.entities.review import QUEUE_SCHEMA as ENTITY_REVIEW_SCHEMA
from newsml_pipeline.core.labeling.feedback import GOLD_SCHEMA
from newsml_pipeline.core.labeling.review_queue import QUEUE_SCHEMA
from newsml_pipeline.defs import entities
from newsml_pipeline.defs.monitoring import SCORED_SCHEMA

# Who answers for the pipeline's assets (Dagster owners: a `team:` name or an e-mail address).
OWNERS = ["team:newsml"]

COLUMN_SCHEMA_KEY = "dagster/column_schema"

# Each warehouse table asset's columns, in table order.
TABLE_COLUMNS: dict[str, Mapping[str, pl.DataType]] = {
    STORE_TABLE: STORE_SCHEMA,
    # a day of the store: its rows without the store's own bookkeeping of duplicates and sightings
    "raw_articles": {**RAW_ARTICLES, **{k: STORE_EXTRA[k] for k in ("updated_at", "revisions")}},
    "label_feedback": GOLD_SCHEMA,
    "labeled_articles": {**LABELED_ARTICLES, "class_fit": pl.Float64()},  # + the drift signal no_fit reads
    "review_queue": QUEUE_SCHEMA,
    "dataset_splits": {**OUTPUT_SCHEMA, "evaluation_kind": pl.String()},
    "scored_articles": SCORED_SCHEMA,
    # the entity task's tables (present when the config has an `entities:` section)
    entities.LABELS_TABLE: entities.LABELS_SCHEMA,
    entities.SPLITS_TABLE: entities.SPLITS_SCHEMA,
    entities.MENTIONS_TABLE: entities.MENTIONS_SCHEMA,
    entities.REVIEW_TABLE: ENTITY_REVIEW_SCHEMA,
}

DESCRIPTIONS = {
    "article_id": "stable id: hash of the canonical URL (or source + id, or the content)",
    "partition_date": "the day partition: published date, else first-fetch date (UTC)",
    "label": "topic label (null = abstain)",
    "confidence": "probability of the label",
    "gold_label": "trusted label carried by the source (null: none)",
    "split": "train / val / test",
    "label_source": "auto / gold / silver",
    "model_version": "registered model version that scored the row",
    "votes": "JSON: labelling function -> label or null",
}


def _type_name(dtype: pl.DataType) -> str:
    if dtype == pl.String:
        return "string"
    if isinstance(dtype, pl.Datetime):
        return f"timestamp ({dtype.time_zone})" if dtype.time_zone else "timestamp"
    if dtype == pl.Date:
        return "date"
    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_integer():
        return "int"
    if dtype.is_float():
        return "float"
    return str(dtype).lower()


def table_schema(columns: Mapping[str, pl.DataType]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, _type_name(dtype), description=DESCRIPTIONS.get(name))
            for name, dtype in columns.items()
        ]
    )


def _with_catalog(spec: dg.AssetSpec) -> dg.AssetSpec:
    owners = list(spec.owners) or OWNERS
    columns = TABLE_COLUMNS.get(spec.key.to_user_string())
    if columns is None or COLUMN_SCHEMA_KEY in spec.metadata:
        return spec.replace_attributes(owners=owners)
    return spec.replace_attributes(owners=owners).merge_attributes(
        metadata={COLUMN_SCHEMA_KEY: table_schema(columns)}
    )


def with_catalog_metadata(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """Every asset with owners (OWNERS unless it names its own) and, for the warehouse tables, a
    column schema."""
    return [a.map_asset_specs(_with_catalog) for a in assets]
