"""Sources and the entity label model: votes per token, custom types beat the generic pretrained
mapping, disagreement abstains, and a real spaCy run labels a news sentence in the user's types."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from newsml_pipeline.core.entities.autolabel import autolabel
from newsml_pipeline.core.entities.label_model import label_docs, token_votes, weighted_vote
from newsml_pipeline.core.entities.model import load_pretrained
from newsml_pipeline.core.entities.sources import GAZETTEER, PATTERNS, PRETRAINED, SourceSpans
from newsml_pipeline.core.entities.spans import TokenSpan
from newsml_pipeline.core.labeling.schema import ABSTAIN
from newsml_pipeline.entity_settings import EntitiesConfig, EntityLabelModelConfig
from newsml_pipeline.settings import DEFAULT_CONFIG_PATH

TYPES = ["PER", "ORG", "NEWS_ORG", "ROLE"]
SOURCES = [PRETRAINED, GAZETTEER, PATTERNS]


def test_weighted_vote_weights_win_and_ties_abstain() -> None:
    votes = np.array([[1, 2, ABSTAIN], [1, 2, 3], [0, ABSTAIN, ABSTAIN], [ABSTAIN, ABSTAIN, ABSTAIN]])
    labels, conf = weighted_vote(votes, k=4, weights=np.array([1.0, 1.5, 1.5]))
    assert labels.tolist() == [2, ABSTAIN, 0, ABSTAIN]
    assert conf[0] == pytest.approx(0.6) and conf[2] == 1.0


def test_pretrained_abstains_where_a_rule_gives_a_custom_type() -> None:
    p = SourceSpans({PRETRAINED: [TokenSpan(0, 1, "ORG")], GAZETTEER: [TokenSpan(0, 1, "NEWS_ORG")]})
    votes = token_votes(3, p, SOURCES, TYPES, pretrained_types={"PER", "ORG"})
    assert votes[0].tolist() == [ABSTAIN, 3, ABSTAIN]
    assert votes[1].tolist() == [0, ABSTAIN, ABSTAIN]


def test_label_docs_decodes_spans_and_abstains_on_disagreement() -> None:
    docs = [
        # "Reuters said ..." : gazetteer NEWS_ORG over pretrained ORG
        SourceSpans(
            {PRETRAINED: [TokenSpan(0, 1, "ORG")], GAZETTEER: [TokenSpan(0, 1, "NEWS_ORG")], PATTERNS: []}
        ),
        # two adjacent PER entities stay two; gazetteer and pattern disagree on token 4 -> abstain
        SourceSpans(
            {
                PRETRAINED: [TokenSpan(0, 2, "PER"), TokenSpan(2, 3, "PER")],
                GAZETTEER: [TokenSpan(4, 5, "NEWS_ORG")],
                PATTERNS: [TokenSpan(4, 5, "ROLE")],
            }
        ),
    ]
    cfg = EntityLabelModelConfig()
    out, _ = label_docs([3, 6], docs, sources=SOURCES, types=TYPES, pretrained_types={"PER", "ORG"}, cfg=cfg)
    assert out[0].spans == [TokenSpan(0, 1, "NEWS_ORG")]
    assert out[1].spans == [TokenSpan(0, 2, "PER"), TokenSpan(2, 3, "PER")]
    assert out[1].abstained.tolist() == [False, False, False, False, True, False]
    assert out[1].abstain_share == pytest.approx(1 / 6)


def test_autolabel_a_news_sentence_with_the_shipped_config() -> None:
    raw = yaml.safe_load((DEFAULT_CONFIG_PATH.parent / "entities.yaml").read_text())["entities"]
    cfg = EntitiesConfig.model_validate(raw)
    text = "Markets were calm. Reuters reported on Monday that Prime Minister Boris Johnson visited the United States."
    sents, _ = autolabel(load_pretrained(), cfg, ["a1"], [text])
    first, s = sents
    # each sentence knows where it sits in the article (offsets map back to the article text)
    assert (first.sentence, s.sentence) == (0, 1)
    assert all(text[x.start : x.start + len(x.text)] == x.text for x in sents)
    got = {(s.text[e.start : e.end], e.label) for e in s.entities}
    assert ("Reuters", "NEWS_ORG") in got
    assert ("Prime Minister", "POLITICAL_ROLE") in got
    assert ("Boris Johnson", "PER") in got
    assert ("United States", "LOC") in got  # the determiner is outside the span
    assert ("Monday", "DATE") in {(s.text[e.start : e.end], e.label) for e in s.rehearsal}
    assert s.proposals[GAZETTEER] and s.article_id == "a1"
