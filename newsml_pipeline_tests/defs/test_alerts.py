"""run_failure_alert_sensor on a real failed run: the log line, the webhook body, a webhook that is down."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from newsml_pipeline.definitions import build_definitions
from newsml_pipeline.defs.alerts import run_failure_alert_sensor
from newsml_pipeline.settings import ConfigError

FAILED_STEP = "dataset_splits"
ERROR_TEXT = "nothing to split yet"  # retrain_job on an empty warehouse


class Recorder(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append({"path": self.path, "json": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A loopback HTTP server recording each POSTed JSON body."""
    handler = type("Handler", (Recorder,), {"bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/SECRET-TOKEN", handler.bodies
    server.shutdown()
    server.server_close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the webhook is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/SECRET-TOKEN"


def failed_retrain(settings) -> tuple[dg.DagsterInstance, dg.JobExecutionResult, dg.Definitions]:
    """retrain_job of the project's definitions on an empty warehouse: dataset_splits fails."""
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("retrain_job").execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    return instance, result, defs


def evaluate(settings, instance, result) -> None:
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"newsml": build_definitions(settings).resources["newsml"]},
    ).for_run_failure()
    run_failure_alert_sensor(context)


def test_failed_run_is_logged_and_posted(make_settings, webhook, caplog, monkeypatch) -> None:
    url, bodies = webhook
    monkeypatch.setenv("NEWSML_ALERT_WEBHOOK", url)
    settings = make_settings(
        alerts={"webhook_url": "${NEWSML_ALERT_WEBHOOK}", "dagster_ui_url": "http://127.0.0.1:3000/"}
    )
    instance, result, defs = failed_retrain(settings)
    assert "run_failure_alert_sensor" in {s.name for s in defs.sensors}
    with caplog.at_level(logging.INFO, logger="newsml_pipeline.defs.alerts"):
        evaluate(settings, instance, result)

    (sent,) = bodies
    assert sent["path"] == "/hooks/SECRET-TOKEN"
    body = sent["json"]
    run_id = result.dagster_run.run_id
    assert body["run_id"] == run_id and body["job"] == "retrain_job"
    assert [s["step_key"] for s in body["steps"]] == [FAILED_STEP]
    assert ERROR_TEXT in body["steps"][0]["error"] and ERROR_TEXT in body["error"]
    assert body["run_url"] == f"http://127.0.0.1:3000/runs/{run_id}"
    failure_logs = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failure_logs) == 1
    line = failure_logs[0].getMessage()
    assert run_id in line and "retrain_job" in line and FAILED_STEP in line and ERROR_TEXT in line
    assert "SECRET-TOKEN" not in caplog.text  # the webhook's token stays out of the logs


def test_webhook_down_is_an_error_log_not_a_sensor_failure(make_settings, caplog) -> None:
    settings = make_settings(alerts={"webhook_url": closed_port_url(), "timeout_s": 2})
    instance, result, _ = failed_retrain(settings)
    with caplog.at_level(logging.INFO, logger="newsml_pipeline.defs.alerts"):
        evaluate(settings, instance, result)  # must not raise
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(FAILED_STEP in m and ERROR_TEXT in m for m in errors)  # the failure itself is still logged
    assert any("alert webhook http://127.0.0.1:" in m and "ConnectError" in m for m in errors), errors
    assert "SECRET-TOKEN" not in caplog.text


def test_without_a_webhook_the_failure_is_only_logged(make_settings, caplog) -> None:
    settings = make_settings()
    assert settings.config.alerts.webhook_url is None
    instance, result, _ = failed_retrain(settings)
    with caplog.at_level(logging.INFO, logger="newsml_pipeline.defs.alerts"):
        evaluate(settings, instance, result)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and FAILED_STEP in errors[0]


def test_alert_urls_are_validated(make_settings, monkeypatch) -> None:
    with pytest.raises(ConfigError, match="alerts.webhook_url"):
        _ = make_settings(alerts={"webhook_url": "hooks.example.com/x"}).config
    monkeypatch.setenv("NEWSML_ALERT_WEBHOOK", "")  # an empty secret switches the webhook off
    assert make_settings(alerts={"webhook_url": "${NEWSML_ALERT_WEBHOOK}"}).config.alerts.webhook_url is None
