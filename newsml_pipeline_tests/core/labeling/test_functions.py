"""Each labeling function on small real BBC snippets, plus its abstain behaviour."""

import numpy as np
import pytest

from newsml_pipeline.core.labeling import nlp_cache
from newsml_pipeline.core.labeling.functions.entities import agreement_targets, entity_profiles, entity_votes
from newsml_pipeline.core.labeling.functions.keywords import keyword_votes
from newsml_pipeline.core.labeling.functions.url_section import url_section_votes
from newsml_pipeline.core.labeling.functions.zero_shot import zero_shot_scores, zero_shot_votes_from_scores
from newsml_pipeline.core.labeling.pipeline import _lemmatizer
from newsml_pipeline.core.labeling.schema import ABSTAIN, LabelSchema
from newsml_pipeline.settings import load_config

SCHEMA = LabelSchema.from_config(load_config(None).labels)


@pytest.fixture(scope="module")
def sample(bbc_rows):
    """The first 10 unique articles of each class: titles, texts, gold indices."""
    picked = []
    for name in SCHEMA.names:
        picked += [r for r in bbc_rows if r["label"] == name and not r["duplicate_of"]][:10]
    return (
        [r["title"] for r in picked],
        [r["text"] for r in picked],
        np.array([SCHEMA.index(r["label"]) for r in picked]),
    )


def _acc(votes, gold):
    covered = votes != ABSTAIN
    return covered.mean(), (votes[covered] == gold[covered]).mean()


def test_keywords_on_bbc(sample):
    titles, texts, gold = sample
    votes = keyword_votes(titles, texts, schema=SCHEMA, lemmatizer=_lemmatizer())
    coverage, acc = _acc(votes, gold)
    assert coverage >= 0.7 and acc >= 0.8, (coverage, acc)


def test_keywords_use_lemmas_word_boundaries_and_title_weight():
    lem = _lemmatizer()
    # "companies"/"profits" match keywords company/profit; "sportsmanship" must not match "sport".
    votes = keyword_votes(
        ["Companies report profits", "Sportsmanship", "", "Film festival"],
        ["", "", "", "Shares and profits fell at the company. The match was a draw."],
        schema=SCHEMA,
        lemmatizer=lem,
    )
    assert votes[0] == SCHEMA.index("business")
    assert votes[1] == ABSTAIN and votes[2] == ABSTAIN
    assert votes[3] == SCHEMA.index("entertainment")  # two title hits outweigh the body


def test_url_sections_and_abstain():
    urls = [
        "https://www.bbc.co.uk/news/business-68223310",
        "https://www.theguardian.com/sport/2024/jan/01/some-match-report",
        "https://www.theguardian.com/uk/technology/2024/feb/02/new-phone",
        "https://example.com/football/premier-league/slug",
        "https://example.com/2024/01/01/company-profits-rise",  # words only in the slug
        None,
        "https://example.com/opinion/slug",
    ]
    votes = url_section_votes(urls, schema=SCHEMA)
    expected = ["business", "sport", "tech", "sport", None, None, None]
    assert [SCHEMA.name_of(int(v)) for v in votes] == expected


def test_entity_profiles_on_bbc_and_learning_from_agreement(sample):
    titles, texts, gold = sample
    profiles, types = entity_profiles(titles, texts, nlp=nlp_cache.spacy_ner(), max_chars=600)
    assert profiles.shape == (len(titles), 2 * len(types) + 1)
    money = types.index("MONEY")
    business = gold == SCHEMA.index("business")
    assert profiles[business, money].mean() > profiles[~business, money].mean()
    votes, info = entity_votes(profiles, gold, k=SCHEMA.k)  # gold as teacher: it must fit
    assert info["fitted"] and (votes != ABSTAIN).any()
    # too few agreed examples: abstains everywhere instead of guessing
    none, info = entity_votes(profiles, np.full(len(gold), ABSTAIN), k=SCHEMA.k)
    assert not info["fitted"] and (none == ABSTAIN).all()


def test_agreement_targets():
    votes = np.array([[0, 0, ABSTAIN], [0, 1, ABSTAIN], [2, ABSTAIN, ABSTAIN], [1, 1, 1]])
    assert agreement_targets(votes).tolist() == [0, ABSTAIN, ABSTAIN, 1]


def test_zero_shot_on_bbc_and_abstain(sample):
    titles, texts, gold = sample
    sims = zero_shot_scores(
        titles, texts, schema=SCHEMA, model=nlp_cache.sentence_model(None), max_tokens=128
    )
    assert sims.shape == (len(titles), SCHEMA.k)
    coverage, acc = _acc(zero_shot_votes_from_scores(sims, min_margin=0.0), gold)
    assert coverage == 1.0 and acc >= 0.7, acc
    assert (zero_shot_votes_from_scores(sims, min_margin=1.0) == ABSTAIN).all()
