"""The labelling functions meant for schemas nobody tuned: transductive embeddings, keyword
expansion from the corpus, lead-aware keywords, and the label model's dependent groups."""

from __future__ import annotations

import numpy as np
import pytest

from newsml_pipeline.core.labeling.functions.keyword_expansion import expand_keywords, expansion_votes
from newsml_pipeline.core.labeling.functions.transductive import transductive_votes
from newsml_pipeline.core.labeling.functions.zero_shot import zero_shot_votes_from_scores
from newsml_pipeline.core.labeling.label_model import DawidSkene
from newsml_pipeline.core.labeling.schema import ABSTAIN, LabelSchema
from newsml_pipeline.settings import LabelsConfig


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _clusters(seed: int = 0, n_per: int = 120, d: int = 32, k: int = 3, spread: float = 0.15):
    """k well-separated topic clusters plus a shared 'news' direction every article carries,
    and prototypes that point only roughly at their cluster (as schema text does)."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(k, d)))
    common = _unit(rng.normal(size=d))
    docs, gold = [], []
    for c in range(k):
        docs.append(centres[c] + 2.0 * common + spread * rng.normal(size=(n_per, d)))
        gold += [c] * n_per
    protos = _unit(centres + 1.2 * _unit(rng.normal(size=(k, d))))
    return _unit(np.vstack(docs)), protos, np.array(gold)


def test_transductive_beats_the_prototypes_it_starts_from() -> None:
    docs, protos, gold = _clusters()
    zs = zero_shot_votes_from_scores(docs @ protos.T)
    tr, info = transductive_votes(docs, protos)
    zs_acc = (zs[zs != ABSTAIN] == gold[zs != ABSTAIN]).mean()
    covered = tr != ABSTAIN
    assert covered.mean() >= 0.8
    assert (tr[covered] == gold[covered]).mean() >= 0.97 > zs_acc + 0.1, (zs_acc, info)
    assert info["iterations"] >= 1 and info["kappa"] > 0


def test_transductive_abstains_far_from_every_centre() -> None:
    docs, protos, _ = _clusters(seed=1)
    rng = np.random.default_rng(5)
    outliers = _unit(rng.normal(size=(20, docs.shape[1])))
    votes, info = transductive_votes(np.vstack([docs, outliers]), protos, far_quantile=0.1)
    assert (votes[-20:] == ABSTAIN).mean() >= 0.8, info
    assert info["abstained_far"] > 0


def test_transductive_small_batch_falls_back_to_zero_shot() -> None:
    docs, protos, _ = _clusters(seed=2)
    few = docs[[0, 200, 300]]
    votes, info = transductive_votes(few, protos)
    assert votes.tolist() == zero_shot_votes_from_scores(few @ protos.T).tolist()
    assert "fallback" in info
    assert transductive_votes(docs[:0], protos)[0].shape == (0,)


def _schema() -> LabelSchema:
    return LabelSchema.from_config(
        LabelsConfig(
            categories=[
                {"name": "Sport", "description": "sport", "keywords": ["football"]},
                {"name": "Sci/Tech", "description": "technology", "keywords": ["software"]},
            ]
        )
    )


def _corpus(seed: int = 0):
    """Short items: seeds (football/software) co-occur with topic words (striker, keeper /
    compiler, database); some items carry only topic words, no seed."""
    rng = np.random.default_rng(seed)
    words = {0: ["striker", "keeper", "goal"], 1: ["compiler", "database", "laptop"]}
    filler = ["today", "said", "report", "people", "week", "city"]
    titles, texts, seed_votes, gold = [], [], [], []
    for i in range(200):
        c = i % 2
        seeded = i < 120
        toks = list(rng.choice(words[c], 2)) + list(rng.choice(filler, 3))
        if seeded:
            toks.append("football" if c == 0 else "software")
        titles.append(" ".join(toks[:3]))
        texts.append(" ".join(toks[3:]))
        seed_votes.append(c if seeded else ABSTAIN)
        gold.append(c)
    return titles, texts, np.array(seed_votes), np.array(gold)


def test_keyword_expansion_finds_co_occurring_terms_and_votes_with_them() -> None:
    titles, texts, seed_votes, gold = _corpus()
    terms = expand_keywords(titles, texts, seed_votes, schema=_schema(), per_class=2, min_df=3)
    assert [len(t) for t in terms] == [2, 2]  # capped
    assert set(terms[0]) <= {"striker", "keeper", "goal"} and set(terms[1]) <= {
        "compiler",
        "database",
        "laptop",
    }
    assert "football" not in terms[0] and "software" not in terms[1]  # seeds are not re-counted
    assert terms == expand_keywords(titles, texts, seed_votes, schema=_schema(), per_class=2, min_df=3)
    full = expand_keywords(titles, texts, seed_votes, schema=_schema(), per_class=20, min_df=3)
    votes = expansion_votes(titles, texts, full)
    unseeded = seed_votes == ABSTAIN
    assert (votes[unseeded] != ABSTAIN).mean() >= 0.9
    assert (votes[unseeded] == gold[unseeded]).mean() >= 0.95
    assert not any(set(full[0]) & {"today", "said", "report"})  # spread evenly: not a class's word


def test_keyword_expansion_embedding_filter_drops_terms_closer_to_another_class() -> None:
    titles, texts, seed_votes, _ = _corpus()

    def embed(words: list[str]) -> np.ndarray:
        # 2-d toy embedding: "keeper" is made to sit with the technology seeds.
        tech = {"software", "compiler", "database", "laptop", "keeper", "Sci/Tech"}
        return _unit(np.array([[0.1, 1.0] if w in tech else [1.0, 0.1] for w in words]))

    terms = expand_keywords(titles, texts, seed_votes, schema=_schema(), embed_terms=embed, min_df=3)
    assert "keeper" not in terms[0] and "striker" in terms[0]


def test_keyword_expansion_without_enough_seeds_is_empty() -> None:
    titles, texts, _, _ = _corpus()
    none = np.full(len(titles), ABSTAIN)
    assert expand_keywords(titles, texts, none, schema=_schema()) == [[], []]
    assert (expansion_votes(titles, texts, [[], []]) == ABSTAIN).all()
    with pytest.raises(ValueError, match="seed votes"):
        expand_keywords(titles, texts, none[:3], schema=_schema())


def test_dependent_group_does_not_count_a_copy_twice() -> None:
    """Two copies of one noisy function outvote an independent better one unless they are
    declared one group: then the pair carries one function's evidence."""
    rng = np.random.default_rng(0)
    n, k = 3000, 3
    gold = rng.integers(0, k, n)

    def noisy(acc: float) -> np.ndarray:
        wrong = (gold + rng.integers(1, k, n)) % k
        return np.where(rng.random(n) < acc, gold, wrong)

    weak, strong, third = noisy(0.65), noisy(0.8), noisy(0.7)
    votes = np.stack([weak, weak.copy(), strong, third], axis=1)  # ≥ 3 sources: identifiable
    disagree = weak != strong
    indep = DawidSkene(k=k).fit(votes).predict_proba(votes).argmax(axis=1)
    grouped_model = DawidSkene(k=k, groups=[[0, 1]]).fit(votes)
    grouped = grouped_model.predict_proba(votes).argmax(axis=1)
    # Where they disagree the truth is more often the strong function's vote.
    assert (grouped[disagree] == gold[disagree]).mean() > (indep[disagree] == gold[disagree]).mean() + 0.1
    acc = grouped_model.function_accuracies()
    assert acc.shape == (4,) and acc[0] == pytest.approx(acc[1]) and acc[2] > acc[3] > acc[0]
    assert acc[2] == pytest.approx(0.8, abs=0.05) and acc[0] == pytest.approx(0.65, abs=0.05)
    with pytest.raises(ValueError, match="disjoint"):
        DawidSkene(k=k, groups=[[0, 1], [1, 2]]).fit(votes)


