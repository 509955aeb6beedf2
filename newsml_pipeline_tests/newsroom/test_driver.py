"""The simulated driver ticks schedules and the sensor the way the daemon does.

Over the demo's own configuration and newsroom: the definitions load without Dagster's cron
warning (the demo's once-a-day crawl used to be `0 */24 * * *`, warned about on every load,
i.e. ~79 lines per demo); a crawl run started by a tick carries `dagster/schedule_name`, the tag
the UI reads to say which schedule launched it; the weekly retrain over a warehouse without
articles is skipped with its reason and counted as skipped, not as a failed run.
"""

from __future__ import annotations

import os
import warnings
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml

from newsml_pipeline.newsroom.demo import DemoOptions, demo_config, make_stories
from newsml_pipeline.newsroom.driver import LivingSystem, SkippedRetrain, every_hours_cron
from newsml_pipeline.newsroom.site import NewsSite


@pytest.mark.parametrize("hours", [1, 6, 12, 24])
def test_every_hours_cron_fires_every_n_hours_without_dagster_warning(hours: int) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        schedule = dg.ScheduleDefinition(name="s", job_name="j", cron_schedule=every_hours_cron(hours))
    assert not [w for w in caught if "cron" in str(w.message)], [str(w.message) for w in caught]
    assert (
        schedule.cron_schedule
        == {1: "0 */1 * * *", 6: "0 */6 * * *", 12: "0 */12 * * *", 24: "0 0 * * *"}[hours]
    )


def test_ticks_tag_runs_with_their_schedule_and_count_a_skipped_retrain(
    tmp_path: Path, newsml_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = DemoOptions(days=7, change_day=7, per_day=20)  # crawl_every 24 h: the demo's default
    stories = make_stories(opts)
    with NewsSite(stories, feed_size=opts.feed_size) as site:
        cfg = tmp_path / "demo.yaml"
        cfg.write_text(yaml.safe_dump(demo_config(newsml_home, site, opts), sort_keys=False))
        assert yaml.safe_load(cfg.read_text())["crawl"]["schedule"] == "0 0 * * *"
        monkeypatch.setenv("NEWSML_CONFIG", str(cfg))
        (tmp_path / "dagster").mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
            monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                system = LivingSystem(instance, site, executor="in_process", crawl_every=24)
            assert not [w for w in caught if "cron" in str(w.message)], [str(w.message) for w in caught]
            t = datetime(2026, 10, 1, 12, tzinfo=UTC)
            site.now = t
            assert system.crawl_tick(t) == 1
            (run,) = instance.get_runs()
            assert run.job_name == "crawl_job" and run.status == dg.DagsterRunStatus.SUCCESS
            assert run.tags["dagster/schedule_name"] == "hourly_crawl_schedule"

            # the daily tick's request, resolved as the daemon resolves it (partition + schedule name)
            # (yesterday, then the earlier days whose crawled articles raw_articles lacks, within late_days)
            daily, _ = system._schedule_requests(system._daily, datetime(2026, 10, 2, 0, 30, tzinfo=UTC))
            assert [r.partition_key for r in daily] == ["2026-10-01", "2026-09-29", "2026-09-30"]
            assert {r.tags["dagster/schedule_name"] for r in daily} == {"daily_ingest_schedule"}

            monday = datetime(2026, 10, 5, 3, tzinfo=UTC)
            (skipped,) = system.weekly_tick(monday)  # raw/labeled tables do not exist yet
            assert isinstance(skipped, SkippedRetrain) and skipped.trigger == "schedule"
            assert "not materialized" in skipped.reason and "retrain_job not started" in skipped.reason
            assert system.tally.skipped == [skipped]
            assert not system.tally.failed and "retrain_job" not in system.tally.runs
            assert len(instance.get_runs()) == 1  # no retrain run was started
    assert os.environ["NEWSML_CONFIG"] == str(cfg)
