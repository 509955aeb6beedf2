"""A 3-day backfill of dated real articles (Reuters-21578, 1987) from the CLI: one run, idempotent."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline_tests.conftest import read_jsonl_gz
from newsml_pipeline_tests.dagster_cli import materialize
from newsml_pipeline_tests.defs.conftest import write_config

REPO = Path(__file__).resolve().parents[2]
DAYS = ["1987-03-02", "1987-03-03", "1987-03-04"]


@pytest.fixture
def reuters_inbox(corpora: Path, tmp_path: Path) -> tuple[Path, Counter]:
    """25 stories per day for three days (plus one from the day before, which must stay out)."""
    per_day: Counter = Counter()
    folder = tmp_path / "inbox"
    folder.mkdir()
    with open(folder / "reuters.jsonl", "w", encoding="utf-8") as fh:
        for r in read_jsonl_gz(corpora / "reuters21578" / "reuters21578.jsonl.gz", limit=4000):
            day = (r.get("published") or "")[:10]
            if (
                day in DAYS + ["1987-03-01"]
                and per_day[day] < (25 if day in DAYS else 1)
                and len(r["text"]) > 300
            ):
                per_day[day] += 1
                fh.write(
                    json.dumps(
                        {
                            "id": r["id"],
                            "title": r["title"],
                            "text": r["text"],
                            "published": r["published"] + "+00:00",
                        }
                    )
                    + "\n"
                )
    return folder, per_day


def _materialize(env: dict) -> subprocess.CompletedProcess:
    return materialize("raw_articles,labeled_articles", env=env, partition_range=f"{DAYS[0]}...{DAYS[-1]}")


def test_three_day_backfill_from_the_cli_is_one_run_and_idempotent(
    reuters_inbox, newsml_home: Path, tmp_path: Path
) -> None:
    inbox, per_day = reuters_inbox
    cfg = write_config(
        tmp_path / "reuters.yaml",
        sources=[{"name": "reuters", "kind": "local", "path": str(inbox)}],
        partitions={"start_date": "1987-01-01"},
    )
    env = {
        **os.environ,
        "NEWSML_HOME": str(newsml_home),
        "NEWSML_CONFIG": str(cfg),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    (tmp_path / "dagster_home").mkdir()
    first = _materialize(env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    wh = Warehouse(newsml_home / "warehouse.duckdb")
    raw = wh.read("raw_articles")
    counts = dict(raw.group_by("partition_date").len().iter_rows())
    assert {d.isoformat(): n for d, n in counts.items()} == {d: per_day[d] for d in DAYS}
    labeled = wh.read("labeled_articles")
    assert set(labeled["article_id"].to_list()) == set(raw["article_id"].to_list())

    second = _materialize(env)
    assert second.returncode == 0, second.stderr[-3000:]
    again = wh.read("raw_articles")
    assert len(again) == len(raw) and again["article_id"].n_unique() == len(again)
    assert len(wh.read("labeled_articles")) == len(labeled)

    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / "dagster_home"))) as instance:
        runs = instance.get_runs()
        # labeled_articles' checks are per day: each day of the one-run backfill has its own result
        from newsml_pipeline.defs.labeling import LABEL_CHECKS

        for name in LABEL_CHECKS:
            key = dg.AssetCheckKey(dg.AssetKey("labeled_articles"), name)
            records = instance.event_log_storage.get_asset_check_execution_history(key, limit=50)
            done = {r.partition for r in records if r.status.value in ("SUCCEEDED", "FAILED")}
            assert set(DAYS) <= done, (name, done)
    assert len(runs) == 2  # one run per backfill command, not one per day
    assert pl.Series([r.status.value for r in runs]).to_list() == ["SUCCESS", "SUCCESS"]