def test_dependent_functions_config_is_checked() -> None:
    cats = [{"name": "a", "description": "a"}, {"name": "b", "description": "b"}]
    with pytest.raises(ValueError, match="unknown labeling functions"):
        LabelsConfig(categories=cats, dependent_functions=[["zero_shot", "zeroshot"]])
    with pytest.raises(ValueError, match="one dependent group only"):
        LabelsConfig(
            categories=cats, dependent_functions=[["zero_shot", "transductive"], ["zero_shot", "keywords"]]
        )
    cfg = LabelsConfig(categories=cats, functions=["zero_shot", "transductive", "keywords"])
    assert cfg.dependent_functions == [["zero_shot", "transductive"], ["keywords", "keyword_expansion"]]


def test_keywords_read_the_lead_of_short_items() -> None:
    """One keyword in the lead of a short item is enough to vote; in a long body it was not."""
    from newsml_pipeline.core.labeling.functions.keywords import keyword_votes
    from newsml_pipeline.core.labeling.spacy_stage import lemmatizer

    schema = _schema()
    votes = keyword_votes(
        ["Results from the weekend", "Late news"],
        ["The football season ended on Sunday.", "x " * 150 + "football"],
        schema=schema,
        lemmatizer=lemmatizer(),
    )
    assert votes.tolist() == [0, ABSTAIN]
