"""Drive the living system through simulated time, the way the Dagster daemon would.

Every simulated hour the driver ticks what the daemon ticks, through a persistent instance, and
runs what they request as real runs recorded in that instance (so `dagster dev` shows them):

- `hourly_crawl_schedule` (every `crawl_every` hours) → `crawl_job`;
- `daily_ingest_schedule` at 00:30 UTC → `ingest_job` per requested day;
- `weekly_retrain_schedule` on Mondays at 03:00 → `retrain_job`;
- `drift_sensor`'s tick function every `sensor_every` hours (cursor kept) → `retrain_job`.

Each run carries `newsml/as_of` (the simulated time, defs/clock.py). `executor="multiprocess"`
runs every step in its own process (Dagster's default, what the daemon does); `"in_process"`
runs the steps in this process through the same default executor's `in_process` mode, which
skips a torch-importing process start per step. `bench/newsroom.py` and `newsml demo` share
this module. It imports dagster, so it lives outside `core/`.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

import dagster as dg

from newsml_pipeline.defs.clock import AS_OF_TAG
from newsml_pipeline.newsroom.site import NewsSite

log = logging.getLogger(__name__)

Executor = Literal["multiprocess", "in_process"]


def every_hours_cron(hours: int) -> str:
    """A cron firing every `hours` hours from midnight (1..24).

    `0 */24 * * *` is valid cron but its step exceeds the hour field's range: Dagster warns on
    every ScheduleDefinition built from it (once per definitions load, i.e. per run and per
    step process) and may normalise it to fire more often. Once a day is `0 0 * * *`.
    """
    if not 1 <= hours <= 24:
        raise ValueError(f"every {hours} hours: expected 1..24")
    return "0 0 * * *" if hours == 24 else f"0 */{hours} * * *"


def _defs() -> dg.Definitions:
    from newsml_pipeline.definitions import build_definitions

    return build_definitions()


# Reconstructable jobs: the multiprocess executor re-imports this module in every step process
# and rebuilds the definitions from NEWSML_HOME / NEWSML_CONFIG, which the driver's caller set.
def crawl_job() -> dg.JobDefinition:
    return _defs().resolve_job_def("crawl_job")


def ingest_job() -> dg.JobDefinition:
    return _defs().resolve_job_def("ingest_job")


def retrain_job() -> dg.JobDefinition:
    return _defs().resolve_job_def("retrain_job")


JOBS: dict[str, Callable[[], dg.JobDefinition]] = {
    "crawl_job": crawl_job,
    "ingest_job": ingest_job,
    "retrain_job": retrain_job,
}


@dataclass(frozen=True)
class RetrainOutcome:
    """What one retrain_job run ended with, read from its own events."""

    run_id: str
    as_of: datetime
    trigger: str  # "schedule" | "drift" | "manual"
    verdict: str  # "deployed" | "blocked" | "failed before the gate"
    trained: bool
    evaluation_kind: str | None
    candidate_macro_f1: float | None
    baseline_macro_f1: float | None
    champion_macro_f1: float | None
    gate_description: str | None
    failed_steps: tuple[str, ...] = ()


@dataclass(frozen=True)
class SkippedRetrain:
    """A retrain the schedule or the sensor did not start: its splits could not be built yet."""

    as_of: datetime
    trigger: str  # "schedule" | "drift"
    reason: str


@dataclass
class Tally:
    """Counts over a simulation: runs per job, failures, retrains and their verdicts, drift events."""

    runs: collections.Counter = field(default_factory=collections.Counter)
    failed: collections.Counter = field(default_factory=collections.Counter)
    retrains_requested: collections.Counter = field(default_factory=collections.Counter)
    deployed: int = 0
    blocked: int = 0
    retrain_failed: int = 0
    drift_events: list[dict[str, Any]] = field(default_factory=list)
    run_seconds: collections.Counter = field(default_factory=collections.Counter)
    retrains: list[RetrainOutcome] = field(default_factory=list)
    skipped: list[SkippedRetrain] = field(default_factory=list)


def _float(meta: dict[str, Any], key: str) -> float | None:
    v = meta.get(key)
    return None if v is None else float(v.value)


def retrain_outcome(
    events: list[dg.DagsterEvent], *, run_id: str, as_of: datetime, trigger: str
) -> RetrainOutcome:
    """deployed if `deployed_model` materialized, blocked if the gate failed, else failed earlier."""
    mats = {
        e.asset_key.to_user_string(): e.event_specific_data.materialization
        for e in events
        if e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key
    }
    gate = [
        e.event_specific_data
        for e in events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.check_name == "evaluation_gate"
    ]
    if "deployed_model" in mats:
        verdict = "deployed"
    elif gate and not gate[0].passed:
        verdict = "blocked"
    else:
        verdict = "failed before the gate"
    evaluation = mats.get("model_evaluation")
    meta = dict(evaluation.metadata) if evaluation is not None else {}
    kind = meta.get("evaluation_kind")
    return RetrainOutcome(
        run_id=run_id,
        as_of=as_of,
        trigger=trigger,
        verdict=verdict,
        trained="candidate_model" in mats,
        evaluation_kind=None if kind is None else str(kind.value),
        candidate_macro_f1=_float(meta, "candidate_macro_f1"),
        baseline_macro_f1=_float(meta, "baseline_macro_f1"),
        champion_macro_f1=_float(meta, "champion_macro_f1"),
        gate_description=gate[0].description if gate else None,
        failed_steps=tuple(e.step_key for e in events if e.event_type_value == "STEP_FAILURE"),
    )


class LivingSystem:
    """Ticks schedules and the drift sensor against a NewsSite and runs what they request.

    NEWSML_HOME, NEWSML_CONFIG and DAGSTER_HOME must be set before it is built: the runs (and, with
    the multiprocess executor, every step process) read them.
    """

    def __init__(
        self,
        instance: dg.DagsterInstance,
        site: NewsSite,
        *,
        executor: Executor = "multiprocess",
        run_tags: dict[str, str] | None = None,
        crawl_every: int = 1,
        sensor_every: int = 6,
    ) -> None:
        if crawl_every < 1 or sensor_every < 1:
            raise ValueError("crawl_every and sensor_every are hours, at least 1")
        self.instance = instance
        self.site = site
        self.executor = executor
        self._job_in_process: dict[str, bool] = {}
        self.run_tags = dict(run_tags or {})
        self.crawl_every = crawl_every
        self.sensor_every = sensor_every
        self.defs = _defs()
        self.tally = Tally()
        self.cursor: str | None = None
        self._daily = self.defs.resolve_schedule_def("daily_ingest_schedule")
        self._weekly = self.defs.resolve_schedule_def("weekly_retrain_schedule")
        self._hourly = self.defs.resolve_schedule_def("hourly_crawl_schedule")
        self._sensor = self.defs.resolve_sensor_def("drift_sensor")

    # ------------------------------------------------------------ one run

    def _runs_in_process(self, name: str) -> bool:
        """Whether job `name` has the in-process executor of its own (crawl_job), read once."""
        if name not in self._job_in_process:
            executor = JOBS[name]().executor_def
            self._job_in_process[name] = executor.name == dg.in_process_executor.name
        return self._job_in_process[name]

    def run(
        self,
        name: str,
        *,
        as_of: datetime,
        tags: dict[str, str] | None = None,
        assets: list[str] | None = None,
        trigger: str = "manual",
    ) -> tuple[bool, list[dg.DagsterEvent], str]:
        """One run through the instance; returns (success, its events, run id)."""
        t0 = time.monotonic()
        run_config: dict[str, Any] = {}
        if self._runs_in_process(name):
            # a job that runs in process whatever the executor (crawl_job): only the logger is set
            run_config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        elif self.executor == "in_process":
            # Dagster's default executor (multi_or_in_process) in its in-process mode; the console
            # logger stays quiet (every event is still in the instance's event log).
            run_config = {
                "execution": {"config": {"in_process": {}}},
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
            }
        with dg.execute_job(
            dg.reconstructable(JOBS[name]),
            instance=self.instance,
            run_config=run_config,
            tags={**self.run_tags, AS_OF_TAG: as_of.isoformat(), **(tags or {})},
            asset_selection=[dg.AssetKey(a) for a in assets] if assets else None,
        ) as result:
            ok = result.success
            events = list(result.all_events)
            run_id = result.run_id
        kind = f"{name}[{','.join(assets)}]" if assets else name
        tally = self.tally
        tally.runs[kind] += 1
        tally.run_seconds[kind] += time.monotonic() - t0
        if not ok:
            tally.failed[kind] += 1
            failures = [e.step_key for e in events if e.event_type_value == "STEP_FAILURE"]
            log.warning("%s run %s failed at %s (steps %s)", name, run_id, as_of, failures)
        if name == "retrain_job":
            outcome = retrain_outcome(events, run_id=run_id, as_of=as_of, trigger=trigger)
            tally.retrains.append(outcome)
            if outcome.verdict == "deployed":
                tally.deployed += 1
            elif outcome.verdict == "blocked":
                tally.blocked += 1
            else:
                tally.retrain_failed += 1
        return ok, events, run_id

    # ------------------------------------------------------------ what the daemon ticks

    def _schedule_context(self, t: datetime) -> dg.ScheduleEvaluationContext:
        return dg.build_schedule_context(
            instance=self.instance,
            scheduled_execution_time=t,
            resources=self.defs.resources,
            repository_def=self.defs.get_repository_def(),  # resolves a partitioned job's requests
        )

    def _schedule_requests(
        self, schedule: dg.ScheduleDefinition, t: datetime
    ) -> tuple[list[dg.RunRequest], str | None]:
        """The schedule's tick at `t` as the daemon evaluates it: its requests carry the schedule's
        name (`dagster/schedule_name`, the tag the UI shows), or its skip message."""
        data = schedule.evaluate_tick(self._schedule_context(t))
        tag = dg.DagsterRun.tags_for_schedule(schedule)
        requests = [
            req.with_replaced_attrs(tags={**(req.tags or {}), **tag}) for req in data.run_requests or []
        ]
        return requests, data.skip_message

    def _skipped(self, t: datetime, trigger: str, message: str | None) -> SkippedRetrain | None:
        """Record a retrain the readiness check skipped (other skips, e.g. "no drift", are not retrains)."""
        from newsml_pipeline.defs.automation import RETRAIN_SKIPPED

        if not message or RETRAIN_SKIPPED not in message:
            return None
        skipped = SkippedRetrain(as_of=t, trigger=trigger, reason=message)
        self.tally.skipped.append(skipped)
        log.info("retrain (%s) at %s skipped: %s", trigger, t, message)
        return skipped

    def crawl_tick(self, t: datetime) -> int:
        requests, _ = self._schedule_requests(self._hourly, t)
        for req in requests:
            self.run("crawl_job", as_of=t, tags=dict(req.tags or {}), trigger="schedule")
        return len(requests)

    def daily_tick(self, t: datetime) -> list[str]:
        """`daily_ingest_schedule` at `t` (00:30): one ingest_job run per requested day."""
        requests, _ = self._schedule_requests(self._daily, t)
        for req in requests:
            self.run(
                "ingest_job",
                as_of=t,
                tags={**(req.tags or {}), "dagster/partition": req.partition_key},
                trigger="schedule",
            )
        return [req.partition_key for req in requests]

    def weekly_tick(self, t: datetime) -> list[RetrainOutcome | SkippedRetrain]:
        """`weekly_retrain_schedule` at `t`: a retrain_job run, or the skip when it cannot run yet."""
        requests, skip = self._schedule_requests(self._weekly, t)
        out: list[RetrainOutcome | SkippedRetrain] = []
        for req in requests:
            self.tally.retrains_requested["schedule"] += 1
            self.run("retrain_job", as_of=t, tags=dict(req.tags or {}), trigger="schedule")
            out.append(self.tally.retrains[-1])
        skipped = self._skipped(t, "schedule", skip)
        if skipped is not None:
            out.append(skipped)
        return out

    def sensor_tick(self, t: datetime) -> list[tuple[dict[str, Any], RetrainOutcome | SkippedRetrain]]:
        """`drift_sensor`'s tick at `t`; each RunRequest becomes a retrain_job run, tagged with the
        sensor's name as the daemon does. The sensor's readiness check acts as of `t`."""
        from newsml_pipeline.defs.resources import NewsmlSettings

        newsml = self.defs.resources["newsml"]
        resources = {
            **self.defs.resources,
            "newsml": NewsmlSettings(home=newsml.home, config_file=newsml.config_file, as_of=t.isoformat()),
        }
        ctx = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources=resources,
            repository_def=self.defs.get_repository_def(),
        )
        data = self._sensor.evaluate_tick(ctx)
        self.cursor = data.cursor or self.cursor
        events: list[tuple[dict[str, Any], RetrainOutcome | SkippedRetrain]] = []
        for req in data.run_requests or []:
            tags = {**(req.tags or {}), **dg.DagsterRun.tags_for_sensor(self._sensor)}
            self.tally.retrains_requested["drift"] += 1
            event = {
                "sim_time": t.isoformat(),
                "signal": tags.get("newsml/drift_signal"),
                "position": tags.get("newsml/drift_position"),
                "mean_before": tags.get("newsml/drift_mean_before"),
                "mean_after": tags.get("newsml/drift_mean_after"),
            }
            self.tally.drift_events.append(event)
            self.run("retrain_job", as_of=t, tags=tags, trigger="drift")
            events.append((event, self.tally.retrains[-1]))
        skipped = self._skipped(t, "drift", data.skip_message)
        if skipped is not None:
            # drift was seen; only the retrain did not start
            event = {
                "sim_time": t.isoformat(),
                **dict.fromkeys(("signal", "position", "mean_before", "mean_after")),
                "retrain": "skipped",
                "reason": skipped.reason,
            }
            self.tally.drift_events.append(event)
            events.append((event, skipped))
        return events

    # ------------------------------------------------------------ the clock

    def simulate(
        self,
        start: datetime,
        end: datetime,
        *,
        after_ingest: Callable[[date], None] | None = None,
        on_drift: Callable[[dict[str, Any]], None] | None = None,
        on_retrain: Callable[[RetrainOutcome | SkippedRetrain], None] | None = None,
        on_day: Callable[[date], None] | None = None,
    ) -> None:
        """Hour by hour from `start` to `end` (UTC, on the hour): crawl, ingest, retrain, sense.

        after_ingest(day) runs after the 00:30 ingest of `day` (the day that just ended);
        on_drift(event) / on_retrain(outcome) report each drift detection / retrain verdict or skip;
        on_day(day) is called when a simulated day has ended.
        """
        t = start
        while t <= end:
            self.site.now = t
            if t.hour % self.crawl_every == 0:
                self.crawl_tick(t)
            if t.hour == 0 and t > start:
                tick = t + timedelta(minutes=30)
                self.site.now = tick
                self.daily_tick(tick)
                if after_ingest is not None:
                    after_ingest((tick - timedelta(days=1)).date())
            if t.weekday() == 0 and t.hour == 3:
                for outcome in self.weekly_tick(t):
                    if on_retrain is not None:
                        on_retrain(outcome)
            if t.hour % self.sensor_every == 0:
                # self.site.now: 00:30 after the daily ingest, else the hour
                for event, outcome in self.sensor_tick(self.site.now):
                    if on_drift is not None:
                        on_drift(event)
                    if on_retrain is not None:
                        on_retrain(outcome)
            t += timedelta(hours=1)
            if t.hour == 0 and on_day is not None:
                on_day((t - timedelta(days=1)).date())
