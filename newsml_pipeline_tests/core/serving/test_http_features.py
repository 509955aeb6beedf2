"""FastAPI endpoint features: micro-batching, timeouts, /metrics, /docs, bearer token, degraded
health, the loopback rule, streamed bodies over the limit, and `newsml serve` as a subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from newsml_pipeline.core.registry.aliases import set_champion
from newsml_pipeline.core.serving.http import create_app, make_server
from newsml_pipeline.core.serving.predictor import ChampionResolver, Predictor
from newsml_pipeline.settings import DEFAULT_REGISTERED_MODEL
from newsml_pipeline_tests.core.serving.conftest import LABELS, LABELS_CFG, serving_cfg
from newsml_pipeline_tests.core.serving.registry_helpers import register_tiny_version, tracking_uri_for


class SlowRecordingFallback:
    """Fallback backend that sleeps per forward pass and records how many articles each one got."""

    version = "auto-labeler"
    labels = LABELS

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def predict_proba(self, titles, texts):  # noqa: ANN001, ANN201
        time.sleep(self.delay_s)
        with self.lock:
            self.calls.append(len(texts))
        # A score that depends on the text, so a mixed-up answer would be caught.
        out = np.zeros((len(texts), len(LABELS)))
        for i, t in enumerate(texts):
            out[i, len(t) % len(LABELS)] = 1.0
        return out


def _fallback_predictor(backend: SlowRecordingFallback, **cfg) -> Predictor:  # noqa: ANN003
    return Predictor(
        resolver=None, labels_cfg=LABELS_CFG, serving_cfg=serving_cfg(**cfg), fallback=lambda: backend
    )


def test_concurrent_requests_are_micro_batched_and_each_gets_its_own_answer() -> None:
    backend = SlowRecordingFallback(delay_s=0.15)
    predictor = _fallback_predictor(backend, batch_size=32, batch_window_ms=50)
    server = make_server(predictor, host="127.0.0.1", port=0)
    server.start_in_thread()
    try:
        texts = [f"article number {i} " + "x" * i for i in range(12)]

        def call(i: int) -> dict:
            r = httpx.post(f"{server.url}/classify", json={"id": i, "text": texts[i]}, timeout=30)
            assert r.status_code == 200, r.text
            return r.json()

        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(call, range(12)))
        metrics = httpx.get(f"{server.url}/metrics").text
    finally:
        server.shutdown()
        server.server_close()
    assert [a["id"] for a in answers] == list(range(12))
    for i, a in enumerate(answers):  # each answer is the one computed for its own text
        assert a["label"] == LABELS[len(texts[i]) % len(LABELS)]
    assert sum(backend.calls) == 12
    assert len(backend.calls) < 12 and max(backend.calls) > 1, backend.calls
    assert re.search(r"^newsml_batch_requests_count \d", metrics, re.M)
    count = float(re.search(r"^newsml_batch_requests_count (\S+)$", metrics, re.M).group(1))
    assert count == len(backend.calls)
    assert float(re.search(r"^newsml_fallback_articles_total (\S+)$", metrics, re.M).group(1)) == 12


def test_a_request_over_the_timeout_gets_503() -> None:
    backend = SlowRecordingFallback(delay_s=1.0)
    app = create_app(_fallback_predictor(backend, request_timeout_s=0.1), reload_in_background=False)
    with TestClient(app) as c:
        r = c.post("/classify", json={"text": "slow"})
    assert r.status_code == 503 and "request_timeout_s" in r.json()["error"]


def test_metrics_docs_and_openapi(registry: dict, tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=registry["uri"], registry_uri=registry["uri"])
    set_champion(client, registry["name"], registry["versions"][0], reason="metrics test")
    predictor = Predictor(
        resolver=ChampionResolver(
            tracking_uri=registry["uri"], registered_model=registry["name"], cache_dir=tmp_path / "c"
        ),
        labels_cfg=LABELS_CFG,
        serving_cfg=serving_cfg(precision="fp32"),
    )
    with TestClient(create_app(predictor)) as c:
        assert c.post("/classify", json={"text": "The team won."}).status_code == 200
        assert c.post("/classify", json={"text": ""}).status_code == 422
        m = c.get("/metrics")
        assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
        text = m.text
        assert 'newsml_http_requests_total{path="/classify",status="200"} 1.0' in text
        assert 'newsml_http_requests_total{path="/classify",status="422"} 1.0' in text
        assert 'newsml_http_request_duration_seconds_bucket{le="0.005",path="/classify"}' in text
        assert f'newsml_model_info{{model_version="{registry["versions"][0]}",precision="fp32"}} 1.0' in text
        assert "newsml_fallback_articles_total 0.0" in text
        assert c.get("/docs").status_code == 200
        spec = c.get("/openapi.json").json()
        body = spec["paths"]["/classify"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        one, many = body["oneOf"]
        assert "text" in one["required"] and many["type"] == "array"


def test_bearer_token_guards_classify_and_metrics_not_health() -> None:
    predictor = _fallback_predictor(SlowRecordingFallback(delay_s=0))
    with TestClient(create_app(predictor, token="s3cret")) as c:
        assert c.post("/classify", json={"text": "x"}).status_code == 401
        bad = c.post("/classify", json={"text": "x"}, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
        assert c.get("/metrics").status_code == 401
        ok = c.post("/classify", json={"text": "x"}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert c.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/health").status_code == 200


def test_non_loopback_bind_needs_a_token() -> None:
    predictor = _fallback_predictor(SlowRecordingFallback(delay_s=0))
    with pytest.raises(PermissionError, match="NEWSML_SERVING_TOKEN"):
        make_server(predictor, host="0.0.0.0", port=0)
    server = make_server(predictor, host="0.0.0.0", port=0, token="t")  # allowed with a token
    server.server_close()


def test_health_says_degraded_when_a_reload_failed(registry: dict, tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=registry["uri"], registry_uri=registry["uri"])
    set_champion(client, registry["name"], registry["versions"][0], reason="degraded test")
    resolver = ChampionResolver(
        tracking_uri=registry["uri"], registered_model=registry["name"], cache_dir=tmp_path / "c"
    )
    predictor = Predictor(resolver=resolver, labels_cfg=LABELS_CFG, serving_cfg=serving_cfg())
    real_current = resolver.current

    def broken() -> None:
        raise ConnectionError("registry unreachable")

    with TestClient(create_app(predictor, reload_in_background=False)) as c:
        assert c.get("/health").json()["status"] == "ok"
        resolver.current = broken
        assert predictor.reload(force=True) is False
        h = c.get("/health").json()
        assert h["status"] == "degraded" and "registry unreachable" in h["reload_error"]
        assert h["model_version"] == registry["versions"][0]  # still serving the old champion
        assert c.post("/classify", json={"text": "still answers"}).status_code == 200
        assert "newsml_degraded 1.0" in c.get("/metrics").text
        resolver.current = real_current
        predictor.reload(force=True)
        assert c.get("/health").json()["status"] == "ok"


def test_streamed_body_over_the_limit_is_413() -> None:
    predictor = _fallback_predictor(SlowRecordingFallback(delay_s=0))
    server = make_server(predictor, host="127.0.0.1", port=0, max_body_bytes=2048)
    server.start_in_thread()
    try:

        def chunks():  # noqa: ANN202 - no Content-Length: chunked transfer encoding
            yield b'{"text": "'
            for _ in range(10):
                yield b"x" * 1000
            yield b'"}'

        r = httpx.post(
            f"{server.url}/classify", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 413 and "max_body_bytes=2048" in r.json()["error"]
    finally:
        server.shutdown()
        server.server_close()


def test_newsml_serve_subprocess_answers_and_stops_on_sigint(newsml_home: Path) -> None:
    v1 = register_tiny_version(newsml_home, DEFAULT_REGISTERED_MODEL, LABELS, seed=1)
    uri = tracking_uri_for(newsml_home)
    set_champion(MlflowClient(tracking_uri=uri, registry_uri=uri), DEFAULT_REGISTERED_MODEL, v1, reason="t")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsml_pipeline.cli", "serve", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = ""
        deadline = time.monotonic() + 120
        while "serving model version" not in line:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "newsml serve exited before serving"
            assert time.monotonic() < deadline
        url = re.search(r"on (http://\S+)", line).group(1)
        assert url.startswith("http://127.0.0.1:")
        h = httpx.get(f"{url}/health", timeout=30).json()
        assert h["status"] == "ok" and h["model_version"] == v1
        r = httpx.post(f"{url}/classify", json={"text": "The team won the cup."}, timeout=30)
        assert r.status_code == 200 and r.json()["label"] in LABELS
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_overload_gets_a_fast_503_with_retry_after_counted_in_metrics() -> None:
    backend = SlowRecordingFallback(delay_s=0.1)
    predictor = _fallback_predictor(backend, batch_size=1, batch_window_ms=0, queue_deadline_ms=250)
    server = make_server(predictor, host="127.0.0.1", port=0)
    server.start_in_thread()
    try:

        def call(i: int) -> tuple[float, httpx.Response]:
            t0 = time.perf_counter()
            r = httpx.post(f"{server.url}/classify", json={"text": f"article {i}"}, timeout=30)
            return time.perf_counter() - t0, r

        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(call, range(16)))
        metrics = httpx.get(f"{server.url}/metrics").text
    finally:
        server.shutdown()
        server.server_close()
    codes = [r.status_code for _, r in results]
    assert set(codes) == {200, 503}, codes
    shed = [r for _, r in results if r.status_code == 503]
    assert all(int(r.headers["Retry-After"]) >= 1 and "queue_deadline_ms" in r.json()["error"] for r in shed)
    assert max(t for t, _ in results) < 2.0  # 16 x 0.1 s in a row would be 1.6 s + HTTP for the last
    counted = sum(
        float(v) for v in re.findall(r'^newsml_shed_requests_total\{reason="\w+"\} (\S+)$', metrics, re.M)
    )
    assert counted == len(shed)
