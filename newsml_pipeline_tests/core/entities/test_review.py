"""The entity review queue: sentences where the sources disagree most come first."""

from __future__ import annotations

import json
from pathlib import Path

from newsml_pipeline.core.entities.review import QUEUE_TABLE, disagreement
from newsml_pipeline.core.entities.spans import CharSpan
from newsml_pipeline_tests.entity_review_data import write_entity_queue


def test_disagreement_counts_contested_spans_and_abstained_tokens() -> None:
    text = "Angela Merkel met Reuters in Berlin."
    agree = {"pretrained": [CharSpan(0, 13, "PER")]}
    assert disagreement(text, agree, []) == (0.0, "the sources agree (a check)")
    # a rule source that does not fire abstains: the pretrained span alone is not contested
    assert disagreement(text, {**agree, "gazetteer": []}, [])[0] == 0.0
    split = {"pretrained": [CharSpan(18, 25, "ORG")], "gazetteer": [CharSpan(18, 25, "NEWS_ORG")]}
    score, why = disagreement(text, split, [(18, 25)])
    assert score == 3.0  # both spans contested + one abstained token
    assert (
        "pretrained: 'Reuters' ORG" in why and "gazetteer: 'Reuters' NEWS_ORG" in why and "abstained" in why
    )
    # boundaries: the pretrained NER says "not an entity" where a pattern found one
    score, why = disagreement(
        "The Bank of England", {"pretrained": [], "patterns": [CharSpan(4, 19, "ORG")]}, []
    )
    assert score == 1.0 and "patterns: 'Bank of England' ORG" in why


def test_queue_ranks_the_most_contested_sentence_first(tmp_path: Path) -> None:
    wh = write_entity_queue(tmp_path)
    q = wh.read(QUEUE_TABLE).sort("rank")
    assert q["article_id"].to_list() == ["a1", "a2", "a3"]
    assert q["disagreement"].to_list() == [3.0, 2.0, 0.0]
    assert json.loads(q["proposed"][0]) == [[0, 13, "PER"], [29, 35, "LOC"]]
