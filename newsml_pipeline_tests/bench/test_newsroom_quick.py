"""bench/newsroom.py --quick, the CI-sized run of the simulated newsroom, meets its targets.

Three simulated days of feeds that roll, crawled, ingested, retrained and backfilled through a
persistent instance with the multiprocess executor: every published article stored once, none
lost by backfilling every day again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from newsml_pipeline_tests.conftest import corpora_dir

REPO = Path(__file__).resolve().parents[2]


def test_quick_newsroom_stores_every_article_once_and_a_backfill_loses_none(tmp_path: Path) -> None:
    corpora_dir()  # skips with a reason when ../shared is absent
    out = tmp_path / "newsroom.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "newsroom.py"),
            "--quick",
            "--home",
            str(tmp_path / "home"),
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["articles_published"] > 0
    assert r["articles_stored"] == r["articles_published"]
    assert r["duplicate_ids"] == 0
    assert r["rows_lost_after_backfill"] == 0 and r["rows_after_backfill"] >= r["rows_before_backfill"]
    assert r["failed_runs"].get("crawl_job", 0) == 0 and r["failed_runs"].get("ingest_job", 0) == 0
    assert r["mlflow_runs_per_training"] in ([], [1]) and r["mlflow_runs_per_evaluation"] in ([], [1])
    assert "articles stored" in done.stdout  # the table was printed
