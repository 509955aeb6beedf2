"""Jobs, schedules and the drift sensor: the pipeline runs itself.

- `crawl_job` (crawled_articles) runs hourly (`crawl.schedule`): it records what the feeds hold
  now, so items that roll off a feed between two daily runs are kept.
- `ingest_job` (raw → labeled → scored for one day) runs daily at 00:30 UTC for the day that just
  ended, and again for any of the last `crawl.late_days` days that gained stored articles since.
- `retrain_job` (feedback → splits → candidate → evaluation + gate → deployment) runs weekly and
  whenever ADWIN sees the scored stream drift, but only when its splits can be built: otherwise
  the schedule and the sensor skip with a reason naming what is missing (core/data/readiness.py,
  the check dataset_splits itself runs), so a failed retrain_job means something broke.
  Retrains never overlap: the job carries a tag whose run concurrency is limited to one in
  dagster.yaml, and training sits in a one-slot pool.
"""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg

from newsml_pipeline.core.data.article_store import ArticleStore
from newsml_pipeline.core.data.readiness import SplitsAssessment
from newsml_pipeline.core.monitoring.drift import DriftStateStore
from newsml_pipeline.core.monitoring.sensor_logic import run_drift_tick
from newsml_pipeline.defs.ingestion import article_store
from newsml_pipeline.defs.resources import NewsmlSettings, WarehouseResource
from newsml_pipeline.defs.training import retrain_readiness
from newsml_pipeline.settings import NewsmlConfig

RETRAIN_TAGS = {"newsml/job": "retrain"}
# Every skip of a retrain that cannot run yet says this (then what is missing).
RETRAIN_SKIPPED = "retrain_job not started: "

INGEST_ASSETS = ["raw_articles", "labeled_articles", "scored_articles", "review_queue"]
CRAWL_ASSETS = ["crawled_articles"]
RETRAIN_ASSETS = ["label_feedback", "dataset_splits", "candidate_model", "model_evaluation", "deployed_model"]


def build_jobs(partitions: dg.PartitionsDefinition) -> tuple[Any, Any, Any]:
    ingest_job = dg.define_asset_job(
        "ingest_job",
        selection=dg.AssetSelection.assets(*INGEST_ASSETS),
        partitions_def=partitions,
        description="One day's articles: crawl/load → auto-label → score with the champion → queue the ones worth a label.",
    )
    retrain_job = dg.define_asset_job(
        "retrain_job",
        selection=dg.AssetSelection.assets(*RETRAIN_ASSETS),
        tags=RETRAIN_TAGS,
        description=(
            "Refresh feedback and splits, fine-tune a LoRA candidate, evaluate it against the baseline "
            "and champion, and deploy it only if the blocking evaluation_gate passes."
        ),
    )
    # One step, I/O-bound, no model: run in the run's own process (the daemon already gives every
    # run one). A step process per hourly crawl cost as much as the crawl itself (2-5 s of
    # interpreter start and code-location load against 2-5 s of fetching and extraction).
    crawl_job = dg.define_asset_job(
        "crawl_job",
        selection=dg.AssetSelection.assets(*CRAWL_ASSETS),
        executor_def=dg.in_process_executor,
        description="Read every source and record what it holds now in crawled_articles (hourly).",
    )
    return ingest_job, retrain_job, crawl_job


def ingest_requests(
    *, now: datetime, store: ArticleStore, late_days: int, first_day: date
) -> list[dg.RunRequest]:
    """The daily tick's runs: yesterday, plus each recent day with stored articles it lacks.

    Yesterday's run key is the day (one run per day however often the tick is evaluated); a
    late-arrival run's key carries the count, so new late articles get a new run and the same
    ones never get two.
    """
    yesterday = (now.astimezone(UTC) - timedelta(days=1)).date()
    requests = [dg.RunRequest(run_key=f"ingest-{yesterday.isoformat()}", partition_key=yesterday.isoformat())]
    if late_days:
        missing = store.missing_from("raw_articles", since=yesterday - timedelta(days=late_days))
        for day, n in missing.items():
            if day >= yesterday or day < first_day:
                continue
            requests.append(
                dg.RunRequest(
                    run_key=f"ingest-{day.isoformat()}-late-{n}",
                    partition_key=day.isoformat(),
                    tags={"newsml/trigger": "late-arrivals", "newsml/late_articles": str(n)},
                )
            )
    return requests


