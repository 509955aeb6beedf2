"""Keyword/phrase votes from the schema: lemma matches on word boundaries, title weighted more.

Each category's keywords (plus its name) are lemmatized like the text, so inflections match.
A category's score sums, per keyword, `title_weight * title hits + lead hits + log1p(later body
hits)`: the title says what an article is about, and so does the lead (its first `lead_chars`
characters, which is all a short wire item or feed summary has: there one lead hit is enough to
vote); later in a long body the log keeps one word repeated from dominating.
The function abstains when nothing matches or the best category does not beat the runner-up
by `min_ratio`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np

from newsml_pipeline.core.labeling.lemmas import Lemmatizer, count_phrases
from newsml_pipeline.core.labeling.schema import ABSTAIN, LabelSchema

log = logging.getLogger(__name__)


def category_phrases(schema: LabelSchema, lemmatizer: Lemmatizer) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """Distinct lemma phrases of all categories and a (n_phrases, k) 0/1 membership matrix.

    A category's name counts as one of its keywords (its words, for names like `Sci/Tech` or
    `Economy & business`).
    """
    phrases: list[tuple[str, ...]] = []
    owners: list[set[int]] = []
    index: dict[tuple[str, ...], int] = {}
    for c, (name, kws) in enumerate(zip(schema.names, schema.keywords, strict=True)):
        words = [w for w in re.split(r"[\W_]+", name) if len(w) >= 3] + list(kws)
        for w in words:
            ph = lemmatizer.phrase(w)
            if not ph:
                continue
            if ph not in index:
                index[ph] = len(phrases)
                phrases.append(ph)
                owners.append(set())
            owners[index[ph]].add(c)
    member = np.zeros((len(phrases), schema.k), dtype=np.float64)
    for p, cs in enumerate(owners):
        for c in cs:
            member[p, c] = 1.0
    return phrases, member


def keyword_scores(
    titles: Sequence[str],
    texts: Sequence[str],
    *,
    schema: LabelSchema,
    lemmatizer: Lemmatizer,
    title_weight: float = 3.0,
    max_chars: int = 3000,
    lead_chars: int = 200,
) -> np.ndarray:
    """Score matrix (n, k) of keyword evidence per category; see the module docstring."""
    if len(titles) != len(texts):
        raise ValueError(f"keyword_scores: {len(titles)} titles but {len(texts)} texts")
    phrases, member = category_phrases(schema, lemmatizer)
    prefixes = lemmatizer.relevant_prefixes(w for ph in phrases for w in ph)
    t_counts = np.asarray(
        count_phrases(lemmatizer.tokens(titles, prefixes=prefixes), phrases), dtype=np.float64
    )
    leads, rests = [], []
    for t in texts:
        # Cut the lead at a word boundary so no word is split between the two parts.
        cut = lead_chars if len(t) <= lead_chars else max(t.rfind(" ", 0, lead_chars), 0)
        leads.append(t[:cut])
        rests.append(t[cut:max_chars])
    l_counts = np.asarray(
        count_phrases(lemmatizer.tokens(leads, prefixes=prefixes), phrases), dtype=np.float64
    )
    b_counts = np.asarray(
        count_phrases(lemmatizer.tokens(rests, prefixes=prefixes), phrases), dtype=np.float64
    )
    t_counts = t_counts.reshape(len(titles), len(phrases))
    l_counts = l_counts.reshape(len(texts), len(phrases))
    b_counts = b_counts.reshape(len(texts), len(phrases))
    evidence = title_weight * t_counts + l_counts + np.log1p(b_counts)
    return evidence @ member


def votes_from_scores(scores: np.ndarray, *, min_score: float, min_ratio: float) -> np.ndarray:
    """Argmax class where the top score ≥ min_score and ≥ min_ratio × the runner-up, else ABSTAIN."""
    if scores.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.sort(scores, axis=1)
    top, second = order[:, -1], order[:, -2]
    votes = scores.argmax(axis=1).astype(np.int64)
    ok = (top >= min_score) & (top >= min_ratio * second) & (top > second)
    votes[~ok] = ABSTAIN
    return votes


def keyword_votes(
    titles: Sequence[str],
    texts: Sequence[str],
    *,
    schema: LabelSchema,
    lemmatizer: Lemmatizer,
    title_weight: float = 3.0,
    min_score: float = 1.0,
    min_ratio: float = 1.25,
    max_chars: int = 3000,
    lead_chars: int = 200,
) -> np.ndarray:
    """Votes (n,) of the keyword function: class index or ABSTAIN."""
    scores = keyword_scores(
        titles,
        texts,
        schema=schema,
        lemmatizer=lemmatizer,
        title_weight=title_weight,
        max_chars=max_chars,
        lead_chars=lead_chars,
    )
    return votes_from_scores(scores, min_score=min_score, min_ratio=min_ratio)
