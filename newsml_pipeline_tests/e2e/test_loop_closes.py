"""The loop closes through the labelling page: silver first, then gold, with no hand-written file.

A simulated newsroom (BBC stories behind RSS feeds, no labelled source) is ingested; the first
`retrain_job`, run by Dagster's multiprocess executor as the daemon and the UI run it, reaches a
verdict on silver evaluation. Then a person labels the review queue through `newsml label` (a real
subprocess, over HTTP) and the next `retrain_job` evaluates on gold: dataset_splits, the gate's
metadata and the MLflow tags all say so. Every bad answer on the way is refused with a clear
error and costs nothing already stored.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import httpx
import pytest

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.labeling.feedback_store import FeedbackStore, store_path
from newsml_pipeline.core.registry.tracking import store_client
from newsml_pipeline.definitions import build_definitions
from newsml_pipeline.defs.clock import AS_OF_TAG
from newsml_pipeline.newsroom import NewsSite
from newsml_pipeline.settings import Settings
from newsml_pipeline_tests.defs.test_silver_loop import DAYS, _stories, newsroom_config
from newsml_pipeline_tests.e2e.servers import start_label_page, stop_process
from testkit.tiny_models import make_tiny_classifier_dir

LABELS = ["business", "entertainment", "politics", "sport", "tech"]
PER_DAY = 80  # 32 stories per class over the two days: enough gold for val/test once all are labelled


def retrain_job() -> dg.JobDefinition:
    """retrain_job over the settings of NEWSML_HOME / NEWSML_CONFIG (reconstructable in workers)."""
    return build_definitions(Settings.from_env()).resolve_job_def("retrain_job")


def _gate(result) -> dg.AssetCheckEvaluation:  # noqa: ANN001
    checks = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    return next(
        e.event_specific_data for e in checks if e.event_specific_data.check_name == "evaluation_gate"
    )


def _retrain(instance: dg.DagsterInstance, as_of: datetime) -> dict:
    """One retrain_job run with the multiprocess executor; what the test reads from it."""
    with dg.execute_job(
        dg.reconstructable(retrain_job), instance, tags={AS_OF_TAG: as_of.isoformat()}, raise_on_error=False
    ) as result:
        kinds = {e.event_type_value for e in result.all_events}
        failures = [e.event_specific_data.error for e in result.all_events if e.is_step_failure]
        gate = _gate(result)
        # a blocked gate is a verdict in a successful run (deployed_model left unmaterialized)
        assert result.success and not failures, [str(f) for f in failures]
        return {
            "multiprocess": "STEP_WORKER_STARTED" in kinds,
            "splits": result.asset_materializations_for_node("dataset_splits")[0].metadata,
            "evaluation": result.asset_materializations_for_node("model_evaluation")[0].metadata,
            "gate_passed": gate.passed,
            "gate_kind": gate.metadata["evaluation_kind"].value,
            "deployed": bool(result.asset_materializations_for_node("deployed_model")),
        }


@pytest.fixture
def label_page(newsml_home: Path):  # noqa: ANN201
    """Starts `newsml label` on NEWSML_HOME / NEWSML_CONFIG of this process; yields a starter."""
    procs: list[subprocess.Popen] = []

    def start() -> str:
        url, proc = start_label_page(dict(os.environ), user="carol")
        procs.append(proc)
        return url

    yield start
    for proc in procs:
        stop_process(proc)


def _post(client: httpx.Client, **answer: str | None) -> httpx.Response:
    return client.post("/api/answers", json=answer)


def _refusals_lose_nothing(client: httpx.Client, store: FeedbackStore, head: dict) -> None:
    """Each bad answer: a 4xx naming the problem, nothing stored, the same article still next."""
    before = store.answers()
    aid = head["article_id"]
    r = _post(client, answer_id="bad-1", article_id=aid, action="label", label="weather")
    assert r.status_code == 422 and "'weather'" in r.json()["detail"] and "business" in r.json()["detail"]
    r = _post(client, answer_id="bad-2", article_id="no-such-article", action="label", label="sport")
    assert r.status_code == 404 and "'no-such-article'" in r.json()["detail"]
    r = client.post("/api/answers", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    last = before[-1]  # the same answer_id again with another label: not a retry, a conflict
    other = next(lab for lab in LABELS if lab != last.label)
    r = _post(client, answer_id=last.answer_id, article_id=last.article_id, action="label", label=other)
    assert r.status_code == 409 and "already stored" in r.json()["detail"]
    assert store.answers() == before
    assert client.get("/api/state").json()["item"]["article_id"] == aid


# In the default set: two days of ingestion and two retrains in worker processes took 5 min 19 s
# on 2 quiet cores (over 30 min on busy ones, hence the generous timeout).
@pytest.mark.timeout(3600)
def test_first_retrain_on_silver_then_labels_through_the_page_make_the_next_one_gold(
    bbc_rows, tmp_path: Path, newsml_home: Path, monkeypatch: pytest.MonkeyPatch, label_page
) -> None:
    stories = _stories(bbc_rows, per_day=PER_DAY)
    truth: dict[str, str] = {}
    with NewsSite(stories, feed_size=400) as site:
        truth = {site.article_url(s.id): s.section for s in stories}
        cfg = newsroom_config(
            tmp_path / "config.yaml",
            site,
            base_model=make_tiny_classifier_dir(tmp_path, LABELS),
            gate={"min_test_rows": 15},
            splits={"val_fraction": 0.2, "test_fraction": 0.2},
            review={"daily_budget": PER_DAY},  # every story can be labelled on the page
            serving={"precision": "fp32"},  # no ONNX export: this test is about labels, not serving files
        )
        monkeypatch.setenv("NEWSML_CONFIG", str(cfg))
        settings = Settings.from_env()
        assert settings.home == newsml_home and settings.config.gate.evaluation == "auto"
        (tmp_path / "dagster").mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
            ingest = build_definitions(settings).resolve_job_def("ingest_job")
            for day in DAYS:
                site.now = datetime(day.year, day.month, day.day, 23, 59, tzinfo=UTC)
                res = ingest.execute_in_process(
                    partition_key=day.isoformat(), instance=instance, tags={AS_OF_TAG: site.now.isoformat()}
                )
                assert res.success
            as_of = site.now
            assert not (newsml_home / "feedback").exists()  # no hand-written file, no labelled source
            wh = Warehouse(settings.warehouse_path)
            assert wh.read("raw_articles")["gold_label"].null_count() == wh.read("raw_articles").height

            first = _retrain(instance, as_of)
            assert first["multiprocess"]  # each step ran in its own worker process
            assert first["splits"]["evaluation_kind"].value == "silver"
            assert first["evaluation"]["evaluation_kind"].value == "silver" and first["gate_kind"] == "silver"
            assert first["deployed"] == first["gate_passed"]  # deployed, or blocked with its reasons

            # A person labels the review queue through the page, the way the UI posts answers.
            url = label_page()
            store = FeedbackStore(store_path(settings.feedback_dir))
            labelled: dict[str, str] = {}
            with httpx.Client(base_url=url, timeout=30) as client:
                state = client.get("/api/state").json()
                assert state["queue_ready"] and state["item"] is not None
                assert all(p["needed"] > 0 for p in state["progress"])  # gold is short at the start
                while state["item"] is not None:
                    item = state["item"]
                    answer = {
                        "answer_id": str(uuid.uuid4()),
                        "article_id": item["article_id"],
                        "action": "label",
                        "label": truth[item["url"]],
                    }
                    r = _post(client, **answer)
                    assert r.status_code == 200 and r.json()["status"] == "recorded", r.text
                    if not labelled:  # a double submit (a retry) is stored once
                        again = _post(client, **answer)
                        assert again.status_code == 200 and again.json()["status"] == "already recorded"
                        assert again.json()["id"] == r.json()["id"]
                    labelled[item["article_id"]] = answer["label"]
                    state = client.get("/api/state").json()
                    if len(labelled) == 3:  # with answers stored, bad ones must cost none of them
                        _refusals_lose_nothing(client, store, state["item"])
                assert "Nothing left to label" in state["message"]
                assert all(p["needed"] == 0 for p in state["progress"]), state["progress"]
            stored = dict(store.current_labels().select("article_id", "label").iter_rows())
            assert stored == labelled and len(store.answers()) == len(labelled)

            second = _retrain(instance, as_of)
    assert second["multiprocess"]
    assert second["splits"]["evaluation_kind"].value == "gold"
    test = wh.query(
        "SELECT label_source, evaluation_kind, article_id, label FROM dataset_splits WHERE split = 'test'"
    )
    assert set(test["label_source"]) == {"gold"} and set(test["evaluation_kind"]) == {"gold"}
    assert all(labelled[a] == lab for a, lab in test.select("article_id", "label").iter_rows())
    assert second["evaluation"]["evaluation_kind"].value == "gold" and second["gate_kind"] == "gold"
    assert second["deployed"] == second["gate_passed"]
    fb = wh.read("label_feedback")
    assert fb.height == len(labelled) and set(fb["label_origin"]) == {"feedback"}

    client = store_client(settings.mlflow_tracking_uri())
    name = settings.config.mlflow.registered_model
    assert [client.get_model_version(name, v).tags["newsml.evaluation"] for v in ("1", "2")] == [
        "silver",
        "gold",
    ]
    runs = client.search_runs(
        [client.get_experiment_by_name(settings.config.mlflow.experiment).experiment_id],
        filter_string="tags.`newsml.run_kind` = 'evaluation'",
        order_by=["attributes.start_time ASC"],
    )
    assert [r.data.tags["newsml.evaluation"] for r in runs] == ["silver", "gold"]
