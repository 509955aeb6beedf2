"""`newsml serve`: the Predictor behind FastAPI + uvicorn, with micro-batching and Prometheus metrics.

GET  /health    -> {"status": "ok" | "degraded", "model_version": ..., "labels": [...]}
                   (degraded: still answering, but the last champion reload failed; see reload_error)
POST /classify  -> body: one article {"title"?, "text", "id"?} or a list of them;
                   answer: one result object, or {"results": [...]} for a list.
GET  /metrics   -> Prometheus text format; GET /docs -> OpenAPI UI (schema at /openapi.json).

Every error is JSON {"error": message}: 400 bad JSON, 401 missing/wrong bearer token, 404 unknown
path, 405 wrong method, 413 body over `serving.max_body_bytes`, 415 not JSON, 422 a field is
wrong (the message names the article and the field), 503 timed out / over `max_concurrency` /
shed by the queue deadline (`serving.queue_deadline_ms`: with a `Retry-After` header, counted in
`newsml_shed_requests_total`), 500 (logged) if the model itself fails.

With a token configured (env var named by `serving.token_env`), /classify and /metrics require
`Authorization: Bearer <token>`; /health and /docs stay open (probes). Binding anything but a
loopback address without a token is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsml_pipeline.core.exposure import refuse_open_bind
from newsml_pipeline.core.serving.batching import MicroBatcher, Overloaded
from newsml_pipeline.core.serving.metrics import ServingMetrics
from newsml_pipeline.core.serving.predictor import MAX_TITLE_CHARS, InvalidRecordError, Predictor
from newsml_pipeline.settings import ServingConfig

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- request / response models


class Article(BaseModel):
    """One article to classify. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    text: StrictStr = Field(description="the article body (required, not blank)")
    title: StrictStr | None = Field(default=None, max_length=MAX_TITLE_CHARS)
    id: StrictStr | StrictInt | None = Field(default=None, description="echoed back in the answer")


class ClassifyResult(BaseModel):
    id: str | int | None = None
    label: str
    confidence: float
    scores: dict[str, float]
    model_version: str


class ClassifyResults(BaseModel):
    results: list[ClassifyResult]


_ONE = TypeAdapter(Article)
_MANY = TypeAdapter(list[Article])


def _field_message(err: dict[str, Any]) -> str:
    """A pydantic error as `article <i>: field '<name>' ...` (the wording the tests and users see)."""
    loc = [p for p in err.get("loc", ()) if p != "body"]
    index = loc.pop(0) if loc and isinstance(loc[0], int) else None
    # The field is the first name in the location; what follows are union members ('str', 'int').
    name = next((str(p) for p in loc if isinstance(p, str)), "")
    kind = err.get("type", "")
    if kind in ("model_type", "model_attributes_type", "dict_type") or not name:
        msg = "expected an object with 'text'"
    elif kind == "missing":
        msg = f"field '{name}' is required"
    elif kind == "string_too_long":
        msg = f"field '{name}' is longer than {MAX_TITLE_CHARS} characters"
    elif kind.endswith("_type"):
        msg = f"field '{name}' must be a string" + (" or integer" if name == "id" else "")
    else:
        msg = f"field '{name}': {err.get('msg', kind)}"
    return msg if index is None else f"article {index}: {msg}"


def parse_articles(payload: Any) -> tuple[list[dict[str, Any]], bool]:
    """(clean records, single?) from decoded JSON; raises InvalidRecordError naming article and field."""
    if isinstance(payload, dict):
        single = True
        adapter: TypeAdapter = _ONE
    elif isinstance(payload, list):
        single = False
        adapter = _MANY
        if not payload:
            raise InvalidRecordError("no articles to classify (empty list)")
    else:
        raise InvalidRecordError(f"expected an article object or a list, got {type(payload).__name__}")
    try:
        parsed = adapter.validate_python(payload)
    except ValidationError as e:
        raise InvalidRecordError(_field_message(e.errors()[0])) from None
    records = []
    for i, a in enumerate([parsed] if single else parsed):
        if not a.text.strip():
            raise InvalidRecordError(
                "field 'text' is empty" if single else f"article {i}: field 'text' is empty"
            )
        rec: dict[str, Any] = {"title": a.title, "text": a.text}
        if a.id is not None:
            rec["id"] = a.id
        records.append(rec)
    return records, single


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


# ---------------------------------------------------------------- the app

_OBSERVED_PATHS = frozenset(("/classify", "/health", "/metrics"))


