"""raw_articles as a Dagster asset: partitions, idempotent re-runs, unique article ids."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.definitions import build_definitions


def _write_jsonl_gz(path: Path, rows: list[dict]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return path


def _materialize(settings, partition: str) -> dg.ExecuteInProcessResult:
    defs = build_definitions(settings)
    job = defs.resolve_implicit_global_asset_job_def()
    return job.get_subset(asset_selection={dg.AssetKey("raw_articles")}).execute_in_process(
        partition_key=partition, instance=dg.DagsterInstance.ephemeral()
    )


@pytest.fixture(autouse=True)
def backend(warehouse_target: str, newsml_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on both warehouses: the DuckDB file and a Postgres database (set after
    newsml_home, which clears NEWSML_WAREHOUSE_URL)."""
    if warehouse_target.startswith("postgresql://"):
        monkeypatch.setenv("NEWSML_WAREHOUSE_URL", warehouse_target)
    return warehouse_target


@pytest.fixture
def dated_inbox(tmp_path: Path) -> Path:
    rows = [
        {
            "id": "a",
            "title": "Shares rally",
            "text": "Markets rose as company profits beat forecasts. " * 20,
            "published": "2026-11-20T23:59:59+00:00",
            "label": "business",
        },
        {
            "id": "b",
            "title": "Cup final",
            "text": "The team won the cup final after extra time. " * 20,
            "published": "2026-11-21T00:00:00+00:00",
            "label": "sport",
        },
        # exact duplicate text of "b" under another id: collapses to one row
        {
            "id": "c",
            "title": "Cup final (copy)",
            "text": "The team won the cup final after extra time. " * 20,
            "published": "2026-11-21T08:00:00+00:00",
        },
        {
            "id": "d",
            "title": "New phone",
            "text": "The device ships with a faster chip and more memory. " * 20,
            "published": "2026-11-21T12:00:00Z",
        },
    ]
    folder = tmp_path / "inbox"
    folder.mkdir()
    _write_jsonl_gz(folder / "part1.jsonl.gz", rows)
    return folder


def test_partition_boundaries_rerun_and_uniqueness(make_settings, dated_inbox: Path, backend: str) -> None:
    settings = make_settings(sources=[{"name": "inbox", "kind": "local", "path": str(dated_inbox)}])
    assert _materialize(settings, "2026-11-21").success
    wh = Warehouse(settings.warehouse_target)
    day21 = wh.read("raw_articles").sort("article_id")
    # 23:59:59 on the 20th belongs to the 20th; midnight UTC starts the 21st; b/c collapse to one.
    assert len(day21) == 2
    assert wh.dialect == ("postgres" if backend.startswith("postgresql://") else "duckdb")
    assert set(day21["gold_label"].drop_nulls().to_list()) == {"sport"}

    assert _materialize(settings, "2026-11-21").success  # re-run: nothing changes
    again = wh.read("raw_articles").sort("article_id")
    assert again.select("article_id", "content_hash").equals(day21.select("article_id", "content_hash"))

    assert _materialize(settings, "2026-11-20").success
    both = wh.read("raw_articles")
    assert len(both) == 3
    assert both["article_id"].n_unique() == len(both)
    assert (
        both.filter(pl.col("gold_label") == "business")["partition_date"].to_list()[0].isoformat()
        == "2026-11-20"
    )


def test_failing_source_does_not_sink_the_others(make_settings, dated_inbox: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "ok", "text": "fine text here", "published": "2026-11-21"}\nnot json\n')
    settings = make_settings(
        sources=[
            {"name": "inbox", "kind": "local", "path": str(dated_inbox)},
            {"name": "broken", "kind": "local", "path": str(bad)},
            {"name": "gone", "kind": "hf", "dataset": str(tmp_path / "no_such_dataset")},
        ]
    )
    result = _materialize(settings, "2026-11-21")
    assert result.success
    mat = result.asset_materializations_for_node("raw_articles")[0]
    assert mat.metadata["source_errors"].value >= 2  # the bad line and the missing dataset
    assert "gone" in mat.metadata["sources"].value
    rows = Warehouse(settings.warehouse_target).read("raw_articles")
    assert set(rows["source"].to_list()) == {"inbox", "broken"}