def build_schedules(ingest_job, retrain_job, crawl_job, config: NewsmlConfig) -> list[dg.ScheduleDefinition]:
    first_day = date.fromisoformat(config.partitions.start_date)

    @dg.schedule(
        name="daily_ingest_schedule",
        job=ingest_job,
        cron_schedule=config.schedules.ingest,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            f"{config.schedules.ingest} (UTC, schedules.ingest): ingest, label and score the day that just "
            "ended (the hourly crawl has recorded its "
            "articles as they appeared), and re-ingest recent days that gained late articles."
        ),
    )
    def daily_ingest_schedule(
        context: dg.ScheduleEvaluationContext, newsml: NewsmlSettings, warehouse: WarehouseResource
    ) -> list[dg.RunRequest]:
        settings = newsml.settings
        return ingest_requests(
            now=context.scheduled_execution_time,
            store=article_store(settings, warehouse),
            late_days=settings.config.crawl.late_days,
            first_day=first_day,
        )

    hourly_crawl_schedule = dg.ScheduleDefinition(
        name="hourly_crawl_schedule",
        job=crawl_job,
        cron_schedule=config.crawl.schedule,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Record what every source holds now in crawled_articles (crawl.schedule, hourly by default).",
    )

    @dg.schedule(
        name="weekly_retrain_schedule",
        job=retrain_job,
        cron_schedule=config.schedules.retrain,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        tags={**RETRAIN_TAGS, "newsml/trigger": "schedule"},
        description=(
            "Mondays 03:00 UTC: retrain on the rolling window, gate, deploy if better. Skipped, with "
            "the reason, while the splits cannot be built (a class short of rows in train/val/test)."
        ),
    )
    def weekly_retrain_schedule(
        context: dg.ScheduleEvaluationContext, newsml: NewsmlSettings, warehouse: WarehouseResource
    ) -> dg.RunRequest | dg.SkipReason:
        when = context.scheduled_execution_time
        return retrain_request(
            readiness=retrain_readiness(newsml.settings, warehouse.get(), today=when.astimezone(UTC).date()),
            run_key=None,
            tags={**RETRAIN_TAGS, "newsml/trigger": "schedule"},
        )

    return [daily_ingest_schedule, hourly_crawl_schedule, weekly_retrain_schedule]


def retrain_request(
    *, readiness: SplitsAssessment, run_key: str | None, tags: dict[str, str], prefix: str = ""
) -> dg.RunRequest | dg.SkipReason:
    """A retrain_job request when its splits can be built, else a skip naming what is missing.

    A failed retrain_job then always means something broke: a run that could not get past
    dataset_splits is never started. The skip message starts with RETRAIN_SKIPPED, so the
    simulated drivers (newsroom/driver.py) can tell it from the sensor's "no drift" skips.
    """
    if readiness.ready:
        return dg.RunRequest(run_key=run_key, tags=tags)
    return dg.SkipReason(f"{prefix}{RETRAIN_SKIPPED}{readiness.reason}")


def build_drift_sensor(retrain_job) -> dg.SensorDefinition:
    @dg.sensor(
        name="drift_sensor",
        job=retrain_job,
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            "river ADWIN over the champion's scored stream (confidence, disagreement with the "
            "auto-labeler), the share of articles no class fits (no_fit) and the share of each "
            "auto-label (label_mix) — the last two from the auto-labeler, so watched before any "
            "deployment too. Drift → a retrain_job run; a cooldown stops retrain storms."
        ),
    )
    def drift_sensor(
        context: dg.SensorEvaluationContext, newsml: NewsmlSettings, warehouse: WarehouseResource
    ) -> dg.SensorResult:
        settings = newsml.settings
        wh = warehouse.get()
        if not wh.table_exists("scored_articles"):
            return dg.SensorResult(skip_reason=dg.SkipReason("no scored_articles yet: run ingest_job first"))
        result = run_drift_tick(
            warehouse=wh,
            state_store=DriftStateStore.in_home(settings.home),
            drift_cfg=settings.config.drift,
            now=datetime.now(UTC),
            cursor=context.cursor,
        )
        if result.should_retrain:
            context.log.info("drift detected: %s", result.tags)
            tags = result.tags
            decision = retrain_request(
                readiness=retrain_readiness(settings, wh, today=newsml.now().date()),
                run_key=result.run_key,
                tags={**RETRAIN_TAGS, **tags},
                prefix=(
                    f"drift detected ({tags.get('newsml/drift_signal')} "
                    f"{tags.get('newsml/drift_mean_before')} -> {tags.get('newsml/drift_mean_after')}) but "
                ),
            )
            if isinstance(decision, dg.SkipReason):
                context.log.info(decision.skip_message)
                return dg.SensorResult(skip_reason=decision, cursor=result.new_cursor)
            return dg.SensorResult(run_requests=[decision], cursor=result.new_cursor)
        return dg.SensorResult(skip_reason=dg.SkipReason(result.skip_reason), cursor=result.new_cursor)

    return drift_sensor