class _ObserveMiddleware:
    """Counts requests by path and status and times them, as plain ASGI: Starlette's
    `@app.middleware("http")` (BaseHTTPMiddleware) runs every request through an extra task and
    memory streams, which costs more than the rest of the request handling on a small machine."""

    def __init__(self, app: ASGIApp, *, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500  # what the client sees if the app raises before answering

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            path = scope.get("path", "")
            label = path if path in _OBSERVED_PATHS else "other"
            self.metrics.requests.labels(label, str(status)).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - t0)


class _DirectRoute:
    """One method + path answered by `endpoint(request)` ahead of FastAPI's router, as plain ASGI.

    FastAPI's routing (route matching, dependency solving, its exception middleware's exit
    stacks) costs about a tenth of a millisecond per request in Python; on the hot path of a
    small machine that is a measurable part of what HTTP adds to a predictor call (issue 28:
    <= 2 ms). The FastAPI route for the same path stays registered for the OpenAPI schema and
    answers the other methods (405)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        method: str,
        path: str,
        endpoint: Callable[[Request], Awaitable[Response]],
    ) -> None:
        self.app = app
        self.method = method
        self.path = path
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.path and scope["method"] == self.method:
            response = await self.endpoint(Request(scope, receive))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _read_body(request: Request, limit: int) -> bytes | JSONResponse:
    """The body, read up to `limit` bytes; 413 as soon as it is known to be bigger (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            return _error(400, f"invalid Content-Length {declared!r}")
        if int(declared) > limit:
            return _error(
                413,
                f"body of {declared} bytes exceeds serving.max_body_bytes={limit}; send fewer articles per request",
            )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return _error(
                413, f"body exceeds serving.max_body_bytes={limit}; send fewer articles per request"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    predictor: Predictor,
    *,
    serving_cfg: ServingConfig | None = None,
    token: str | None = None,
    reload_in_background: bool = True,
) -> FastAPI:
    """The ASGI app. `token`: required bearer token for /classify and /metrics (None = open).

    reload_in_background: a task checks the champion alias every `reload_interval_s` off the
    request path, so a request never waits for a new model to download and load.
    """
    cfg = serving_cfg or predictor.serving_cfg
    metrics = ServingMetrics()

    def on_batch(n_requests: int, n_articles: int) -> None:
        metrics.batch_requests.observe(n_requests)
        metrics.batch_articles.observe(n_articles)

    def predict(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return predictor.predict(records, reload=False)

    batcher = MicroBatcher(
        predict,
        window_s=cfg.batch_window_ms / 1000,
        max_articles=cfg.batch_size,
        on_batch=on_batch,
        deadline_s=cfg.queue_deadline_ms / 1000,
        on_shed=lambda reason: metrics.shed.labels(reason).inc(),
    )

    def refresh_gauges() -> None:
        backend = predictor._backend  # noqa: SLF001 - precision label for the info gauge
        metrics.set_model(predictor.model_version, str(getattr(backend, "precision", "-")))
        metrics.degraded.set(1 if predictor.reload_error else 0)

    async def reload_loop() -> None:
        loop = asyncio.get_running_loop()
        interval = max(cfg.reload_interval_s, 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                await loop.run_in_executor(None, predictor.reload)
            except Exception:  # reload() logs and keeps serving; this guards the loop itself
                log.exception("champion reload task failed")
            refresh_gauges()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        refresh_gauges()
        task = asyncio.create_task(reload_loop()) if reload_in_background else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await batcher.stop()

    app = FastAPI(
        title="newsml classifier",
        description="News topic classification by the deployed champion model.",
        lifespan=lifespan,
    )
    app.state.predictor = predictor
    app.state.metrics = metrics

    def authorised(request: Request) -> bool:
        if not token:
            return True
        got = request.headers.get("authorization", "")
        scheme, _, value = got.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), token)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _error(404, f"unknown path {request.url.path!r}; try GET /health or POST /classify")
        if exc.status_code == 405:
            return _error(405, f"{request.method} is not allowed on {request.url.path}")
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        return _error(422, _field_message(errs[0]) if errs else "invalid request")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """ok / degraded, the model version serving and its labels (never waits for a reload)."""
        return predictor.health(reload=not reload_in_background)

    @app.get("/metrics")
    async def prometheus(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "missing or wrong bearer token")
        refresh_gauges()
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post(
        "/classify",
        response_model=ClassifyResult | ClassifyResults,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                Article.model_json_schema(),
                                {"type": "array", "items": Article.model_json_schema(), "minItems": 1},
                            ]
                        }
                    }
                },
            }
        },
        responses={
            400: {"description": "body is not JSON"},
            401: {"description": "bearer token missing or wrong"},
            413: {"description": "body larger than serving.max_body_bytes"},
            415: {"description": "not application/json"},
            422: {"description": "a field is missing or wrong; the message names it"},
            503: {"description": "timed out, over capacity or shed by the queue deadline (Retry-After)"},
        },
    )
    async def classify(request: Request) -> Response:
        """Classify one article object or a list of them (merged with concurrent requests into one
        forward pass)."""
        if not authorised(request):
            return JSONResponse(
                {"error": "missing or wrong bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        ctype = (request.headers.get("content-type") or "application/json").split(";")[0].strip().lower()
        body = await _read_body(request, cfg.max_body_bytes)
        if isinstance(body, Response):
            return body
        if ctype not in ("application/json", "text/json"):
            return _error(415, f"Content-Type must be application/json, got {ctype!r}")
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return _error(400, f"body is not valid UTF-8 JSON: {e}")
        try:
            records, single = parse_articles(payload)
        except InvalidRecordError as e:
            return _error(422, str(e))
        try:
            # asyncio.timeout, not wait_for: no extra task (and loop turn) per request
            async with asyncio.timeout(cfg.request_timeout_s):
                results = await batcher.submit(records)
        except Overloaded as e:  # fast: the queue is longer than the deadline allows
            return JSONResponse(
                {"error": f"overloaded, retry later: {e}"},
                status_code=503,
                headers={"Retry-After": str(max(1, math.ceil(e.retry_after_s)))},
            )
        except TimeoutError:
            return _error(503, f"no answer within serving.request_timeout_s={cfg.request_timeout_s}s")
        except InvalidRecordError as e:  # the predictor's own check (should not differ from ours)
            return _error(422, str(e))
        except Exception:
            log.exception("classification failed")
            return _error(500, "the model failed on this request; see the server log")
        metrics.articles.inc(len(results))
        if results and results[0]["model_version"] == "auto-labeler":
            metrics.fallback_articles.inc(len(results))
        return JSONResponse(results[0] if single else {"results": results})

    # add_middleware puts the last one added outermost: every request is counted and timed,
    # the fast /classify path included.
    app.add_middleware(_DirectRoute, method="POST", path="/classify", endpoint=classify)
    app.add_middleware(_ObserveMiddleware, metrics=metrics)
    return app


# ---------------------------------------------------------------- the server


class NewsmlServer:
    """uvicorn serving `create_app(predictor)` on a socket bound at construction (port 0 = any free)."""

    def __init__(
        self,
        predictor: Predictor,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        max_body_bytes: int | None = None,
        token: str | None = None,
        **config_overrides: Any,
    ) -> None:
        import uvicorn

        cfg = predictor.serving_cfg
        if max_body_bytes is not None or config_overrides:
            cfg = cfg.model_copy(
                update={**config_overrides, **({"max_body_bytes": max_body_bytes} if max_body_bytes else {})}
            )
        refuse_open_bind(
            host,
            has_credentials=bool(token),
            what="the classifier",
            how=f"set ${cfg.token_env} (a bearer token: clients send 'Authorization: Bearer <token>')",
        )
        self.app = create_app(predictor, serving_cfg=cfg, token=token)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        # Listen now: `newsml serve` prints its URL before uvicorn starts, and a client that
        # connects in between queues in the backlog instead of being refused (seen in CI).
        self.socket.listen(2048)
        self.config = uvicorn.Config(
            self.app,
            limit_concurrency=cfg.max_concurrency,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=10,
            log_level="warning",
            access_log=False,
        )
        self.server = uvicorn.Server(self.config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def serve_forever(self) -> None:
        """Block until Ctrl-C / SIGTERM (uvicorn's own signal handling in the main thread)."""
        self.server.run(sockets=[self.socket])

    def start_in_thread(self, *, startup_timeout_s: float = 30.0) -> threading.Thread:
        """Serve from a daemon thread (tests, benchmarks) and return once it accepts requests."""
        self._thread = threading.Thread(target=self.serve_forever, name="newsml-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + startup_timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start; see the log")
            time.sleep(0.01)
        return self._thread

    def shutdown(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)

    def server_close(self) -> None:
        self.socket.close()


def make_server(
    predictor: Predictor,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    max_body_bytes: int | None = None,
    token: str | None = None,
    **config_overrides: Any,
) -> NewsmlServer:
    """Bind (port 0 = any free port) but do not start; call serve_forever() or start_in_thread()."""
    return NewsmlServer(
        predictor, host=host, port=port, max_body_bytes=max_body_bytes, token=token, **config_overrides
    )


def start_in_thread(server: NewsmlServer) -> threading.Thread:
    """Serve in a daemon thread; stop with server.shutdown(); server.server_close()."""
    return server.start_in_thread()
