"""The production topology on one machine (see topology.py): concurrent runs through the daemon's
queue, the Dagster instance and the warehouse on Postgres, MLflow as a tracking server.

CI-sized: three ingestion runs at once (two days, and the first day again), checked for lost or
duplicated rows. Slow: a day ingested first, then two days of ingestion and a retrain at once;
the retrain logs one MLflow training run to the tracking server, moves the champion alias there,
and `newsml serve` answers from that champion.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest

from newsml_pipeline.core.data.articles import content_hash
from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.registry.tracking import store_client
from newsml_pipeline_tests.conftest import REPO_ROOT
from newsml_pipeline_tests.defs.conftest import write_config
from newsml_pipeline_tests.e2e.topology import Topology, free_port
from testkit.tiny_models import make_tiny_classifier_dir

LABELS = ["business", "entertainment", "politics", "sport", "tech"]
D1, D2, D3 = "2026-11-18", "2026-11-19", "2026-11-20"


def _inbox(tmp_path: Path, bbc_rows: list[dict], per_class: dict[str, int]) -> dict[str, set[str]]:
    """BBC articles (distinct texts) dated per day, `per_class[day]` of each topic; day -> their
    content hashes (the article ids are the store's own, derived from source and id)."""
    pool: dict[str, list[dict]] = {lab: [] for lab in LABELS}
    seen_texts: set[str] = set()
    for r in bbc_rows:
        if r.get("duplicate_of") or r["text"] in seen_texts:
            continue
        seen_texts.add(r["text"])
        pool[r["label"]].append(r)
    folder = tmp_path / "inbox"
    folder.mkdir()
    ids: dict[str, set[str]] = {}
    with open(folder / "articles.jsonl", "w", encoding="utf-8") as fh:
        for day, n in per_class.items():
            ids[day] = set()
            for lab in LABELS:
                for i, r in enumerate(pool[lab][:n]):
                    rec = {
                        "id": r["id"],
                        "title": r["title"],
                        "text": r["text"],
                        "label": r["label"],
                        "published": f"{day}T{8 + i % 10:02d}:00:00+00:00",
                    }
                    fh.write(json.dumps(rec) + "\n")
                    ids[day].add(content_hash(r["text"]))
                pool[lab] = pool[lab][n:]
    return {"folder": folder, **ids}


def _newsml_env(tmp_path: Path, inbox: Path, **overrides) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    cfg = write_config(
        tmp_path / "config.yaml",
        sources=[{"name": "inbox", "kind": "local", "path": str(inbox)}],
        partitions={"start_date": "2026-11-01"},
        **overrides,
    )
    return {"NEWSML_HOME": str(home), "NEWSML_CONFIG": str(cfg)}


def _overlap(instance_runs: list) -> bool:
    """True when every run was in progress at one moment (latest start before earliest end)."""
    return max(r.start_time for r in instance_runs) < min(r.end_time for r in instance_runs)


@contextlib.contextmanager
def _instance(topo: Topology, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """The topology's Dagster instance (its Postgres storage), as a service process loads it."""
    from dagster import DagsterInstance

    for k in ("DAGSTER_HOME", "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB", "DAGSTER_PG_USERNAME",
              "DAGSTER_PG_PASSWORD"):  # fmt: skip
        monkeypatch.setenv(k, topo.env[k])
    with DagsterInstance.get() as instance:
        yield instance


def _run_records(topo: Topology, run_ids: list[str], monkeypatch: pytest.MonkeyPatch) -> list:
    with _instance(topo, monkeypatch) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        return [instance.get_run_record_by_id(r) for r in run_ids]


def _event_times(topo: Topology, run_ids: list[str], event: str, monkeypatch: pytest.MonkeyPatch) -> list:
    """Timestamp of each run's first `event` (a DagsterEventType name) in the instance's event log."""
    from dagster import DagsterEventType

    with _instance(topo, monkeypatch) as instance:
        return [instance.all_logs(r, of_type=DagsterEventType[event])[0].timestamp for r in run_ids]


def _step_spans(topo: Topology, run_ids: list[str], step: str, monkeypatch: pytest.MonkeyPatch) -> list:
    """(start, end) timestamps of `step` in each run, from the instance's event log."""
    from dagster import DagsterEventType

    spans = []
    with _instance(topo, monkeypatch) as instance:
        for run_id in run_ids:
            events = instance.all_logs(
                run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}
            )
            times = {e.dagster_event.event_type: e.timestamp for e in events if e.step_key == step}
            spans.append((times[DagsterEventType.STEP_START], times[DagsterEventType.STEP_SUCCESS]))
    return spans


def _check_days(
    wh: Warehouse,
    ids: dict[str, set[str]],
    days: list[str],
    tables: tuple[str, ...] = ("raw_articles", "labeled_articles", "scored_articles"),
) -> None:
    """Each day's partition holds exactly that day's articles (by text), once, in every table."""
    raw = wh.query(
        "SELECT article_id, content_hash, CAST(partition_date AS VARCHAR) AS day FROM raw_articles"
    )
    assert raw["article_id"].n_unique() == raw.height, "raw_articles: duplicated rows"
    for day in days:
        got = raw.filter(pl.col("day") == day)
        assert sorted(got["content_hash"]) == sorted(ids[day]), f"raw_articles {day}: {got.height} rows"
    for table in tables[1:]:
        df = wh.query(f"SELECT article_id, CAST(partition_date AS VARCHAR) AS day FROM {table}")
        assert df["article_id"].n_unique() == df.height, f"{table}: duplicated rows"
        for day in days:
            want = raw.filter(pl.col("day") == day)["article_id"].sort().to_list()
            assert df.filter(pl.col("day") == day)["article_id"].sort().to_list() == want, f"{table} {day}"
    stored = wh.query("SELECT count(*) AS n FROM crawled_articles")["n"].item()
    assert stored == sum(len(v) for k, v in ids.items() if k != "folder")


@pytest.fixture
def topology(tmp_path: Path, postgres_server):
    topos: list[Topology] = []

    def make(
        newsml_env: dict[str, str], *, mlflow: bool, daemon: bool = True, pool_run_buffer: int | None = None
    ) -> Topology:
        topo = Topology(
            tmp_path / "services",
            postgres_server,
            newsml_env=newsml_env,
            mlflow=mlflow,
            pool_run_buffer=pool_run_buffer,
        )
        topos.append(topo)
        return topo.start(daemon=daemon)

    (tmp_path / "services").mkdir()
    yield make
    for t in topos:
        t.stop()


# In the default set (CI-sized): 115 s on 2 quiet cores, most of it the services coming up.
@pytest.mark.timeout(1800)
def test_three_ingestion_runs_at_once_through_the_daemon_lose_nothing(
    tmp_path: Path, bbc_rows: list[dict], topology, monkeypatch
) -> None:
    ids = _inbox(tmp_path, bbc_rows, {D2: 2, D3: 2})
    # With Dagster's default (op_granularity_run_buffer 0) the daemon may hold a run queued while
    # its first step's pool (raw_articles: `ingestion`, one slot) is full, once it knows that
    # pool's limit. A buffer of 2 lets it launch all three on its first tick whatever it knows;
    # they then wait for the one writer slot inside the run, the harder case for the store.
    topo = topology(_newsml_env(tmp_path, ids["folder"]), mlflow=False, daemon=False, pool_run_buffer=2)
    runs = [topo.submit("ingest_job", partition=d, assets=["raw_articles"]) for d in (D2, D3, D2)]
    assert set(topo.run_status(runs).values()) == {"QUEUED"}
    topo.start_daemon()
    status = topo.wait_runs(runs, timeout=1200)
    assert set(status.values()) == {"SUCCESS"}, (status, topo.tail("daemon"), topo.tail("code-server"))
    records = _run_records(topo, runs, monkeypatch)
    # In flight at once: the daemon launched all three before any had finished (launched = its
    # RUN_STARTING event; a run worker's own start can lag on 2 busy cores while the first run,
    # holding the slot, finishes).
    launched = _event_times(topo, runs, "RUN_STARTING", monkeypatch)
    ended = [r.end_time for r in records]
    assert max(launched) < min(ended), ("the three runs were not in flight at once", launched, ended)
    # ... and the pool kept their writes apart: no two raw_articles steps ran at once.
    steps = sorted(_step_spans(topo, runs, "raw_articles", monkeypatch))
    assert len(steps) == 3, steps
    assert all(end <= nxt_start for (_, end), (nxt_start, _) in zip(steps, steps[1:], strict=False)), steps
    wh = Warehouse(topo.env["NEWSML_WAREHOUSE_URL"])
    assert wh.dialect == "postgres"
    _check_days(wh, ids, [D2, D3], tables=("raw_articles",))


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_ingestion_and_retrain_at_once_on_postgres_and_the_mlflow_server(
    tmp_path: Path, bbc_rows: list[dict], topology, monkeypatch
) -> None:
    ids = _inbox(tmp_path, bbc_rows, {D1: 20, D2: 4, D3: 4})
    tiny = make_tiny_classifier_dir(tmp_path, LABELS)
    env = _newsml_env(
        tmp_path,
        ids["folder"],
        training={"base_model": str(tiny), "epochs": 1, "batch_size": 16, "max_length": 64},
        splits={
            "min_per_class_eval": 1,
            "min_per_class_train": 2,
            "drop_label_issues": False,
            "window_days": None,
        },
        gate={"evaluation": "gold", "min_test_rows": 5, "min_gain_over_baseline": -1.0, "min_class_f1": 0.0},
    )
    topo = topology(env, mlflow=True)
    first = topo.submit("ingest_job", partition=D1)
    assert topo.wait_runs([first], timeout=600) == {first: "SUCCESS"}, topo.tail("code-server")
    runs = [
        topo.submit("ingest_job", partition=D2),
        topo.submit("ingest_job", partition=D3),
        topo.submit("retrain_job"),
    ]
    status = topo.wait_runs(runs, timeout=2400)
    assert set(status.values()) == {"SUCCESS"}, (status, topo.tail("daemon"), topo.tail("code-server"))
    assert _overlap(_run_records(topo, runs, monkeypatch)), "ingestion and retrain did not run at once"
    wh = Warehouse(topo.env["NEWSML_WAREHOUSE_URL"])
    _check_days(wh, ids, [D1, D2, D3])

    client = store_client(topo.mlflow_url)
    exp = client.get_experiment_by_name("newsml")
    retrain = runs[2]
    tagged = client.search_runs([exp.experiment_id], filter_string=f"tags.dagster_run_id = '{retrain}'")
    training = [r for r in tagged if r.data.tags.get("newsml.run_kind") != "evaluation"]
    assert len(training) == 1, [r.data.tags for r in tagged]
    assert exp.artifact_location.startswith("mlflow-artifacts:"), exp.artifact_location  # served artifacts
    name = "newsml-topic-classifier"
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.run_id == training[0].info.run_id

    port = free_port()
    serve = subprocess.Popen(
        [str(Path(sys.executable).parent / "newsml"), "serve", "--port", str(port)],
        cwd=REPO_ROOT, env=topo.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        health = None
        while time.monotonic() < deadline and serve.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert health is not None, serve.stdout.read() if serve.poll() is not None else "no answer"
        assert str(health["model_version"]) == str(champion.version)
        r = httpx.post(
            f"http://127.0.0.1:{port}/classify",
            json={"title": "Shares rally", "text": "Markets rose as profits beat forecasts."},
            timeout=60,
        )
        assert r.status_code == 200 and r.json()["label"] in LABELS
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(30)
