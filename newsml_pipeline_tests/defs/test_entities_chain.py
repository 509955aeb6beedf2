"""The entity task through Dagster: registered only with an `entities:` section, and the whole
chain run the way users launch it (`dagster asset materialize`, multiprocess executor): daily
auto-labels, story splits, a candidate registered in MLflow, the blocking entity gate (a strict
gate leaves the champion alias unmoved), deployment, and the deployed model's mentions per day."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.entities.gold import read_iob2
from newsml_pipeline.core.registry.tracking import store_client
from newsml_pipeline.definitions import build_definitions
from newsml_pipeline_tests.dagster_cli import materialize
from newsml_pipeline_tests.defs.conftest import write_config

DAY = "2026-11-20"
ENTITIES = {
    "types": [
        {"name": "PER", "description": "people", "spacy_labels": ["PERSON"]},
        {"name": "ORG", "description": "organisations", "spacy_labels": ["ORG"]},
        {"name": "LOC", "description": "places", "spacy_labels": ["GPE", "LOC", "FAC"]},
        {"name": "NEWS_ORG", "description": "news organisations", "gazetteer": ["BBC", "Reuters"]},
    ],
    "training": {"epochs": 1, "batch_size": 64},
    "gate": {"min_test_sentences": 20},
}


def test_entity_group_only_with_the_section(make_settings) -> None:
    plain = build_definitions(make_settings())
    keys = {k.to_user_string() for k in plain.resolve_all_asset_keys()}
    assert not {k for k in keys if k.startswith("entity")}
    on = build_definitions(make_settings(entities=ENTITIES))
    graph = on.resolve_asset_graph()
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert {k for k, g in groups.items() if g == "entities"} == {
        "entity_labels",
        "entity_splits",
        "entity_candidate",
        "entity_evaluation",
        "entity_deployment",
        "entity_mentions",
        "entity_review_queue",
    }
    assert on.resolve_job_def("entity_retrain_job") is not None
    assert on.resolve_schedule_def("entity_weekly_retrain_schedule").cron_schedule == "0 4 * * 1"
    assert on.resolve_schedule_def("entity_daily_schedule").job_name == "entity_ingest_job"


def _inbox(tmp_path: Path, bbc_rows: list[dict], n: int) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    with open(folder / "bbc.jsonl", "w", encoding="utf-8") as fh:
        for r in [r for r in bbc_rows if not r.get("duplicate_of")][:: len(bbc_rows) // n][:n]:
            rec = {"id": r["id"], "title": r["title"], "text": r["text"][:1200], "published": DAY}
            fh.write(json.dumps(rec) + "\n")
    return folder


def _gold_jsonl(tmp_path: Path, corpora: Path) -> Path:
    news = [s for s in read_iob2(corpora / "uner_en_pud" / "en_pud_ner.iob2") if s.id.startswith("n")][:40]
    path = tmp_path / "gold.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for s in news:
            ents = [{"start": e.start, "end": e.end, "label": e.label} for e in s.entities]
            fh.write(json.dumps({"id": s.id, "text": s.text, "entities": ents}) + "\n")
    return path


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_entity_chain_through_the_cli(tmp_path: Path, newsml_home: Path, bbc_rows, corpora: Path) -> None:
    inbox = _inbox(tmp_path, bbc_rows, 40)
    gold = _gold_jsonl(tmp_path, corpora)
    cfg_path = tmp_path / "config.yaml"

    def configure(min_gain: float) -> None:
        ents = {**ENTITIES, "gold_files": [str(gold)], "gate": {**ENTITIES["gate"], "min_gain": min_gain}}
        write_config(
            cfg_path, sources=[{"name": "inbox", "kind": "local", "path": str(inbox)}], entities=ents
        )

    configure(0.5)  # no fine-tune on 40 articles gains 50 points: the gate must block
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    env = {
        **os.environ,
        "NEWSML_HOME": str(newsml_home),
        "NEWSML_CONFIG": str(cfg_path),
        "DAGSTER_HOME": str(dagster_home),
        "HF_HUB_OFFLINE": "1",
    }

    def run(select: str, partition: str | None = None):
        out = materialize(select, env=env, partition=partition, timeout=900)
        return out, out.stdout[-4000:] + out.stderr[-4000:]

    out, log = run("raw_articles,entity_labels", DAY)
    assert out.returncode == 0, log
    wh = Warehouse(newsml_home / "warehouse.duckdb")
    labels = wh.read("entity_labels")
    raw_ids = set(wh.read("raw_articles")["article_id"].to_list())
    assert len(raw_ids) >= 38  # BBC repeats a story or two under another title: one row each
    assert set(labels["article_id"].to_list()) == raw_ids and len(labels) > 200
    spans = [e for raw in labels["entities"].to_list() for e in json.loads(raw)]
    assert {"PER", "ORG", "LOC"} <= {e[2] for e in spans}

    retrain = "entity_splits,entity_candidate,entity_evaluation,entity_deployment"
    out, log = run(retrain)
    assert "entity_gate" in log
    assert not wh.table_exists("deployments")  # the topic task is untouched
    import mlflow

    client = store_client(f"sqlite:///{newsml_home / 'mlflow.db'}")
    versions = client.search_model_versions("name='newsml-entity-recognizer'")
    assert len(versions) == 1
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias("newsml-entity-recognizer", "champion")
    # splits keep each article on one side
    splits = wh.read("entity_splits")
    assert splits["article_id"].n_unique() == len(splits) == len(raw_ids)

    configure(-1.0)  # a gate any candidate passes: this time it deploys
    out, log = run(retrain)
    assert out.returncode == 0, log
    champ = client.get_model_version_by_alias("newsml-entity-recognizer", "champion")
    assert str(champ.version) == "2"

    out, log = run("entity_mentions", DAY)
    assert out.returncode == 0, log
    mentions = wh.read("entity_mentions")
    assert set(mentions["model_version"].to_list()) == {"2"}
    # every mention is checked against the day's source proposals; most were proposed
    assert mentions["proposed"].is_not_null().all() and mentions["proposed"].mean() > 0.5
    raw = wh.read("raw_articles")
    texts = {a: f"{t}.\n{x}" for a, t, x in zip(raw["article_id"], raw["title"], raw["text"], strict=True)}
    for r in mentions.head(50).iter_rows(named=True):
        assert texts[r["article_id"]][r["start"] : r["end"]] == r["text"]
    # the registered pyfunc loads in a fresh interpreter and answers with offsets into the text
    probe = (
        "import json, mlflow, pandas as pd\n"
        "m = mlflow.pyfunc.load_model('models:/newsml-entity-recognizer@champion')\n"
        "out = m.predict(pd.DataFrame({'text': ['Angela Merkel met Emmanuel Macron in Paris.']}))\n"
        "print(out['entities'][0])\n"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", probe],
        env={**env, "MLFLOW_TRACKING_URI": f"sqlite:///{newsml_home / 'mlflow.db'}"},
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    ents = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert ("Paris", "LOC") in {(e["text"], e["label"]) for e in ents}


def _mentions(day: str, n_articles: int, p_unproposed: float, seed: int):
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    rows = [
        {
            "article_id": f"{day}-{i:04d}",
            "partition_date": date.fromisoformat(day),
            "model_version": "1",
            "start": 5 * k,
            "end": 5 * k + 4,
            "label": "PER",
            "text": "Anna",
            "proposed": bool(rng.random() >= p_unproposed),
        }
        for i in range(n_articles)
        for k in range(4)
    ]
    return pl.DataFrame(rows)


def test_entity_drift_sensor_requests_one_retrain_on_a_shift(make_settings) -> None:
    settings = make_settings(entities=ENTITIES, drift={"delta": 0.002, "cooldown_hours": 24})
    defs = build_definitions(settings)
    wh = Warehouse(settings.warehouse_path)
    instance = dg.DagsterInstance.ephemeral()
    sensor = defs.resolve_sensor_def("entity_drift_sensor")

    def tick():
        return sensor(dg.build_sensor_context(instance=instance, resources=defs.resources))

    assert "no entity_mentions yet" in tick().skip_reason.skip_message
    wh.replace_partition(
        "entity_mentions",
        _mentions("2026-11-20", 300, 0.1, 0),
        partition_column="partition_date",
        partition_key=date(2026, 11, 20),
    )
    calm = tick()
    assert not calm.run_requests and "no drift after 300 articles" in calm.skip_reason.skip_message
    assert "no new entity mentions" in tick().skip_reason.skip_message  # the cursor moved on
    wh.replace_partition(
        "entity_mentions",
        _mentions("2026-11-21", 300, 0.6, 1),
        partition_column="partition_date",
        partition_key=date(2026, 11, 21),
    )
    shifted = tick()
    assert len(shifted.run_requests) == 1
    assert shifted.run_requests[0].tags["newsml/trigger"] == "drift"
    assert defs.resolve_sensor_def("entity_drift_sensor").job_name == "entity_retrain_job"
    wh.replace_partition(
        "entity_mentions",
        _mentions("2026-11-22", 300, 0.05, 2),
        partition_column="partition_date",
        partition_key=date(2026, 11, 22),
    )
    again = tick()  # a shift back within the cooldown asks for nothing more
    assert not again.run_requests


def test_newsml_run_includes_the_entity_jobs(make_settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from newsml_pipeline import runner

    ran: list[tuple[str, str | None]] = []

    class Done:
        success = True
        run_id = "r"
        all_events: list = []

    def fake_execute(self, *, partition_key=None, instance=None, raise_on_error=True):  # noqa: ANN001, ANN202
        ran.append((self.name, partition_key))
        return Done()

    monkeypatch.setattr(dg.JobDefinition, "execute_in_process", fake_execute)
    monkeypatch.setattr(runner, "open_instance", lambda home: None)
    monkeypatch.setattr(runner, "retrains_in_progress", lambda instance: [])
    assert runner.run_pipeline(
        day=DAY, retrain=True, settings=make_settings(entities=ENTITIES), out=io.StringIO()
    )
    assert ran == [
        ("ingest_job", DAY),
        ("retrain_job", None),
        ("entity_ingest_job", DAY),
        ("entity_retrain_job", None),
    ]
    ran.clear()
    assert runner.run_pipeline(day=DAY, settings=make_settings(), out=io.StringIO())
    assert ran == [("ingest_job", DAY)]
