"""Everything the drift sensor does in one tick, without Dagster: the sensor body stays a few lines.

    result = run_drift_tick(warehouse=wh, state_store=store, drift_cfg=cfg.drift,
                            now=datetime.now(UTC), cursor=context.cursor)
    context.update_cursor(result.new_cursor)
    if result.should_retrain: yield RunRequest(run_key=result.run_key, tags=result.tags)
    else: yield SkipReason(result.skip_reason)

Guarantees:
- bounded work: at most `drift.max_rows_per_tick` rows are consumed per tick; a backlog is
  worked off over the following ticks;
- nothing read twice or skipped: rows are consumed in (scored_at, article_id) order after a
  cursor. The cursor is saved *with* the detector state (one atomic file), so a crash between
  saving the state and Dagster saving its cursor cannot feed rows twice; the Dagster cursor is
  a mirror for the UI and a fallback when the state file is deleted;
- cooldown: after a retrain request, further detections within `drift.cooldown_hours` are
  recorded (events, stats) but do not request another retrain.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from newsml_pipeline.core.monitoring.drift import DriftEvent, DriftMonitor, DriftStateError, DriftStateStore

log = logging.getLogger(__name__)

SCORED_TABLE = "scored_articles"
LABELED_TABLE = "labeled_articles"
STREAM_COLUMNS = ("article_id", "model_version", "label", "confidence", "auto_label", "scored_at")
# Read when present (null otherwise): how well the best class fits the article (signal no_fit).
OPTIONAL_COLUMNS = ("class_fit",)
RECENT_EVENTS_KEPT = 50
TAG_PREFIX = "newsml/"

STREAM_SCHEMA: dict[str, pl.DataType] = {
    "article_id": pl.String(),
    "model_version": pl.String(),
    "label": pl.String(),
    "confidence": pl.Float64(),
    "auto_label": pl.String(),
    "scored_at": pl.Datetime("us", "UTC"),
    "class_fit": pl.Float64(),
}


# ---------------------------------------------------------------- cursor


@dataclass(frozen=True, order=True)
class ScoredCursor:
    """(scored_at, article_id) of the last consumed row; rows strictly after it are new."""

    scored_at: datetime
    article_id: str

    def __post_init__(self) -> None:
        if self.scored_at.tzinfo is None:
            raise ValueError(f"cursor scored_at must be timezone-aware, got {self.scored_at!r}")
        object.__setattr__(self, "scored_at", self.scored_at.astimezone(UTC))

    def to_string(self) -> str:
        return json.dumps({"scored_at": self.scored_at.isoformat(), "article_id": self.article_id})

    @classmethod
    def parse(cls, value: str | ScoredCursor | None) -> ScoredCursor | None:
        """A Dagster cursor string (or None / an existing cursor) -> ScoredCursor | None."""
        if value is None or isinstance(value, ScoredCursor):
            return value
        if value == "":
            return None
        try:
            d = json.loads(value)
            return cls(datetime.fromisoformat(d["scored_at"]), str(d["article_id"]))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(
                f"drift sensor cursor {value!r} is not a valid cursor "
                '(expected {"scored_at": ISO timestamp with zone, "article_id": ...})'
            ) from e


def _later(a: ScoredCursor | None, b: ScoredCursor | None) -> ScoredCursor | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


# ---------------------------------------------------------------- reading the stream


def read_new_scored_rows(warehouse: Any, *, cursor: str | ScoredCursor | None, limit: int) -> pl.DataFrame:
    """Up to `limit` scored rows after `cursor`, in (scored_at, article_id) order.

    Columns: article_id, model_version, label, confidence, auto_label, scored_at (UTC), class_fit.
    The auto-label (and class_fit) come from scored_articles when it has the column, else from
    labeled_articles (class_fit null where neither has it). No scored_articles table yet -> an
    empty frame.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    cur = ScoredCursor.parse(cursor)
    if not warehouse.table_exists(SCORED_TABLE):
        return pl.DataFrame(schema=STREAM_SCHEMA)
    types = warehouse.column_types(SCORED_TABLE)
    cols = set(types)
    missing = [c for c in STREAM_COLUMNS if c != "auto_label" and c not in cols]
    if missing:
        raise LookupError(
            f"table {SCORED_TABLE} in {warehouse.location} lacks column(s) {missing} that the drift sensor needs"
        )
    labeled_cols = (
        set(warehouse.column_types(LABELED_TABLE)) if warehouse.table_exists(LABELED_TABLE) else set()
    )
    auto_sql = (
        "s.auto_label" if "auto_label" in cols else "l.label" if labeled_cols else "CAST(NULL AS VARCHAR)"
    )
    if "class_fit" in cols:
        fit_sql = "s.class_fit"
    elif "class_fit" in labeled_cols:
        fit_sql = "l.class_fit"
    else:
        fit_sql = "CAST(NULL AS DOUBLE PRECISION)"
    join_sql = ""
    if "l." in auto_sql + fit_sql:
        fit_agg = "max(class_fit)" if "class_fit" in labeled_cols else "CAST(NULL AS DOUBLE PRECISION)"
        join_sql = (
            f"LEFT JOIN (SELECT article_id, min(label) AS label, {fit_agg} AS class_fit FROM {LABELED_TABLE} "
            "GROUP BY article_id) l ON l.article_id = s.article_id"
        )
    ts_type = types["scored_at"]
    # Compare naive UTC timestamps whatever the column's type (a plain TIMESTAMP is taken as UTC).
    ts_sql = "timezone('UTC', scored_at)" if "TIME ZONE" in str(ts_type).upper() else "scored_at"
    where, params = "", []
    if cur is not None:
        where = "WHERE (ts > ? OR (ts = ? AND s.article_id > ?))"
        naive = cur.scored_at.replace(tzinfo=None)
        params = [naive, naive, cur.article_id]
    sql = f"""
        WITH s AS (
            SELECT *, {ts_sql} AS ts FROM {SCORED_TABLE}
        )
        SELECT s.article_id, s.model_version, s.label, s.confidence, {auto_sql} AS auto_label,
               s.ts AS scored_at, {fit_sql} AS class_fit
        FROM s {join_sql}
        {where}
        ORDER BY s.ts, s.article_id
        LIMIT {int(limit)}
    """
    df = warehouse.query(sql, params)
    return _normalise_stream(df, source=f"{warehouse.location}:{SCORED_TABLE}")


