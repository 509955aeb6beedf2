"""Span conventions, strict span scores, gold readers and story-level splits of the entity task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsml_pipeline.core.entities.gold import GoldFormatError, read_gold, read_iob2
from newsml_pipeline.core.entities.metrics import span_scores
from newsml_pipeline.core.entities.spans import CharSpan, TokenSpan, apply_conventions, remove_overlaps
from newsml_pipeline.core.entities.splits import split_articles
from newsml_pipeline.entity_settings import SpanConventions


def test_conventions_trim_determiners_possessives_titles_brackets_and_lowercase_edges() -> None:
    conv = SpanConventions(strip_leading=["the", "Ms"], strip_lowercase_edges=["LOC", "ORG"])
    words = [
        "the",
        "United",
        "States",
        "'s",
        "Ms",
        "Pugh",
        "east",
        "Delhi",
        "city",
        "Council",
        "(",
        "RECO",
        ")",
    ]
    assert apply_conventions(words, TokenSpan(0, 4, "LOC"), conv) == TokenSpan(1, 3, "LOC")
    assert apply_conventions(words, TokenSpan(4, 6, "PER"), conv) == TokenSpan(5, 6, "PER")
    assert apply_conventions(words, TokenSpan(6, 9, "LOC"), conv) == TokenSpan(7, 8, "LOC")
    assert apply_conventions(words, TokenSpan(9, 12, "ORG"), conv) == TokenSpan(9, 10, "ORG")
    # lowercase edges only for the listed types: a political role keeps its words
    assert apply_conventions(["finance", "minister"], TokenSpan(0, 2, "ROLE"), conv) == TokenSpan(
        0, 2, "ROLE"
    )
    assert apply_conventions(["the"], TokenSpan(0, 1, "LOC"), conv) is None
    # off: spans are kept as proposed
    off = SpanConventions(strip_leading=[], strip_possessive=False, split_at_brackets=False)
    assert apply_conventions(words, TokenSpan(0, 4, "LOC"), off) == TokenSpan(0, 4, "LOC")


def test_remove_overlaps_keeps_longest() -> None:
    spans = [TokenSpan(0, 1, "A"), TokenSpan(0, 3, "B"), TokenSpan(2, 4, "C"), TokenSpan(5, 6, "D")]
    assert remove_overlaps(spans) == [TokenSpan(0, 3, "B"), TokenSpan(5, 6, "D")]


def test_strict_span_scores_need_type_start_and_end() -> None:
    gold = [[CharSpan(0, 5, "PER"), CharSpan(10, 16, "LOC")], [CharSpan(0, 3, "ORG")]]
    pred = [[CharSpan(0, 5, "PER"), CharSpan(10, 15, "LOC")], [CharSpan(0, 3, "LOC"), CharSpan(4, 9, "DATE")]]
    s = span_scores(gold, pred, types=["PER", "ORG", "LOC"])
    assert s["per_type"]["PER"]["f1"] == 1.0
    assert s["per_type"]["LOC"]["f1"] == 0.0  # boundary off by one: no credit
    assert s["per_type"]["ORG"]["recall"] == 0.0  # right span, wrong type: no credit
    # micro: 1 tp of 3 predicted (DATE is not a scored type) and 3 gold
    assert s["micro"]["precision"] == pytest.approx(1 / 3) and s["micro"]["recall"] == pytest.approx(1 / 3)


def test_iob2_reader_offsets_into_the_text_line(tmp_path: Path) -> None:
    path = tmp_path / "g.iob2"
    path.write_text(
        "# sent_id = n1\n# text = In the United States, Kori Schulman wrote.\n"
        "1\tIn\tO\n2\tthe\tO\n3\tUnited\tB-LOC\n4\tStates\tI-LOC\n5\t,\tO\n6\tKori\tB-PER\n7\tSchulman\tI-PER\n"
        "8\twrote\tO\n9\t.\tO\n\n"
        "1\tParis\tI-LOC\n2\tand\tO\n3\tRome\tB-LOC\n4\tFC\tB-ORG\n",
        encoding="utf-8",
    )
    first, second = read_iob2(path)
    assert first.id == "n1"
    assert [(first.text[e.start : e.end], e.label) for e in first.entities] == [
        ("United States", "LOC"),
        ("Kori Schulman", "PER"),
    ]
    # no `# text`: tokens joined by spaces; a stray I- opens an entity; B- after B- splits
    assert second.text == "Paris and Rome FC"
    assert [(second.text[e.start : e.end], e.label) for e in second.entities] == [
        ("Paris", "LOC"),
        ("Rome", "LOC"),
        ("FC", "ORG"),
    ]
    bad = tmp_path / "bad.iob2"
    bad.write_text("1\tParis\tLOC\n", encoding="utf-8")
    with pytest.raises(GoldFormatError, match="bad.iob2:1"):
        read_iob2(bad)


def test_jsonl_gold_reader_checks_spans(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text(
        json.dumps({"id": "a", "text": "Obama spoke.", "entities": [{"start": 0, "end": 5, "label": "PER"}]})
        + "\n"
    )
    (s,) = read_gold(path)
    assert s.id == "a" and s.entities == [CharSpan(0, 5, "PER")]
    path.write_text(
        json.dumps({"text": "Obama", "entities": [{"start": 0, "end": 50, "label": "PER"}]}) + "\n"
    )
    with pytest.raises(GoldFormatError, match="outside the text"):
        read_gold(path)


def test_split_keeps_a_story_and_its_rerun_together() -> None:
    ids = [f"a{i}" for i in range(400)]
    # every odd article is a near-duplicate (re-run) of the even one before it
    dup = [None if i % 2 == 0 else f"a{i - 1}" for i in range(400)]
    split = split_articles(ids, near_duplicate_of=dup, salt="s", val_fraction=0.1, test_fraction=0.2)
    assert all(split[f"a{i}"] == split[f"a{i + 1}"] for i in range(0, 400, 2))
    assert {"train", "val", "test"} == set(split.values())
    # without the pointers the pairs scatter (so the assertion above is not a coincidence)
    loose = split_articles(ids, salt="s", val_fraction=0.1, test_fraction=0.2)
    assert any(loose[f"a{i}"] != loose[f"a{i + 1}"] for i in range(0, 400, 2))
