"""The shipped schema on feeds with no labelled source: retrain_job reaches a gate verdict on silver.

Before silver evaluation, retrain_job stopped in dataset_splits (no trusted labels for val/test)
for every user without a labelling project. Here two days of a simulated newsroom (BBC stories,
no gold anywhere, no feedback file) are ingested and retrained: the splits say "silver", the
candidate is evaluated on held-out silver rows, the gate decides, and MLflow and Dagster say so.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.registry.tracking import store_client
from newsml_pipeline.definitions import build_definitions
from newsml_pipeline.defs.clock import AS_OF_TAG
from newsml_pipeline.newsroom import NewsSite, Story
from newsml_pipeline.settings import Settings
from newsml_pipeline_tests.defs.conftest import write_config
from testkit.tiny_models import make_tiny_classifier_dir

DAYS = [date(2026, 11, 16), date(2026, 11, 17)]
PER_DAY = 130


def _stories(bbc_rows: list[dict], per_day: int = PER_DAY) -> list[Story]:
    by_label: dict[str, list[dict]] = {}
    for r in bbc_rows:
        if not r["duplicate_of"]:
            by_label.setdefault(r["label"], []).append(r)
    per_class = per_day * len(DAYS) // len(by_label)
    # interleaved over the five sections, so both days carry every topic
    rows = [r for group in zip(*(v[:per_class] for v in by_label.values()), strict=False) for r in group]
    out = []
    for i, r in enumerate(rows):
        day = DAYS[i // per_day]
        out.append(
            Story(
                id=f"bbc-{r['id']}",
                title=r["title"],
                text=r["text"],
                section=r["label"],  # one feed per BBC section, like the shipped config's feeds
                published=datetime(day.year, day.month, day.day, tzinfo=UTC)
                + timedelta(minutes=10 * (i % per_day)),
            )
        )
    return out


def newsroom_config(path: Path, site: NewsSite, *, base_model: Path, **overrides: Any) -> Path:
    """The shipped config over the newsroom's section feeds (no labelled source), a tiny model."""
    return write_config(
        path,
        sources=[{"name": f"feed-{s}", "kind": "rss", "url": site.feed_url(s)} for s in site.sections],
        partitions={"start_date": "2026-11-01"},
        crawl={
            "allow_private_hosts": True,
            "per_host_rps": 1000.0,
            "retries": 0,
            "timeout_s": 5,
            "extract_workers": 1,
        },
        training={"base_model": str(base_model), "epochs": 1, "batch_size": 32},
        **overrides,
    )


# slow (~1 min): the default set proves the same on the multiprocess path: e2e/test_loop_closes.py's
# first retrain is on silver with no labelled source (evaluation kind, test rows, MLflow tags).
@pytest.mark.slow
def test_retrain_reaches_a_verdict_on_silver_with_no_labelled_source(
    bbc_rows, tmp_path: Path, newsml_home: Path
) -> None:
    stories = _stories(bbc_rows)
    with NewsSite(stories, feed_size=400) as site:
        labels = ["business", "entertainment", "politics", "sport", "tech"]
        cfg = newsroom_config(
            tmp_path / "config.yaml",
            site,
            base_model=make_tiny_classifier_dir(tmp_path, labels),
            gate={"min_test_rows": 20},
        )
        settings = Settings(home=newsml_home, config_file=cfg)
        assert not settings.config.gate.evaluation == "gold"  # the shipped default: auto
        defs = build_definitions(settings)
        instance = dg.DagsterInstance.ephemeral()
        ingest = defs.resolve_job_def("ingest_job")
        for day in DAYS:
            site.now = datetime(day.year, day.month, day.day, 23, 59, tzinfo=UTC)
            res = ingest.execute_in_process(
                partition_key=day.isoformat(), instance=instance, tags={AS_OF_TAG: site.now.isoformat()}
            )
            assert res.success
        wh = Warehouse(settings.warehouse_path)
        # before any deployment the scored stream is the auto-labeller's own answers for the day
        both = wh.read("scored_articles").join(wh.read("labeled_articles"), on="article_id", suffix="_auto")
        assert set(both["model_version"]) == {"auto-labeler"}
        assert both["label"].null_count() == 0  # where the labeller abstained the stand-in still answers
        assert both.filter(pl.col("label") != pl.col("label_auto")).is_empty()
        queue = wh.read("review_queue")  # ingest_job also queued the articles worth a label
        budget = settings.config.review.daily_budget
        assert 0 < queue.height <= budget * len(DAYS)
        assert queue.group_by("partition_date").len()["len"].max() <= budget
        assert queue["article_id"].n_unique() == queue.height
        assert wh.read("raw_articles")["gold_label"].null_count() == len(
            wh.read("raw_articles")
        )  # no gold at all
        assert not (newsml_home / "feedback").exists()  # and no hand-written file

        retrain = defs.resolve_job_def("retrain_job").execute_in_process(
            instance=instance, raise_on_error=False, tags={AS_OF_TAG: site.now.isoformat()}
        )
    splits_meta = retrain.asset_materializations_for_node("dataset_splits")[0].metadata
    assert splits_meta["evaluation_kind"].value == "silver"
    assert "gold" in splits_meta["why_silver"].value
    test = wh.query("SELECT label_source, evaluation_kind FROM dataset_splits WHERE split = 'test'")
    assert set(test["label_source"]) == {"silver"} and set(test["evaluation_kind"]) == {"silver"}

    evaluation = retrain.asset_materializations_for_node("model_evaluation")[0].metadata
    assert evaluation["evaluation_kind"].value == "silver"
    checks = [e for e in retrain.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    gate = next(
        e.event_specific_data for e in checks if e.event_specific_data.check_name == "evaluation_gate"
    )
    assert gate.metadata["evaluation_kind"].value == "silver"
    deployed = bool(retrain.asset_materializations_for_node("deployed_model"))
    assert deployed == gate.passed  # a verdict either way: deployed, or blocked with its reasons

    client = store_client(settings.mlflow_tracking_uri())
    version = client.get_model_version(settings.config.mlflow.registered_model, "1")
    assert version.tags["newsml.evaluation"] == "silver"
    runs = client.search_runs(
        [client.get_experiment_by_name(settings.config.mlflow.experiment).experiment_id],
        filter_string="tags.`newsml.run_kind` = 'evaluation'",
    )
    assert [r.data.tags["newsml.evaluation"] for r in runs] == ["silver"]