def _normalise_stream(rows: pl.DataFrame, *, source: str) -> pl.DataFrame:
    """Check the stream columns, cast them, make scored_at UTC-aware (naive = UTC), sort."""
    missing = [c for c in STREAM_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"scored rows from {source} lack column(s) {missing}; got {rows.columns}")
    rows = rows.with_columns(
        [pl.lit(None, STREAM_SCHEMA[c]).alias(c) for c in OPTIONAL_COLUMNS if c not in rows.columns]
    )
    ts = rows.get_column("scored_at")
    if not isinstance(ts.dtype, pl.Datetime):
        raise ValueError(f"scored rows from {source}: scored_at must be a timestamp, got {ts.dtype}")
    ts_expr = (
        pl.col("scored_at").dt.replace_time_zone("UTC")
        if ts.dtype.time_zone is None
        else pl.col("scored_at").dt.convert_time_zone("UTC")
    )
    out = rows.with_columns(ts_expr.dt.cast_time_unit("us")).with_columns(
        [pl.col(c).cast(t) for c, t in STREAM_SCHEMA.items() if c != "scored_at"]
    )
    for c in ("article_id", "scored_at"):
        if out.get_column(c).null_count():
            raise ValueError(
                f"scored rows from {source}: {out.get_column(c).null_count()} row(s) with null {c}"
            )
    return out.sort("scored_at", "article_id", maintain_order=True)


# ---------------------------------------------------------------- sensor state


