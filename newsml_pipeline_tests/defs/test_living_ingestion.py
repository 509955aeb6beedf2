"""Ingestion on feeds that roll: nothing stored is lost by a backfill, a dead source or the clock.

Each test reproduces one problem of the living-system issue against the simulated newsroom
(loopback RSS feeds showing only their latest items, a clock the test sets).
"""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.definitions import build_definitions
from newsml_pipeline.defs.clock import AS_OF_TAG
from newsml_pipeline.newsroom import NewsSite, Story
from newsml_pipeline.settings import Settings
from newsml_pipeline_tests.dagster_cli import materialize
from newsml_pipeline_tests.defs.conftest import write_config

REPO = Path(__file__).resolve().parents[2]
D1, D2, D3 = date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 19)
WORDS = {
    "business": "shares profit market investors bank economy company sales growth prices",
    "sport": "match player team coach season league cup championship goal win",
}


def _text(i: int, topic: str) -> str:
    words = WORDS[topic].split()
    sentences = [
        f"Report {i} says the {words[(i + k) % len(words)]} and the {words[(i + 3 * k) % len(words)]} "
        f"moved again on day {i % 7} of the story, number {i * 31 + k}."
        for k in range(12)
    ]
    return " ".join(sentences)


def _stories(day: date, n: int, *, start: int = 0, section: str = "news", **kw) -> list[Story]:
    out = []
    for i in range(start, start + n):
        topic = "business" if i % 2 else "sport"
        published = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
            minutes=20 * (i - start) + 5
        )
        out.append(
            Story(
                id=f"{day:%m%d}-{i:03d}",
                title=f"{topic.title()} story {i}",
                text=_text(i, topic),
                published=published,
                section=section,
                topic=topic,
                **kw,
            )
        )
    return out


def _settings(tmp_path: Path, newsml_home: Path, site: NewsSite, *, fetch_pages: bool = True) -> Settings:
    cfg = write_config(
        tmp_path / "config.yaml",
        sources=[
            {"name": sec, "kind": "rss", "url": site.feed_url(sec), "fetch_pages": fetch_pages}
            for sec in site.sections
        ],
        partitions={"start_date": "2026-11-01"},
        crawl={
            "allow_private_hosts": True,
            "per_host_rps": 1000.0,
            "timeout_s": 5,
            "retries": 0,
            "backoff_s": 0.01,
            "extract_workers": 1,
        },
    )
    return Settings(home=newsml_home, config_file=cfg)


def _materialize(
    defs: dg.Definitions, assets: list[str], partition: str | None, instance, *, as_of: datetime | None = None
) -> dg.ExecuteInProcessResult:
    """Run assets in process; `as_of` tells the run what time it is (the newsroom's clock)."""
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey(a) for a in assets}
    )
    tags = {AS_OF_TAG: as_of.isoformat()} if as_of is not None else None
    return job.execute_in_process(partition_key=partition, instance=instance, raise_on_error=False, tags=tags)


def _day_ids(wh: Warehouse, table: str, day: date) -> set[str]:
    if not wh.table_exists(table):
        return set()
    return set(wh.query(f"SELECT article_id FROM {table} WHERE partition_date = ?", [day])["article_id"])


def test_backfilling_a_day_after_its_items_rolled_off_the_feed_keeps_them(tmp_path, newsml_home) -> None:
    """Day 1 stores 40; on day 2 the feed shows 40 others; re-materializing day 1 keeps its 40
    (it left 0 rows before)."""
    with NewsSite(_stories(D1, 40) + _stories(D2, 40, start=40), feed_size=40) as site:
        settings = _settings(tmp_path, newsml_home, site)
        defs = build_definitions(settings)
        wh = Warehouse(settings.warehouse_path)
        instance = dg.DagsterInstance.ephemeral()
        site.now = datetime(D1.year, D1.month, D1.day, 23, 30, tzinfo=UTC)
        assert _materialize(defs, ["raw_articles"], D1.isoformat(), instance).success
        day1 = _day_ids(wh, "raw_articles", D1)
        assert len(day1) == 40

        site.now = datetime(D2.year, D2.month, D2.day, 23, 30, tzinfo=UTC)  # day 1's items are gone
        assert {s.id for s in site.visible("news")}.isdisjoint({f"{D1:%m%d}-{i:03d}" for i in range(40)})
        again = _materialize(defs, ["raw_articles"], D1.isoformat(), instance)
        assert again.success
        assert _day_ids(wh, "raw_articles", D1) == day1
        assert (
            again.asset_materializations_for_node("raw_articles")[0].metadata["stored_for_other_days"].value
            == 40
        )
        assert _materialize(defs, ["raw_articles"], D2.isoformat(), instance).success
        assert len(_day_ids(wh, "raw_articles", D2)) == 40
        raw = wh.read("raw_articles")
        assert raw["article_id"].n_unique() == len(raw) == 80


def _cli(env: dict, partition: str) -> subprocess.CompletedProcess:
    return materialize("raw_articles,labeled_articles,scored_articles", env=env, partition=partition)


