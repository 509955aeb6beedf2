"""`newsml entities` and POST /entities: one answer per input, character offsets into the text,
the model version that spoke (the pretrained pipeline before any deployment), clear errors."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from newsml_pipeline.cli import main
from newsml_pipeline.core.entities.serving import EntityService, add_entities_route
from newsml_pipeline_tests.defs.conftest import write_config

ENTITIES = yaml.safe_load(
    (Path(__file__).resolve().parents[3] / "newsml_pipeline/config/entities.yaml").read_text()
)["entities"]
TEXTS = [
    {"id": "a", "text": "Reuters said Prime Minister Boris Johnson flew to the United States."},
    {"text": "Nothing to see here."},
]


@pytest.fixture
def entities_config(tmp_path: Path, newsml_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_config(tmp_path / "config.yaml", entities=ENTITIES)
    monkeypatch.setenv("NEWSML_CONFIG", str(path))
    return path


def _check_answers(answers: list[dict]) -> None:
    assert [a["id"] for a in answers] == ["a", None]
    assert all(a["model_version"] == "pretrained" for a in answers)  # no champion deployed
    first = answers[0]["entities"]
    for e in first:
        assert TEXTS[0]["text"][e["start"] : e["end"]] == e["text"]
    got = {(e["text"], e["label"]) for e in first}
    assert ("Boris Johnson", "PER") in got and ("United States", "LOC") in got  # conventions applied
    assert answers[1]["entities"] == []


def test_newsml_entities_reads_jsonl_from_a_file(entities_config: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(t) + "\n" for t in TEXTS))
    out = io.StringIO()
    assert main(["entities", "--file", str(src)], out=out) == 0
    _check_answers([json.loads(line) for line in out.getvalue().splitlines()])


def test_newsml_entities_reads_stdin_and_names_a_bad_record(
    entities_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(TEXTS[0]) + "\n" + json.dumps({"id": 3}) + "\n"))
    out = io.StringIO()
    assert main(["entities", "--batch-size", "1"], out=out) == 2
    assert "record 2 (stdin line 2): 'text' must be a string" in capsys.readouterr().err
    assert len(out.getvalue().splitlines()) == 1  # the good first record was answered


def test_newsml_entities_without_the_section_says_so(
    tmp_path: Path, newsml_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("NEWSML_CONFIG", str(write_config(tmp_path / "plain.yaml")))
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(TEXTS[0]) + "\n"))
    assert main(["entities"], out=io.StringIO()) == 2
    assert "no `entities:` section" in capsys.readouterr().err


def test_post_entities_route(entities_config: Path, newsml_home: Path) -> None:
    from newsml_pipeline.entity_settings import EntitiesConfig

    service = EntityService.from_config(
        EntitiesConfig.model_validate(ENTITIES),
        tracking_uri=f"sqlite:///{newsml_home / 'mlflow.db'}",
        cache_dir=newsml_home / "cache",
    )
    app = FastAPI()
    add_entities_route(app, service, token="s3cret", max_body_bytes=10_000)
    client = TestClient(app)
    auth = {"Authorization": "Bearer s3cret"}
    assert client.post("/entities", json=TEXTS[0]).status_code == 401
    one = client.post("/entities", json=TEXTS[0], headers=auth)
    assert one.status_code == 200
    many = client.post("/entities", json=TEXTS, headers=auth)
    _check_answers(many.json()["results"])
    assert one.json() == many.json()["results"][0]
    bad = client.post("/entities", json=[{"id": 1}], headers=auth)
    assert bad.status_code == 422 and "'text' must be a string" in bad.json()["error"]
    big = client.post("/entities", json={"text": "x" * 20_000}, headers=auth)
    assert big.status_code == 413


def test_newsml_serve_adds_post_entities_with_the_section(
    entities_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import newsml_pipeline.core.serving.http as http
    import newsml_pipeline.core.serving.predictor as predictor
    from newsml_pipeline.settings import ServingConfig

    class StubPredictor:
        serving_cfg = ServingConfig()
        model_version = "stub"

    class StubServer:
        app = FastAPI()
        url = "http://127.0.0.1:1"

        def serve_forever(self) -> None:
            raise KeyboardInterrupt

        def server_close(self) -> None:
            pass

    server = StubServer()
    monkeypatch.setattr(predictor.Predictor, "from_settings", classmethod(lambda cls, s: StubPredictor()))
    monkeypatch.setattr(http, "make_server", lambda *a, **k: server)
    assert main(["serve"], out=io.StringIO()) == 0
    assert "/entities" in {r.path for r in server.app.routes}
    answer = TestClient(server.app).post("/entities", json=TEXTS[0]).json()
    assert answer["model_version"] == "pretrained" and answer["id"] == "a"