@dataclass
class SensorState:
    """What persists between ticks: detectors, cursor, cooldown clock, recent detections."""

    monitor: DriftMonitor
    cursor: ScoredCursor | None = None
    last_request_at: datetime | None = None
    last_run_key: str | None = None
    recent_events: list[dict[str, Any]] = field(default_factory=list)
    state_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def to_payload(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor.to_state(),
            "cursor": None if self.cursor is None else self.cursor.to_string(),
            "last_request_at": None if self.last_request_at is None else self.last_request_at.isoformat(),
            "last_run_key": self.last_run_key,
            "recent_events": self.recent_events,
            "state_id": self.state_id,
        }

    @classmethod
    def from_payload(cls, payload: Any, *, source: str) -> SensorState:
        try:
            return cls(
                monitor=DriftMonitor.from_state(payload["monitor"], source=f"{source} (detectors)"),
                cursor=ScoredCursor.parse(payload["cursor"]),
                last_request_at=None
                if payload["last_request_at"] is None
                else datetime.fromisoformat(payload["last_request_at"]),
                last_run_key=payload["last_run_key"],
                recent_events=list(payload["recent_events"]),
                state_id=str(payload["state_id"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DriftStateError(f"{source}: sensor state is missing or has a bad field ({e!r})") from e


def load_sensor_state(state_store: DriftStateStore, *, drift_cfg: Any) -> SensorState:
    """The saved state, or a fresh one; detectors restart (cursor kept) if the drift config changed."""
    payload = state_store.load("sensor")
    if payload is None:
        return SensorState(monitor=DriftMonitor.from_config(drift_cfg))
    state = SensorState.from_payload(payload, source=f"drift state file {state_store.path}")
    if not state.monitor.matches_config(drift_cfg):
        old = state.monitor
        log.warning("drift config changed since the detectors were saved; restarting them (cursor kept)")
        fresh = DriftMonitor.from_config(drift_cfg)
        fresh.rows_seen, fresh.epoch, fresh.model_version = old.rows_seen, old.epoch + 1, old.model_version
        state.monitor = fresh
    return state


def save_sensor_state(state_store: DriftStateStore, state: SensorState) -> None:
    state_store.save("sensor", state.to_payload())


def reset_detectors(state_store: DriftStateStore, *, drift_cfg: Any, reason: str) -> SensorState:
    """Restart the detectors (e.g. after a retrained model is deployed); cursor and cooldown kept."""
    state = load_sensor_state(state_store, drift_cfg=drift_cfg)
    state.monitor.reset(reason=reason)
    save_sensor_state(state_store, state)
    return state


# ---------------------------------------------------------------- one tick


@dataclass(frozen=True)
class TickResult:
    """What the sensor does with one tick: request a retrain (run_key, tags) or skip (skip_reason)."""

    drift_events: list[DriftEvent]
    new_cursor: str | None
    stats: dict[str, Any]
    should_retrain: bool
    run_key: str | None
    tags: dict[str, str]
    skip_reason: str | None


def evaluate_tick(
    *,
    new_rows: pl.DataFrame,
    state_store: DriftStateStore,
    drift_cfg: Any,
    now: datetime,
    cursor: str | None = None,
) -> TickResult:
    """Feed the rows after the cursor (at most drift.max_rows_per_tick) and decide on a retrain.

    new_rows: scored rows (STREAM_COLUMNS), e.g. from `read_new_scored_rows`; rows at or before
    the cursor were consumed already and are dropped (counted in stats.rows_already_seen).
    now: timezone-aware tick time (cooldown clock). cursor: the Dagster sensor cursor.
    """
    started = time.perf_counter()
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    now = now.astimezone(UTC)
    state = load_sensor_state(state_store, drift_cfg=drift_cfg)
    start = _later(state.cursor, ScoredCursor.parse(cursor))
    rows = _normalise_stream(new_rows, source="new_rows")
    fresh = _after(rows, start)
    already_seen = rows.height - fresh.height
    if already_seen:
        log.warning("%d scored row(s) at or before the cursor were already consumed; skipped", already_seen)
    batch = fresh.head(drift_cfg.max_rows_per_tick)
    backlog = fresh.height - batch.height

    events = state.monitor.update(batch)
    if batch.height:
        last = batch.row(batch.height - 1, named=True)
        state.cursor = ScoredCursor(last["scored_at"], last["article_id"])
    else:
        state.cursor = start

    cooldown = timedelta(hours=drift_cfg.cooldown_hours)
    cooldown_until = None if state.last_request_at is None else state.last_request_at + cooldown
    in_cooldown = cooldown_until is not None and now < cooldown_until
    trigger = events[0] if events and not in_cooldown else None
    run_key, tags = None, {}
    if trigger is not None:
        run_key = f"drift-{trigger.signal}-{trigger.position}-{state.state_id}-e{trigger.epoch}"
        tags = _tags(trigger, len(events))
        state.last_request_at, state.last_run_key = now, run_key
        cooldown_until = now + cooldown
    state.recent_events = (state.recent_events + [e.to_dict() for e in events])[-RECENT_EVENTS_KEPT:]
    save_sensor_state(state_store, state)

    stats = {
        "rows_consumed": batch.height,
        "rows_already_seen": already_seen,
        "backlog_rows_in_input": backlog,
        "rows_seen_total": state.monitor.rows_seen,
        "epoch": state.monitor.epoch,
        "model_version": state.monitor.model_version,
        "signals": state.monitor.window_stats(),
        "events": len(events),
        "in_cooldown": in_cooldown,
        "cooldown_until": None if cooldown_until is None else cooldown_until.isoformat(),
        "cursor": None if state.cursor is None else state.cursor.to_string(),
        "tick_seconds": round(time.perf_counter() - started, 4),
    }
    skip_reason = None if trigger else _skip_reason(batch.height, backlog, events, stats, start)
    if events:
        log.info("drift tick: %d event(s); retrain requested: %s", len(events), trigger is not None)
    return TickResult(
        drift_events=events,
        new_cursor=stats["cursor"],
        stats=stats,
        should_retrain=trigger is not None,
        run_key=run_key,
        tags=tags,
        skip_reason=skip_reason,
    )


def run_drift_tick(
    *, warehouse: Any, state_store: DriftStateStore, drift_cfg: Any, now: datetime, cursor: str | None = None
) -> TickResult:
    """read_new_scored_rows + evaluate_tick with the right cursor and bound (the whole sensor body)."""
    state = load_sensor_state(state_store, drift_cfg=drift_cfg)
    start = _later(state.cursor, ScoredCursor.parse(cursor))
    # One row more than a tick consumes tells whether a backlog remains.
    rows = read_new_scored_rows(warehouse, cursor=start, limit=drift_cfg.max_rows_per_tick + 1)
    return evaluate_tick(new_rows=rows, state_store=state_store, drift_cfg=drift_cfg, now=now, cursor=cursor)


def _after(rows: pl.DataFrame, cursor: ScoredCursor | None) -> pl.DataFrame:
    if cursor is None:
        return rows
    ts = cursor.scored_at
    return rows.filter(
        (pl.col("scored_at") > ts)
        | ((pl.col("scored_at") == ts) & (pl.col("article_id") > cursor.article_id))
    )


def _tags(event: DriftEvent, n_events: int) -> dict[str, str]:
    return {
        f"{TAG_PREFIX}trigger": "drift",
        f"{TAG_PREFIX}drift_signal": event.signal,
        f"{TAG_PREFIX}drift_position": str(event.position),
        f"{TAG_PREFIX}drift_scale": event.scale,
        f"{TAG_PREFIX}drift_mean_before": f"{event.mean_before:.4f}",
        f"{TAG_PREFIX}drift_mean_after": f"{event.mean_after:.4f}",
        f"{TAG_PREFIX}drift_window": str(event.width),
        f"{TAG_PREFIX}drift_epoch": str(event.epoch),
        f"{TAG_PREFIX}drift_events_in_tick": str(n_events),
        f"{TAG_PREFIX}model_version": str(event.model_version),
    }


def _skip_reason(
    consumed: int, backlog: int, events: list[DriftEvent], stats: dict[str, Any], start: ScoredCursor | None
) -> str:
    windows = "; ".join(
        f"{name}: mean {s['window_mean']:.4f} ({s['scale']}) over window {s['window_width']}, "
        f"{s['values_since_reset']} values since reset"
        if s["window_mean"] is not None
        else f"{name}: empty window"
        for name, s in stats["signals"].items()
    )
    if consumed == 0:
        head = "no new scored rows" + (
            f" after {start.scored_at.isoformat()} / {start.article_id}" if start else ""
        )
    elif events:
        head = (
            f"{len(events)} drift event(s) in {consumed} new rows "
            f"(first: {events[0].signal} at row {events[0].position}, "
            f"{events[0].mean_before:.4f} -> {events[0].mean_after:.4f}) but in cooldown until "
            f"{stats['cooldown_until']}"
        )
    else:
        head = f"no drift in {consumed} new rows"
    more = f"; {backlog}+ rows left for the next tick" if backlog else ""
    return f"{head}{more}. Rows seen: {stats['rows_seen_total']} (epoch {stats['epoch']}). {windows}"
