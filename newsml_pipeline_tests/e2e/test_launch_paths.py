"""Runs launched the way users launch them finish, and cancelling one leaves no process behind.

`dagster asset materialize` (like `dagster dev`, the daemon and backfills) runs each step in its
own process with the multiprocess executor. These tests drive the real CLI on a day large enough
for the labeller to start its spaCy worker, so a worker nobody stops would hang the step at exit.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline_tests.conftest import read_jsonl_gz
from newsml_pipeline_tests.dagster_cli import materialize_cmd
from newsml_pipeline_tests.defs.conftest import write_config

REPO = Path(__file__).resolve().parents[2]
DAY = "2026-11-18"
N_ARTICLES = 40
WORKER_MIN = 20  # below N_ARTICLES: the step labels in the spaCy worker


@pytest.fixture
def big_day(corpora: Path, tmp_path: Path, newsml_home: Path) -> dict[str, str]:
    rows = [
        r
        for r in read_jsonl_gz(corpora / "bbc_news" / "bbc_news.jsonl.gz", limit=400)
        if not r["duplicate_of"]
    ][:N_ARTICLES]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with gzip.open(inbox / "day.jsonl.gz", "wt", encoding="utf-8") as fh:
        for i, r in enumerate(rows):
            published = f"{DAY}T{8 + i % 12:02d}:00:00+00:00"
            fh.write(
                json.dumps({"id": r["id"], "title": r["title"], "text": r["text"], "published": published})
            )
            fh.write("\n")
    base = yaml_labels()
    cfg = write_config(
        tmp_path / "config.yaml",
        sources=[{"name": "inbox", "kind": "local", "path": str(inbox)}],
        partitions={"start_date": "2026-11-01"},
        labels={**base, "spacy_worker_min_articles": WORKER_MIN},
    )
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    # the project's loggers in the run's event log, as the repo's dagster.yaml has them
    (dagster_home / "dagster.yaml").write_text(
        "python_logs:\n  managed_python_loggers: [newsml_pipeline]\n  python_log_level: INFO\n"
        "telemetry:\n  enabled: false\n"
    )
    return {
        **os.environ,
        "NEWSML_HOME": str(newsml_home),
        "NEWSML_CONFIG": str(cfg),
        "DAGSTER_HOME": str(dagster_home),
        "HF_HUB_OFFLINE": "1",
    }


def yaml_labels() -> dict:
    import yaml

    from newsml_pipeline.settings import DEFAULT_CONFIG_PATH

    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())["labels"]


def _cmd() -> list[str]:
    return materialize_cmd("raw_articles,labeled_articles", partition=DAY)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_materialize_with_the_spacy_worker_finishes(big_day: dict[str, str], newsml_home: Path) -> None:
    """On the old module-global worker this never returned: the step process waited at exit."""
    done = subprocess.run(_cmd(), cwd=REPO, env=big_day, capture_output=True, text=True, timeout=420)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "started the spaCy worker process" in out  # the batch really went through the worker
    assert "stopped the spaCy worker process" in out
    labeled = Warehouse(newsml_home / "warehouse.duckdb").read("labeled_articles")
    assert len(labeled) == N_ARTICLES


def test_cancelling_a_run_leaves_no_orphan_process(big_day: dict[str, str]) -> None:
    """Ctrl-C on `dagster asset materialize` while the spaCy worker runs: every process the run
    started (step processes, the worker) is gone soon after the command exits."""
    proc = subprocess.Popen(
        _cmd(), cwd=REPO, env=big_day, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    cli = psutil.Process(proc.pid)
    seen: dict[int, psutil.Process] = {}
    worker_seen = False
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None and not worker_seen:
            for child in cli.children(recursive=True):
                seen.setdefault(child.pid, child)
                try:
                    cmd = " ".join(child.cmdline())
                except psutil.Error:
                    continue
                # the spaCy worker: a spawned grandchild of the CLI (child of the step process)
                if "multiprocessing" in cmd and child.ppid() != cli.pid:
                    worker_seen = True
            time.sleep(0.2)
        assert worker_seen, "the step never started its spaCy worker"
        time.sleep(1.0)  # let the worker take its job
        for child in cli.children(recursive=True):
            seen.setdefault(child.pid, child)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the command
        proc.wait(timeout=120)
        gone_by = time.monotonic() + 30
        while time.monotonic() < gone_by and any(_alive(p) for p in seen.values()):
            time.sleep(0.2)
        orphans = [p.pid for p in seen.values() if _alive(p)]
        assert orphans == [], f"processes left behind by the cancelled run: {orphans}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in seen.values():
            if _alive(p):
                p.kill()