def test_a_day_with_every_source_down_fails_and_changes_nothing(tmp_path, newsml_home) -> None:
    """Through the real CLI (multiprocess executor): the ingest of a day whose only feed is down
    fails, names the error, and leaves raw, labeled and scored rows of that day as they were."""
    with NewsSite(_stories(D2, 40), feed_size=40) as site:
        settings = _settings(tmp_path, newsml_home, site)
        dagster_home = tmp_path / "dagster_home"
        dagster_home.mkdir()
        env = {
            **os.environ,
            "NEWSML_HOME": str(newsml_home),
            "NEWSML_CONFIG": str(settings.config_file),
            "DAGSTER_HOME": str(dagster_home),
            "HF_HUB_OFFLINE": "1",
        }
        site.now = datetime(D2.year, D2.month, D2.day, 23, 30, tzinfo=UTC)
        # the stored day is set up in process (one CLI run less); the run that matters is the CLI's
        first = _materialize(
            build_definitions(settings),
            ["raw_articles", "labeled_articles", "scored_articles"],
            D2.isoformat(),
            dg.DagsterInstance.ephemeral(),
            as_of=site.now,
        )
        assert first.success
        wh = Warehouse(settings.warehouse_path)
        before = {t: _day_ids(wh, t, D2) for t in ("raw_articles", "labeled_articles", "scored_articles")}
        assert all(len(v) == 40 for v in before.values()), {t: len(v) for t, v in before.items()}

        site.down = True
        down = _cli(env, D2.isoformat())
        assert down.returncode != 0
        out = down.stdout + down.stderr
        assert "every source failed" in out and "HTTP 503" in out
        after = {t: _day_ids(wh, t, D2) for t in before}
        assert after == before


def test_hourly_crawls_keep_what_rolls_off_and_the_daily_tick_catches_late_articles(
    tmp_path, newsml_home
) -> None:
    """The old daily 00:30 crawl saw only what was still on the feed: undated items were dated
    today and dropped, items that rolled off were never seen. With the hourly crawl every item of
    the day is stored, undated ones on their first-fetch day, and a story that surfaces after its
    day was ingested makes the next daily tick re-ingest that day."""
    undated = [
        Story(
            id=f"u{i}",
            title=f"Undated {i}",
            text=_text(100 + i, "sport"),
            section="news",
            published=datetime(D1.year, D1.month, D1.day, 6 + i, 30, tzinfo=UTC),
            dated=False,
        )
        for i in range(3)
    ]
    after_midnight = _stories(D2, 2, start=90)
    late = Story(
        id="late",
        title="Late story",
        text=_text(77, "business"),
        section="news",
        published=datetime(D1.year, D1.month, D1.day, 23, 50, tzinfo=UTC),
        appears_at=datetime(D2.year, D2.month, D2.day, 1, 0, tzinfo=UTC),
    )
    stories = _stories(D1, 36) + undated + after_midnight + [late]
    with NewsSite(stories, feed_size=8) as site:
        settings = _settings(tmp_path, newsml_home, site, fetch_pages=False)
        defs = build_definitions(settings)
        wh = Warehouse(settings.warehouse_path)
        instance = dg.DagsterInstance.ephemeral()
        # 8 items on the feed, 3 an hour published: a crawl every 2 hours sees every item
        for hour in range(1, 25, 2):
            site.now = datetime(D1.year, D1.month, D1.day, tzinfo=UTC) + timedelta(hours=hour)
            assert _materialize(defs, ["crawled_articles"], None, instance, as_of=site.now).success
        # the 00:30 tick of the daily schedule asks for the day that ended
        tick = datetime(D2.year, D2.month, D2.day, 0, 30, tzinfo=UTC)
        site.now = tick
        reqs = _tick(defs, instance, tick)
        assert [r.partition_key for r in reqs] == [D1.isoformat()]
        assert _materialize(defs, ["raw_articles"], D1.isoformat(), instance, as_of=tick).success
        day1 = _day_ids(wh, "raw_articles", D1)
        published_d1 = {s.id for s in stories if s.published.date() == D1 and s.id != "late"}
        assert len(day1) == len(published_d1) == 39  # 36 dated + 3 undated (first fetched on D1)
        assert len(site.visible("news")) < 39  # one crawl at 00:30 could not have seen them all

        # the day goes on: the late story (dated D1) shows up at 01:00, after D1 was ingested
        for hour in (2, 4):
            site.now = datetime(D2.year, D2.month, D2.day, hour, tzinfo=UTC)
            assert _materialize(defs, ["crawled_articles"], None, instance, as_of=site.now).success
        tick3 = datetime(D3.year, D3.month, D3.day, 0, 30, tzinfo=UTC)
        site.now = tick3
        reqs = _tick(defs, instance, tick3)
        keys = [(r.partition_key, (r.tags or {}).get("newsml/trigger")) for r in reqs]
        assert keys == [(D2.isoformat(), None), (D1.isoformat(), "late-arrivals")]
        assert _materialize(defs, ["raw_articles"], D1.isoformat(), instance, as_of=tick3).success
        assert _day_ids(wh, "raw_articles", D1) == day1 | {_article_id(wh, "late")}
        assert _materialize(defs, ["raw_articles"], D2.isoformat(), instance, as_of=tick3).success
        assert len(_day_ids(wh, "raw_articles", D2)) == 2  # published after midnight: the next day


def _tick(defs: dg.Definitions, instance, when: datetime) -> list[dg.RunRequest]:
    schedule = defs.resolve_schedule_def("daily_ingest_schedule")
    ctx = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, resources=defs.resources
    )
    return list(schedule(ctx))


def _article_id(wh: Warehouse, title_prefix: str) -> str:
    return wh.query(
        "SELECT article_id FROM crawled_articles WHERE url LIKE ?", [f"%/articles/{title_prefix}.html"]
    )["article_id"].item()


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
