"""`newsml` CLI in-process: predict from stdin/argument/file, status, rollback, bench lookup."""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
import pytest

from newsml_pipeline.cli import main
from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.registry.aliases import set_champion
from newsml_pipeline.core.registry.tracking import store_client
from newsml_pipeline.settings import DEFAULT_REGISTERED_MODEL
from newsml_pipeline_tests.core.serving.conftest import LABELS
from newsml_pipeline_tests.core.serving.registry_helpers import register_tiny_version, tracking_uri_for


class FakeStdin(io.StringIO):
    def isatty(self) -> bool:
        return False


@pytest.fixture
def deployed(newsml_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # `newsml rollback` records itself in the Dagster instance: this test's own, not the repo's
    (newsml_home / "dagster").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(newsml_home / "dagster"))
    v1 = register_tiny_version(newsml_home, DEFAULT_REGISTERED_MODEL, LABELS, seed=1)
    v2 = register_tiny_version(newsml_home, DEFAULT_REGISTERED_MODEL, LABELS, seed=2)
    uri = tracking_uri_for(newsml_home)
    client = store_client(uri)
    set_champion(client, DEFAULT_REGISTERED_MODEL, v1, reason="first", metrics={"macro_f1": 0.91})
    set_champion(client, DEFAULT_REGISTERED_MODEL, v2, reason="gate passed", metrics={"macro_f1": 0.95})
    return {"home": newsml_home, "v1": v1, "v2": v2}


def _run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = main(argv, out=out)
    return code, out.getvalue()


def test_predict_jsonl_on_stdin_and_argument_and_file(
    deployed: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lines = [json.dumps({"id": i, "title": f"t{i}", "text": f"the team won match {i}"}) for i in range(5)]
    monkeypatch.setattr("sys.stdin", FakeStdin("\n".join(lines) + "\n\n"))
    code, out = _run(["predict", "--batch-size", "2"])
    assert code == 0
    rows = [json.loads(x) for x in out.splitlines()]
    assert [r["id"] for r in rows] == list(range(5))
    assert {r["model_version"] for r in rows} == {deployed["v2"]}
    assert all(r["label"] in LABELS and set(r["scores"]) == set(LABELS) for r in rows)

    code, out = _run(["predict", "Shares rose sharply.", "--title", "Markets"])
    assert code == 0 and json.loads(out)["model_version"] == deployed["v2"]

    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(lines[:3]))
    code, out = _run(["predict", "--file", str(f)])
    assert code == 0 and len(out.splitlines()) == 3


def test_predict_bad_input_names_the_line(
    deployed: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr("sys.stdin", FakeStdin('{"text": "ok"}\n{oops\n'))
    code, _ = _run(["predict"])
    assert code == 2 and "stdin line 2: not valid JSON" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", FakeStdin('{"text": "ok"}\n{"text": ""}\n'))
    code, _ = _run(["predict"])
    assert code == 2 and "record 2 (stdin line 2): field 'text' is empty" in capsys.readouterr().err


def test_predict_file_reads_one_article_per_row_and_refuses_a_stray_title(
    deployed: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """.csv and .parquet are read as local sources read them: one article per row, not one blob."""
    rows = [
        {"id": "a", "title": "Cup final", "text": "the team won the match"},
        {"id": "b", "title": None, "text": "shares rose on the market"},
        {"id": "c", "title": "Vote", "text": "parliament passed the bill"},
    ]
    csv_path = tmp_path / "in.csv"
    pl.DataFrame(rows).write_csv(csv_path)  # the missing title is an empty cell
    parquet_path = tmp_path / "in.parquet"
    pl.DataFrame(rows).write_parquet(parquet_path)
    for path in (csv_path, parquet_path):
        code, out = _run(["predict", "--file", str(path)])
        assert code == 0, capsys.readouterr().err
        answers = [json.loads(x) for x in out.splitlines()]
        assert [a["id"] for a in answers] == ["a", "b", "c"], path
        assert all(a["label"] in LABELS for a in answers)
    # The same article scores the same whether it comes alone or as a row of a file.
    code, out = _run(["predict", "the team won the match", "--title", "Cup final"])
    assert json.loads(out)["scores"] == pytest.approx(answers[0]["scores"], abs=1e-5)

    code, out = _run(["predict", "--file", str(csv_path), "--title", "Ignored?"])
    assert code == 2 and out == "" and "--title goes with a text argument" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("title,text\nok,fine text\nno text,\n")
    code, out = _run(["predict", "--file", str(bad)])
    assert code == 2 and f"record 2 ({bad}:3): field 'text' is required" in capsys.readouterr().err


def test_status_then_rollback_then_no_more_rollback(deployed: dict, capsys: pytest.CaptureFixture) -> None:
    code, out = _run(["status"])
    assert code == 0
    assert f"champion: version {deployed['v2']}" in out and f"previous: {deployed['v1']}" in out
    assert "macro_f1: 0.9500" in out and "why: gate passed" in out
    assert "serving precision: not chosen yet" in out
    # A serving process (here `newsml predict`, precision auto) measures and records its choice.
    assert _run(["predict", "the team won the match"])[0] == 0
    code, out = _run(["status"])
    assert "serving precision: " in out and "fastest measured here: " in out and "ms/article" in out
    code, out = _run(["status", "--json"])
    champ = json.loads(out)["champion"]
    assert champ["version"] == deployed["v2"]
    sp = champ["serving_precision"]
    assert sp["precision"] in sp["measured_ms"] and sp["version"] == deployed["v2"]
    assert sp["measured_ms"][sp["precision"]] == min(sp["measured_ms"].values())

    code, out = _run(["rollback", "--reason", "bad answers", "--by", "alice"])
    assert code == 0
    assert f"champion is now version {deployed['v1']} (was {deployed['v2']}; reason: bad answers)" in out
    rows = Warehouse(deployed["home"] / "warehouse.duckdb").read("deployments")
    assert rows.height == 1 and rows["deployed_by"][0] == "alice" and rows["action"][0] == "rollback"
    assert f"champion: version {deployed['v1']}" in _run(["status"])[1]

    code, _ = _run(["rollback"])
    assert code == 2 and "no 'previous' alias" in capsys.readouterr().err


def test_status_without_champion_and_unknown_bench(
    newsml_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, out = _run(["status"])
    assert code == 0 and "none deployed yet" in out
    code, _ = _run(["bench", "no-such-bench"])
    assert code == 2 and "no benchmark 'no-such-bench'" in capsys.readouterr().err
