"""`newsml run`: the README's main command runs ingest_job into a persistent Dagster instance."""

from __future__ import annotations

import io
import json
from pathlib import Path

import dagster as dg
import pytest

from newsml_pipeline.runner import run_pipeline


def test_newsml_run_records_the_run_in_dagster_home(
    make_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    rows = [
        {"title": "Cup win", "text": "The team won the cup final. " * 30, "published": "2026-11-20"},
        {
            "title": "Profit up",
            "text": "The company said profit and shares rose. " * 30,
            "published": "2026-11-20",
        },
    ]
    (inbox / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    settings = make_settings(
        sources=[
            {"name": "inbox", "kind": "local", "path": str(inbox)},
            {"name": "dead", "kind": "rss", "url": "http://127.0.0.1:9/feed.xml"},
        ],
        crawl={"allow_private_hosts": True, "timeout_s": 1, "retries": 0},
    )
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    out = io.StringIO()
    assert run_pipeline(day="2026-11-20", settings=settings, out=out)
    text = out.getvalue()
    assert "materialized raw_articles 2026-11-20 2 rows" in text
    assert "1 source error(s)" in text  # the dead feed is reported, the inbox still loads
    assert "ingest_job: success" in text
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert [r.job_name for r in runs] == ["ingest_job"]
        assert runs[0].tags.get("dagster/partition") == "2026-11-20"
