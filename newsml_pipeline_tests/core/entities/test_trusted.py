"""Trusted entity rows from a labelled source and from the page: read, stored, checked, and kept
out of training (issue 27 items 4 and 6)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from newsml_pipeline.core.crawl.sources import collect_articles
from newsml_pipeline.core.data.article_store import ArticleStore
from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.entities.gold import GoldFormatError, GoldSentence, parse_char_spans
from newsml_pipeline.core.entities.spans import CharSpan
from newsml_pipeline.core.entities.trusted import (
    TRUSTED_SPLIT,
    collect_trusted_sentences,
    drop_trusted,
    gold_rows,
    hold_out_trusted,
    read_source_gold,
    record_gold,
)
from newsml_pipeline.core.labeling.span_store import SpanStore
from newsml_pipeline.settings import CrawlConfig, LocalSource

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
TEXT = "Angela Merkel met Reuters in Berlin."


def _inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    recs = [
        {"id": "g1", "title": "Visit", "text": TEXT, "published": "2026-11-20",
         "entities": [{"start": 0, "end": 13, "label": "PER"}, {"start": 29, "end": 35, "label": "LOC"}]},
        {"id": "bad", "title": "Bad", "text": "Short.", "published": "2026-11-20",
         "entities": [{"start": 0, "end": 40, "label": "PER"}]},
        {"id": "plain", "title": "Plain", "text": "Nothing labelled here.", "published": "2026-11-20"},
    ]  # fmt: skip
    (folder / "news.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    (folder / "pud.iob2").write_text(
        "# sent_id = s1\n# text = Obama visited Paris.\n"
        "1\tObama\tB-PER\n2\tvisited\tO\n3\tParis\tB-LOC\n4\t.\tO\n\n",
        encoding="utf-8",
    )
    (folder / "broken.conll").write_text("1\tObama\tX-PER\n\n", encoding="utf-8")
    return folder


def _collect(folder: Path):
    src = LocalSource(name="inbox", kind="local", path=str(folder))
    return collect_articles([src], crawl_cfg=CrawlConfig(), state_dir=None, fetched_at=NOW)


def test_parse_char_spans_refuses_each_kind_of_bad_span_with_its_reason() -> None:
    types = ["PER", "LOC"]
    ok = parse_char_spans([{"start": 29, "end": 35, "label": "LOC"}, {"start": 0, "end": 6, "label": "PER"}],
                          TEXT, where="x", types=types)  # fmt: skip
    assert ok == [CharSpan(0, 6, "PER"), CharSpan(29, 35, "LOC")]
    cases = {
        "outside the text": [{"start": 30, "end": 99, "label": "LOC"}],
        "must be integers": [{"start": "0", "end": 5, "label": "PER"}],
        "is not {start, end, label}": [{"start": 0, "label": "PER"}],
        "unknown type 'ORG'": [{"start": 0, "end": 6, "label": "ORG"}],
        "non-empty label": [{"start": 0, "end": 6, "label": " "}],
        "spans overlap": [{"start": 0, "end": 13, "label": "PER"}, {"start": 7, "end": 13, "label": "PER"}],
        "must be a list": {"start": 0},
    }
    for why, raw in cases.items():
        with pytest.raises(GoldFormatError, match="where:7") as e:
            parse_char_spans(raw, TEXT, where="where:7", types=types, allow_overlap=False)
        assert why in str(e.value), (why, str(e.value))


def test_a_local_source_carries_gold_spans_into_the_gold_table_and_never_into_the_article_store(
    tmp_path: Path,
) -> None:
    batch, reports = _collect(_inbox(tmp_path))
    # the malformed record and the broken IOB2 file are refused and named; the rest is delivered
    errors = reports[0].errors
    assert len(errors) == 2 and any("news.jsonl:2" in e and "outside the text" in e for e in errors)
    assert any("broken.conll" in e and "not IOB2" in e for e in errors)
    assert sorted(batch["text"].to_list()) == sorted([TEXT, "Nothing labelled here.", "Obama visited Paris."])
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    ArticleStore(wh).record(batch)
    assert "gold_entities" not in wh.query("SELECT * FROM crawled_articles LIMIT 1").columns
    assert record_gold(wh, gold_rows(batch, recorded_at=NOW)) == 2
    gold = {s.text: s for s in read_source_gold(wh)}
    assert gold[TEXT].entities == [CharSpan(0, 13, "PER"), CharSpan(29, 35, "LOC")]
    assert gold["Obama visited Paris."].entities == [CharSpan(0, 5, "PER"), CharSpan(14, 19, "LOC")]
    # a re-read replaces an article's own row and touches no other
    again = batch.with_columns(
        pl.when(pl.col("text") == TEXT).then(pl.lit('[[0, 6, "PER"]]')).otherwise(pl.col("gold_entities"))
        .alias("gold_entities")
    )  # fmt: skip
    record_gold(wh, gold_rows(again, recorded_at=NOW))
    gold = {s.text: s.entities for s in read_source_gold(wh)}
    assert gold == {
        TEXT: [CharSpan(0, 6, "PER")],
        "Obama visited Paris.": [CharSpan(0, 5, "PER"), CharSpan(14, 19, "LOC")],
    }


def test_trusted_sentences_from_files_source_and_page_and_unknown_types_reported(tmp_path: Path) -> None:
    store = SpanStore(tmp_path / "labels.sqlite")
    store.record_spans(answer_id="a1", article_id="art1", sentence=2, action="spans", labeller="ann",
                       text="Reuters reported it.", spans=[CharSpan(0, 7, "NEWS_ORG")])  # fmt: skip
    store.record_spans(answer_id="a2", article_id="art2", sentence=0, action="skip", labeller="ann")
    files = [GoldSentence("f1", "Paris is big.", [CharSpan(0, 5, "LOC")])]
    source = [GoldSentence("art9", TEXT, [CharSpan(0, 13, "PER"), CharSpan(18, 25, "MISC")])]
    t = collect_trusted_sentences(
        files=files, source=source, page=store.current_spans(), types=["PER", "LOC", "NEWS_ORG"]
    )
    assert t.per_origin == {"files": 1, "source": 1, "page": 1}
    assert {s.id: s.entities for s in t.sentences} == {
        "f1": [CharSpan(0, 5, "LOC")],
        "art9": [CharSpan(0, 13, "PER")],
        "art1#2": [CharSpan(0, 7, "NEWS_ORG")],
    }
    assert t.article_ids == {"art9", "art1"}
    assert len(t.problems) == 1 and "'Reuters' [MISC]" in t.problems[0]


def test_gold_never_reaches_training_rows(tmp_path: Path) -> None:
    """The rule of item 6: a story with a trusted sentence (and its copies) is held out of the train
    split, and the last guard drops any training row of a trusted article or text."""
    split = {"g1": "train", "copy": "train", "n1": "train", "n2": "test"}
    held = hold_out_trusted(
        split,
        article_ids=["g1", "copy", "n1", "n2"],
        near_duplicate_of=[None, "g1", None, None],
        content_hashes=["h1", "h2", "h3", "h4"],
        trusted_ids={"g1"},
    )
    assert held == {"g1": TRUSTED_SPLIT, "copy": TRUSTED_SPLIT, "n1": "train", "n2": "test"}
    source = [GoldSentence("g1", TEXT, [CharSpan(0, 13, "PER")])]
    trusted = collect_trusted_sentences(files=[], source=source, page=[], types=["PER"])
    rows = pl.DataFrame(
        {
            "article_id": ["g1", "n1", "dup-elsewhere"],
            "text": ["Angela Merkel met Reuters.", "Another sentence.", TEXT],
            "entities": ['[[0, 13, "PER"]]', "[]", '[[0, 13, "PER"]]'],
        }
    )
    kept, dropped = drop_trusted(rows, trusted)
    assert kept["article_id"].to_list() == ["n1"] and dropped == 2
    gold_pairs = {(s.text, (e.start, e.end, e.label)) for s in trusted.sentences for e in s.entities}
    train_pairs = {
        (t, tuple(e)) for t, es in zip(kept["text"], kept["entities"], strict=True) for e in json.loads(es)
    }
    assert not gold_pairs & train_pairs
