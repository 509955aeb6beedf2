"""HTTP endpoint (real uvicorn on an ephemeral loopback port): health, single/list classify, 4xx
with a JSON message naming the field, concurrent requests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from mlflow import MlflowClient

from newsml_pipeline.core.registry.aliases import set_champion
from newsml_pipeline.core.serving.http import make_server, start_in_thread
from newsml_pipeline.core.serving.predictor import ChampionResolver, Predictor
from newsml_pipeline_tests.core.serving.conftest import LABELS, LABELS_CFG, FixedFallback, serving_cfg

MAX_BODY = 4096


@pytest.fixture(scope="module")
def base_url(registry: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    client = MlflowClient(tracking_uri=registry["uri"], registry_uri=registry["uri"])
    set_champion(client, registry["name"], registry["versions"][0], reason="http tests")
    resolver = ChampionResolver(
        tracking_uri=registry["uri"],
        registered_model=registry["name"],
        cache_dir=tmp_path_factory.mktemp("c"),
    )
    predictor = Predictor(
        resolver=resolver, labels_cfg=LABELS_CFG, serving_cfg=serving_cfg(), fallback=FixedFallback
    )
    server = make_server(predictor, host="127.0.0.1", port=0, max_body_bytes=MAX_BODY)
    start_in_thread(server)
    yield server.url
    server.shutdown()
    server.server_close()


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as c:
        yield c


def test_health(http: httpx.Client, registry: dict) -> None:
    r = http.get("/health")
    assert r.status_code == 200
    assert r.json()["model_version"] == registry["versions"][0]
    assert r.json()["labels"] == LABELS


def test_classify_one_and_many(http: httpx.Client, registry: dict) -> None:
    one = http.post("/classify", json={"title": "Cup final", "text": "The team won the match."})
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["label"] in LABELS and set(body["scores"]) == set(LABELS)
    assert body["model_version"] == registry["versions"][0]
    many = http.post("/classify", json=[{"text": "Shares fell."}, {"id": 7, "text": "New phone out."}])
    assert many.status_code == 200
    results = many.json()["results"]
    assert len(results) == 2 and results[1]["id"] == 7


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        # FastAPI port: field errors are 422 (was 400) and still name the article and the field.
        ({"text": ""}, 422, "field 'text' is empty"),
        ({"text": "   \n"}, 422, "field 'text' is empty"),
        ({"text": 42}, 422, "field 'text' must be a string"),
        ({"title": 1, "text": "ok"}, 422, "field 'title' must be a string"),
        ({"title": "no text"}, 422, "field 'text' is required"),
        ([{"text": "ok"}, "oops"], 422, "article 1: expected an object"),
        ([{"text": "ok"}, {"text": ""}], 422, "article 1: field 'text' is empty"),
        (
            [{"text": "ok"}, {"id": True, "text": "x"}],
            422,
            "article 1: field 'id' must be a string or integer",
        ),
        ([], 422, "empty list"),
        ("just text", 422, "expected an article object or a list"),
        ({"text": "x" * (MAX_BODY + 10)}, 413, "max_body_bytes"),
    ],
)
def test_bad_requests_get_4xx_with_a_message(http: httpx.Client, body, status: int, message: str) -> None:  # noqa: ANN001
    r = http.post("/classify", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code == status
    assert message in r.json()["error"]


def test_bad_json_wrong_path_wrong_method(http: httpx.Client) -> None:
    r = http.post("/classify", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid UTF-8 JSON" in r.json()["error"]
    r = http.post("/classify", content=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = http.post(
        "/classify", content=b"text=hi", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 415
    assert http.get("/nope").status_code == 404
    assert "unknown path" in http.post("/predict", json={"text": "x"}).json()["error"]
    assert http.get("/classify").status_code == 405
    # the connection is still usable after errors
    assert http.get("/health").status_code == 200


def test_concurrent_requests_all_answer_consistently(base_url: str) -> None:
    texts = [f"Article {i}: the minister spoke about the economy and the match." for i in range(8)]

    def call(i: int) -> dict:
        with httpx.Client(base_url=base_url, timeout=60) as c:
            r = c.post("/classify", json={"text": texts[i % len(texts)]})
            assert r.status_code == 200, r.text
            return r.json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, range(48)))
    assert len(results) == 48
    for i, r in enumerate(results):
        assert r["scores"] == results[i % len(texts)]["scores"]


def test_the_server_picks_up_a_new_champion_without_a_restart(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """README: `newsml serve` "picks up a new champion without a restart". Two real versions in a
    registry, the real uvicorn server; only the background reload task may notice the swap (a
    /classify never reloads)."""
    import time

    from newsml_pipeline_tests.core.serving.registry_helpers import register_tiny_version, tracking_uri_for

    root = tmp_path_factory.mktemp("swap")
    name = "swap-news"
    v1 = register_tiny_version(root, name, LABELS, seed=11)
    v2 = register_tiny_version(root, name, LABELS, seed=12)
    uri = tracking_uri_for(root)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    set_champion(client, name, v1, reason="first")
    resolver = ChampionResolver(tracking_uri=uri, registered_model=name, cache_dir=root / "cache")
    predictor = Predictor(
        resolver=resolver,
        labels_cfg=LABELS_CFG,
        serving_cfg=serving_cfg(reload_interval_s=0.5),
        fallback=FixedFallback,
    )
    server = make_server(predictor, host="127.0.0.1", port=0)
    start_in_thread(server)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            body = {"title": "Cup final", "text": "The team won the cup final."}
            assert http.post("/classify", json=body).json()["model_version"] == v1
            set_champion(client, name, v2, reason="swap")  # what deployed_model does
            deadline, seen = time.monotonic() + 30, []
            while time.monotonic() < deadline:
                seen.append(http.post("/classify", json=body).json()["model_version"])
                if seen[-1] == v2:
                    break
                time.sleep(0.2)
            assert seen[-1] == v2, f"still serving {seen[-1]} 30 s after the swap"
            assert set(seen) <= {v1, v2}  # every answer came from one of the two, none failed
            assert http.get("/health").json()["model_version"] == v2
    finally:
        server.shutdown()
        server.server_close()


def test_post_classify_is_answered_ahead_of_the_router_and_the_rest_reaches_it() -> None:
    """_DirectRoute: POST /classify skips FastAPI's routing (its hot-path cost), every other
    method or path still goes to the app (405/404, /health, /docs)."""
    import asyncio

    from starlette.requests import Request
    from starlette.responses import PlainTextResponse

    from newsml_pipeline.core.serving.http import _DirectRoute

    reached: list[tuple[str, str]] = []

    async def inner(scope, receive, send) -> None:  # noqa: ANN001
        reached.append((scope["method"], scope["path"]))
        await PlainTextResponse("router")(scope, receive, send)

    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"direct {request.method}")

    app = _DirectRoute(inner, method="POST", path="/classify", endpoint=endpoint)

    async def call(method: str, path: str) -> bytes:
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}
        await app(scope, receive, send)
        return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")

    assert asyncio.run(call("POST", "/classify")) == b"direct POST"
    assert reached == []
    assert asyncio.run(call("GET", "/classify")) == b"router"
    assert asyncio.run(call("POST", "/classify/x")) == b"router"
    assert reached == [("GET", "/classify"), ("POST", "/classify/x")]
