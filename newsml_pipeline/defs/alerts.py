"""A failed run never goes unnoticed: log it, and POST it to a webhook when one is configured.

`run_failure_alert_sensor` sees every failed run of this code location (ingest, retrain, any
job added later). It logs the job, the failed step key(s) and the error; with
`alerts.webhook_url` set (use "${NEWSML_ALERT_WEBHOOK}" to keep the secret out of the file) it
also POSTs a small JSON. A webhook that is down or answers an error is logged as an error and
never fails the sensor, so one bad endpoint cannot stop later alerts.
"""

from __future__ import annotations

import logging
from typing import Any

import dagster as dg
import httpx

from newsml_pipeline.core.crawl.urls import origin
from newsml_pipeline.defs.resources import NewsmlSettings
from newsml_pipeline.settings import AlertsConfig

log = logging.getLogger(__name__)


def _root_message(error: Any) -> str | None:
    """The innermost cause's message: the user's exception, not Dagster's wrapper around it."""
    if error is None:
        return None
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error.message.strip()  # dagster's message already starts with the exception's class


def failure_payload(context: dg.RunFailureSensorContext, *, ui_url: str | None) -> dict[str, Any]:
    """run id, job, failed steps with their errors, one summary error, and a UI link if known."""
    run = context.dagster_run
    steps = [
        {
            "step_key": ev.step_key,
            "error": _root_message(getattr(ev.event_specific_data, "error", None)) or (ev.message or ""),
        }
        for ev in context.get_step_failure_events()
    ]
    run_error = _root_message(getattr(context.failure_event.event_specific_data, "error", None))
    return {
        "event": "dagster_run_failure",
        "run_id": run.run_id,
        "job": run.job_name,
        "steps": steps,
        # the first failed step's error says most; a run that failed outside any step has its own
        "error": steps[0]["error"] if steps else (run_error or context.failure_event.message or ""),
        "run_url": f"{ui_url}/runs/{run.run_id}" if ui_url else None,
    }


def post_alert(payload: dict[str, Any], cfg: AlertsConfig) -> bool:
    """POST the payload to cfg.webhook_url; True when it answered 2xx. Never raises for HTTP trouble."""
    if not cfg.webhook_url:
        return False
    try:
        response = httpx.post(cfg.webhook_url, json=payload, timeout=cfg.timeout_s)
        response.raise_for_status()
    except httpx.HTTPError as e:
        log.error(
            "alert webhook %s failed for run %s: %s: %s",
            origin(cfg.webhook_url),
            payload["run_id"],
            type(e).__name__,
            e,
        )
        return False
    log.info("alert for run %s sent to %s", payload["run_id"], origin(cfg.webhook_url))
    return True


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    # On by default: it only logs and, if configured, POSTs; a failure nobody sees is the worse default.
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Every failed run of this code location: log job, failed steps and error; POST them as JSON "
        "to alerts.webhook_url when set."
    ),
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, newsml: NewsmlSettings) -> None:
    cfg = newsml.config.alerts
    payload = failure_payload(context, ui_url=cfg.dagster_ui_url)
    log.error(
        "run %s of %s failed in step(s) %s: %s",
        payload["run_id"],
        payload["job"],
        ", ".join(s["step_key"] for s in payload["steps"]) or "(none: the run failed outside its steps)",
        payload["error"],
    )
    post_alert(payload, cfg)
