"""Jobs, schedules and the drift sensor: the pipeline runs itself.

- `ingest_job` (raw → labeled → scored for one day) runs daily for the day that just ended.
- `retrain_job` (feedback → splits → candidate → evaluation + gate → deployment) runs weekly and
  whenever ADWIN sees the scored stream drift. Retrains never overlap: the job carries a tag
  whose run concurrency is limited to one in dagster.yaml, and training sits in the `gpu` pool.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from newsml_pipeline.core.monitoring.drift import DriftStateStore
from newsml_pipeline.core.monitoring.sensor_logic import run_drift_tick
from newsml_pipeline.defs.resources import NewsmlSettings, WarehouseResource

RETRAIN_TAGS = {"newsml/job": "retrain"}

INGEST_ASSETS = ["raw_articles", "labeled_articles", "scored_articles"]
RETRAIN_ASSETS = ["label_feedback", "dataset_splits", "candidate_model", "model_evaluation", "deployed_model"]


def build_jobs(partitions: dg.PartitionsDefinition) -> tuple[Any, Any]:
    ingest_job = dg.define_asset_job(
        "ingest_job",
        selection=dg.AssetSelection.assets(*INGEST_ASSETS),
        partitions_def=partitions,
        description="One day's articles: crawl/load → auto-label → score with the champion.",
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
    return ingest_job, retrain_job


def build_schedules(ingest_job, retrain_job) -> list[dg.ScheduleDefinition]:
    @dg.schedule(
        name="daily_ingest_schedule",
        job=ingest_job,
        cron_schedule="30 0 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="00:30 UTC: ingest, label and score the day that just ended (its feeds are complete).",
    )
    def daily_ingest_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        day = (context.scheduled_execution_time.astimezone(UTC) - timedelta(days=1)).date().isoformat()
        return dg.RunRequest(run_key=f"ingest-{day}", partition_key=day)

    weekly_retrain_schedule = dg.ScheduleDefinition(
        name="weekly_retrain_schedule",
        job=retrain_job,
        cron_schedule="0 3 * * 1",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        tags={**RETRAIN_TAGS, "newsml/trigger": "schedule"},
        description="Mondays 03:00 UTC: retrain on the rolling window, gate, deploy if better.",
    )
    return [daily_ingest_schedule, weekly_retrain_schedule]


def build_drift_sensor(retrain_job) -> dg.SensorDefinition:
    @dg.sensor(
        name="drift_sensor",
        job=retrain_job,
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            "river ADWIN over the champion's scored stream (confidence, disagreement with the "
            "auto-labeler). Drift → a retrain_job run; a cooldown stops retrain storms."
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
            return dg.SensorResult(
                run_requests=[dg.RunRequest(run_key=result.run_key, tags={**RETRAIN_TAGS, **result.tags})],
                cursor=result.new_cursor,
            )
        return dg.SensorResult(skip_reason=dg.SkipReason(result.skip_reason), cursor=result.new_cursor)

    return drift_sensor
