"""Prometheus metrics of the HTTP endpoint, on a registry of their own (one per app, so two apps in
one process, e.g. tests, never collide on metric names)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ServingMetrics:
    """requests (by path and status), latency histogram, batch sizes, fallbacks, model version."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "newsml_http_requests", "HTTP requests answered", ["path", "status"], registry=r
        )
        self.latency = Histogram(
            "newsml_http_request_duration_seconds",
            "Time from request received to answer sent",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.articles = Counter("newsml_articles_classified", "Articles classified", registry=r)
        self.fallback_articles = Counter(
            "newsml_fallback_articles",
            "Articles answered by the auto-labeler because no champion is deployed",
            registry=r,
        )
        self.batch_articles = Histogram(
            "newsml_batch_articles",
            "Articles per forward pass (micro-batching gathers concurrent requests)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.batch_requests = Histogram(
            "newsml_batch_requests",
            "Requests merged into one forward pass",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.model_info = Gauge(
            "newsml_model_info",
            "1 for the model version now serving",
            ["model_version", "precision"],
            registry=r,
        )
        self.shed = Counter(
            "newsml_shed_requests",
            "Requests answered 503 by the queue deadline (admission: estimated wait too long on "
            "arrival; expired: queued past the deadline)",
            ["reason"],
            registry=r,
        )
        self.degraded = Gauge("newsml_degraded", "1 while the last champion check/reload failed", registry=r)
        self._info_labels: tuple[str, str] | None = None

    def set_model(self, version: str, precision: str) -> None:
        labels = (version, precision)
        if labels == self._info_labels:
            return
        if self._info_labels is not None:
            self.model_info.remove(*self._info_labels)
        self.model_info.labels(*labels).set(1)
        self._info_labels = labels

    def render(self) -> bytes:
        return generate_latest(self.registry)
