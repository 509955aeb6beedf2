"""A partition range a user can click: the shipped config lists recent days, not years, and a
backfill over days no source can serve says so instead of recording empty days."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from newsml_pipeline.core.data.coverage import unservable_days
from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.definitions import build_definitions
from newsml_pipeline.defs.partitions import daily_partitions
from newsml_pipeline.settings import DEFAULT_CONFIG_PATH, Settings


def test_the_shipped_config_lists_recent_days_not_years(newsml_home: Path) -> None:
    settings = Settings(home=newsml_home, config_file=DEFAULT_CONFIG_PATH)
    keys = daily_partitions(settings.config).get_partition_keys()
    today = datetime.now(UTC).date()
    lookback = settings.config.partitions.lookback_days
    assert keys[0] == (today - timedelta(days=lookback)).isoformat()
    assert keys[-1] == today.isoformat()  # today is the partition people run
    assert len(keys) == lookback + 1 < 100  # was ~2,500 from 2020-01-01


def test_unservable_days_are_empty_and_older_than_what_the_sources_hold() -> None:
    d = [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3), date(2026, 1, 4)]
    stored = {date(2026, 1, 1): 5}
    assert unservable_days(d, stored=stored, oldest_served=date(2026, 1, 3)) == [date(2026, 1, 2)]
    # a quiet day inside the sources' window is a real empty day, and an unknown window judges nothing
    assert unservable_days(d, stored={}, oldest_served=date(2026, 1, 1)) == []
    assert unservable_days(d, stored={}, oldest_served=None) == []


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    rows = [
        {
            "id": "a",
            "title": "Shares rally",
            "text": "Markets rose. " * 30,
            "published": "2026-11-20T10:00:00+00:00",
        },
        {
            "id": "b",
            "title": "Cup final",
            "text": "The team won. " * 30,
            "published": "2026-11-21T10:00:00+00:00",
        },
    ]
    (folder / "articles.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _materialize_range(settings: Settings, first: str, last: str) -> dg.ExecuteInProcessResult:
    job = build_definitions(settings).resolve_implicit_global_asset_job_def()
    return job.get_subset(asset_selection={dg.AssetKey("raw_articles")}).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        raise_on_error=False,
    )


def test_a_backfill_no_source_can_serve_says_so_and_writes_nothing(make_settings, inbox: Path) -> None:
    settings = make_settings(
        sources=[{"name": "inbox", "kind": "local", "path": str(inbox)}],
        partitions={"start_date": "2026-01-01"},
    )
    assert _materialize_range(settings, "2026-11-20", "2026-11-21").success
    wh = Warehouse(settings.warehouse_target)
    before = wh.read("raw_articles").sort("article_id")
    assert len(before) == 2

    # January: nothing stored, and the sources hold articles from 2026-11-20 on
    result = _materialize_range(settings, "2026-01-05", "2026-01-07")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    message = failure.step_failure_data.user_failure_data.description
    assert "no source can serve 2026-01-05...2026-01-07 (3 days)" in message
    assert "from 2026-11-20 on" in message
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in [e.event_type for e in result.all_events]
    assert wh.read("raw_articles").sort("article_id").equals(before)  # stored rows untouched

    # a range that reaches the sources' days runs; its unservable day is counted, not hidden
    result = _materialize_range(settings, "2026-11-19", "2026-11-21")
    assert result.success
    meta = result.asset_materializations_for_node("raw_articles")[0].metadata
    assert meta["unservable_days"].value == 1
    assert wh.read("raw_articles").sort("article_id").equals(before)
