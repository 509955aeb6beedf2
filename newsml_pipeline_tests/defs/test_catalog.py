"""Metadata users filter on in the UI's catalog: owners and kinds on every asset, a column schema on
every warehouse table, per-day checks on labeled_articles, and instance configs without the
new-user pop-up."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from newsml_pipeline.definitions import build_definitions
from newsml_pipeline.defs.catalog import COLUMN_SCHEMA_KEY, TABLE_COLUMNS
from newsml_pipeline_tests.defs.test_entities_chain import ENTITIES
from newsml_pipeline_tests.deploy.manifests import K8S, PG_ENV, REPO, load_instance

INSTANCE_YAMLS = [REPO / "dagster.yaml", REPO / "deploy" / "dagster.postgres.yaml", K8S / "dagster.k8s.yaml"]
# Every warehouse table asset carries the kind of the warehouse it is written to.
TABLE_KIND = "duckdb"


@pytest.fixture
def graph(make_settings):  # noqa: ANN001, ANN201
    """Both tasks' assets: the topic chain and, with an `entities:` section, the entity chain."""
    return build_definitions(make_settings(entities=ENTITIES)).resolve_asset_graph()


def test_every_asset_has_owners_and_kinds(graph) -> None:  # noqa: ANN001
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners, f"{key.to_user_string()} has no owner"
        assert node.kinds, f"{key.to_user_string()} has no kind"


def test_every_table_asset_declares_its_column_schema(graph) -> None:  # noqa: ANN001
    tables = {k.to_user_string() for k in graph.get_all_asset_keys() if TABLE_KIND in graph.get(k).kinds}
    assert {"raw_articles", "labeled_articles", "dataset_splits", "scored_articles"} <= tables
    assert {"entity_labels", "entity_splits", "entity_mentions", "entity_review_queue"} <= tables
    for name in tables:
        schema = graph.get(dg.AssetKey(name)).metadata.get(COLUMN_SCHEMA_KEY)
        assert isinstance(schema, dg.TableSchema), f"{name} declares no column schema"
        assert [c.name for c in schema.columns] == list(TABLE_COLUMNS[name])
        assert all(c.type for c in schema.columns)
    raw = {c.name: c.type for c in graph.get(dg.AssetKey("raw_articles")).metadata[COLUMN_SCHEMA_KEY].columns}
    assert raw["published_at"] == "timestamp (UTC)" and raw["partition_date"] == "date"


def test_labeled_articles_checks_are_per_day(graph) -> None:  # noqa: ANN001
    labeled = graph.get(dg.AssetKey("labeled_articles"))
    checks = [k for k in graph.asset_check_keys if k.asset_key == labeled.key]
    assert checks
    for key in checks:
        assert graph.get_check_spec(key).partitions_def == labeled.partitions_def, key


@pytest.mark.parametrize("path", INSTANCE_YAMLS, ids=lambda p: p.name)
def test_instance_configs_ship_without_the_new_user_popup(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in PG_ENV.items():
        monkeypatch.setenv(k, v)
    assert yaml.safe_load(path.read_text())["nux"] == {"enabled": False}
    ref, _ = load_instance(path)  # Dagster's own schema accepts it
    assert ref.settings["nux"] == {"enabled": False}
