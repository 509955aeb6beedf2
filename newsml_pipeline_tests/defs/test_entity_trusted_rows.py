"""Trusted entity rows through Dagster (issue 27 items 4 and 6): a local source's gold spans reach
entity_gold at ingestion, the day's contested sentences reach entity_review_queue, and neither a
source's gold nor a page answer ever reaches the rows entity_candidate trains on."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.entities.review import QUEUE_TABLE
from newsml_pipeline.core.entities.trusted import GOLD_TABLE, TRUSTED_SPLIT
from newsml_pipeline.core.labeling.feedback_store import store_path
from newsml_pipeline.core.labeling.span_store import SpanStore
from newsml_pipeline.definitions import build_definitions
from newsml_pipeline.defs.entities import training_rows, trusted_sentences
from newsml_pipeline.defs.resources import NewsmlSettings
from newsml_pipeline_tests.defs.test_entities_chain import ENTITIES as CHAIN_ENTITIES

DAY = "2026-11-20"
ENTITIES = {**CHAIN_ENTITIES, "review_per_day": 5}  # the chain test's types
GOLD_TEXT = "Angela Merkel met Emmanuel Macron in Paris on Monday, Reuters reported."
PLAIN = [
    "Shares in Tesco rose after the BBC reported strong sales in London.",
    "Rishi Sunak visited Leeds and spoke to workers at a Siemens plant.",
    "Reuters said the Bank of England kept interest rates unchanged in March.",
    "Fans in Manchester cheered as United beat Chelsea at Old Trafford.",
    "Apple opened a new office in Dublin, the company said on Tuesday.",
    "Heavy rain caused floods across Cornwall and parts of Devon overnight.",
]


def _inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    gold_ents = [
        {"start": 0, "end": 13, "label": "PER"},
        {"start": 18, "end": 34, "label": "PER"},
        {"start": 38, "end": 43, "label": "LOC"},
        {"start": 56, "end": 63, "label": "NEWS_ORG"},
    ]
    recs = [{"id": "gold-1", "title": None, "text": GOLD_TEXT, "published": DAY, "entities": gold_ents}]
    recs += [{"id": f"p{i}", "title": None, "text": t, "published": DAY} for i, t in enumerate(PLAIN)]
    (folder / "news.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return folder


def _run(defs: dg.Definitions, instance: dg.DagsterInstance, keys: list[str], partition: str | None) -> None:
    job = defs.resolve_implicit_global_asset_job_def()
    selection = {dg.AssetKey(k) for k in keys}
    result = job.get_subset(asset_selection=selection).execute_in_process(
        instance=instance, partition_key=partition
    )
    assert result.success


def test_source_gold_and_page_answers_are_evaluated_never_trained(make_settings, tmp_path: Path) -> None:
    src = {"name": "inbox", "kind": "local", "path": str(_inbox(tmp_path))}
    settings = make_settings(entities=ENTITIES, sources=[src])
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    _run(defs, instance, ["crawled_articles", "raw_articles"], DAY)
    wh = Warehouse(settings.warehouse_path)
    gold = wh.read(GOLD_TABLE)
    assert gold["text"].to_list() == [GOLD_TEXT]
    gold_id = gold["article_id"][0]
    _run(defs, instance, ["entity_labels", "entity_review_queue"], DAY)
    queue = wh.read(QUEUE_TABLE).sort("rank")
    assert 0 < len(queue) <= 5 and queue["disagreement"].to_list() == sorted(
        queue["disagreement"], reverse=True
    )
    # a person corrects a queued sentence of a plain article on the page
    page_row = queue.filter(queue["article_id"] != gold_id).row(0, named=True)
    SpanStore(store_path(settings.feedback_dir)).record_spans(
        answer_id="a1", article_id=page_row["article_id"], sentence=page_row["sentence"], action="spans",
        labeller="ann", text=page_row["text"], spans=[],
    )  # fmt: skip
    _run(defs, instance, ["entity_splits"], None)
    splits = dict(wh.read("entity_splits").iter_rows())
    assert splits[gold_id] == TRUSTED_SPLIT and splits[page_row["article_id"]] == TRUSTED_SPLIT
    newsml = NewsmlSettings.from_settings(settings)
    trusted = trusted_sentences(newsml, wh)
    assert trusted.per_origin == {"files": 0, "source": 1, "page": 1}
    # the rows entity_candidate trains on: no trusted article, text or span
    train, _held, _dropped = training_rows(newsml, wh)
    assert not {gold_id, page_row["article_id"]} & set(train["article_id"].to_list())
    assert not any(GOLD_TEXT in t or t in GOLD_TEXT for t in train["text"].to_list())
    labelled = wh.read("entity_labels")
    assert set(labelled["article_id"].to_list()) >= {gold_id}  # auto-labelled like any article ...
    assert "gold" not in " ".join(labelled.columns)  # ... but its gold spans are nowhere in that table