@pytest.fixture(scope="module")
def loopback(corpora: Path):
    from testkit.loopback import LoopbackServer

    srv = LoopbackServer(corpora, slow_s=1.0).start()
    yield srv
    srv.stop()


def test_raw_articles_from_a_loopback_feed_fills_the_table_and_reruns_change_nothing(
    make_settings, loopback
) -> None:
    settings = make_settings(
        sources=[{"name": "special", "kind": "rss", "url": loopback.url("/feeds/special.xml")}],
        crawl={
            "allow_private_hosts": True,
            "per_host_rps": 1000.0,
            "timeout_s": 2,
            "retries": 1,
            "backoff_s": 0.01,
            "extract_workers": 1,
        },
    )
    first = _materialize(settings, "2023-01-02")
    assert first.success
    wh = Warehouse(settings.warehouse_target)
    rows = wh.read("raw_articles").sort("article_id")
    titles = set(rows["title"].to_list())
    # the good and the redirected page are extracted; 404 and robots-blocked fall back to summaries
    assert {"Good page", "Redirected"} <= titles
    assert rows.filter(pl.col("title") == "Good page")["text_from_summary"].to_list() == [False]
    assert rows.filter(pl.col("title") == "Missing")["text_from_summary"].to_list() == [True]
    assert "Binary" not in titles  # no page text and no summary: nothing to store
    meta = first.asset_materializations_for_node("raw_articles")[0].metadata
    assert meta["source_errors"].value >= 3

    assert _materialize(settings, "2023-01-02").success
    again = wh.read("raw_articles").sort("article_id")
    assert again.select("article_id", "content_hash", "title").equals(
        rows.select("article_id", "content_hash", "title")
    )
    assert again["article_id"].n_unique() == len(again)


def test_a_rewrite_that_would_drop_a_stored_row_fails_the_run_and_keeps_every_row(
    make_settings, dated_inbox: Path
) -> None:
    """README: "A write that would drop a stored row is refused", through raw_articles itself.

    After a day is written, its article "d" disappears from the article store and from the source
    (a store restored from an older copy, an inbox file replaced): re-materializing the day would
    rewrite raw_articles without "d". The run fails naming the lost article and the day, and the
    day's rows are all still there."""
    settings = make_settings(sources=[{"name": "inbox", "kind": "local", "path": str(dated_inbox)}])
    assert _materialize(settings, "2026-11-21").success
    wh = Warehouse(settings.warehouse_target)
    before = wh.read("raw_articles").sort("article_id")
    assert len(before) == 2
    lost = before.filter(pl.col("title") == "New phone")["article_id"].item()

    rows = [json.loads(line) for line in gzip.open(dated_inbox / "part1.jsonl.gz", "rt")]
    _write_jsonl_gz(dated_inbox / "part1.jsonl.gz", [r for r in rows if r["id"] != "d"])
    with wh.transaction(lock=("crawled_articles",)) as s:
        s.execute("DELETE FROM crawled_articles WHERE article_id = ?", [lost])

    defs = build_definitions(settings)
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey("raw_articles")}
    )
    result = job.execute_in_process(
        partition_key="2026-11-21", instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert not result.success
    errors = [
        # the StoreError, as the UI shows it (the step error and its cause)
        e.event_specific_data.error.to_string()
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    ]
    assert len(errors) == 1
    assert (
        "raw_articles partition 2026-11-21: refusing to write: 1 stored article(s) would be removed"
        in errors[0]
    )
    assert lost in errors[0]
    after = wh.read("raw_articles").sort("article_id")
    assert after.select("article_id", "content_hash").equals(before.select("article_id", "content_hash"))
