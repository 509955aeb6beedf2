"""Keyword expansion from the corpus itself: the terms that co-occur with a class's seed keywords.

A user writes a dozen keywords per class; the stream uses hundreds of other words for the same
topic (team names, product names, the jargon of the day). The seed keyword function's votes mark
the articles it is sure of; among those, each term's association with a class is the
informative-Dirichlet log-odds z-score of Monroe, Colaresi & Quinn (2008), class vs the other
seeded articles. The top `per_class` terms per class (z ≥ `min_z`, in ≥ `min_df` seeded
articles, ≥ `min_precision` of its seeded articles (class-size corrected) in the class, not a seed keyword, not an English stop word, each term given to one class only) are
that class's expansion; ties break on the term itself, so the lists are deterministic. With
`embed_terms` (the zero-shot function's sentence model), a term is kept only where it also embeds
closest to its own class's seed keywords.

The expansion function then votes from the *expanded terms only* (title hits weighted like the
keyword function's), so a seed keyword never counts twice. It still learned from the seed
function's votes, so the label model treats the two as one dependent group.

Titles and leads only (`lead_chars`): short items are all lead, and a long article's topic
words are in its lead too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence

import numpy as np

from newsml_pipeline.core.labeling.schema import ABSTAIN, LabelSchema

log = logging.getLogger(__name__)

_TOKEN = r"(?u)\b[^\W\d_][^\W_]{2,}\b"  # words of ≥ 3 characters starting with a letter


def _docs(titles: Sequence[str], texts: Sequence[str], lead_chars: int) -> list[str]:
    return [f"{ti}\n{tx[:lead_chars]}" for ti, tx in zip(titles, texts, strict=True)]


def _seed_words(schema: LabelSchema) -> set[str]:
    words: set[str] = set()
    for name, kws in zip(schema.names, schema.keywords, strict=True):
        for phrase in [name, *kws]:
            words.update(w for w in re.split(r"[\W_]+", phrase.lower()) if w)
    return words


def _is_seed_form(term: str, seeds: set[str]) -> bool:
    """A term that is a seed keyword up to a plural/verb ending (`shares` ~ `share`)."""
    return any(term == s or (term.startswith(s) and len(term) - len(s) <= 3 and len(s) >= 4) for s in seeds)


def expand_keywords(
    titles: Sequence[str],
    texts: Sequence[str],
    seed_votes: np.ndarray,
    *,
    schema: LabelSchema,
    per_class: int = 20,
    min_df: int = 3,
    min_z: float = 2.0,
    min_precision: float = 0.5,
    lead_chars: int = 400,
    alpha: float = 0.01,
    embed_terms: Callable[[list[str]], np.ndarray] | None = None,
) -> list[list[str]]:
    """Expanded terms per class (class order), strongest first; see the module docstring."""
    if len(titles) != len(texts) or len(titles) != len(seed_votes):
        raise ValueError(
            f"expand_keywords: {len(titles)} titles, {len(texts)} texts, {len(seed_votes)} seed votes"
        )
    k = schema.k
    seeded = np.nonzero(np.asarray(seed_votes) != ABSTAIN)[0]
    if len(seeded) < 2 * min_df:
        return [[] for _ in range(k)]
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    vec = CountVectorizer(
        token_pattern=_TOKEN,
        lowercase=True,
        binary=True,
        stop_words=sorted(ENGLISH_STOP_WORDS),
        min_df=min_df,
    )
    docs = _docs(titles, texts, lead_chars)
    try:
        x = vec.fit_transform([docs[i] for i in seeded])
    except ValueError:  # empty vocabulary: nothing occurs min_df times
        return [[] for _ in range(k)]
    vocab = np.asarray(vec.get_feature_names_out())
    y = np.asarray(seed_votes)[seeded]
    counts = np.vstack([np.asarray(x[y == c].sum(axis=0)).ravel() for c in range(k)])  # (k, V) doc freq
    total = counts.sum(axis=0)
    prior = alpha * (total + 1.0)  # informative Dirichlet prior proportional to the background
    a0 = prior.sum()
    n_c = counts.sum(axis=1)
    z = np.zeros_like(counts, dtype=np.float64)
    for c in range(k):
        rest, n_rest = total - counts[c], n_c.sum() - n_c[c]
        l1 = np.log((counts[c] + prior) / (n_c[c] + a0 - counts[c] - prior))
        l2 = np.log((rest + prior) / (n_rest + a0 - rest - prior))
        z[c] = (l1 - l2) / np.sqrt(1.0 / (counts[c] + prior) + 1.0 / (rest + prior))
    seeds = _seed_words(schema)
    owner = z.argmax(axis=0)
    if embed_terms is not None:
        owner = _embedding_owner(owner, z, vocab, schema, embed_terms, min_z=min_z)
    out: list[list[str]] = []
    for c in range(k):
        # Share of the term's seeded articles (class-size corrected) that are of class c.
        rate = counts / np.maximum(n_c, 1)[:, None]
        precision = rate[c] / np.maximum(rate.sum(axis=0), 1e-12)
        ok = (owner == c) & (z[c] >= min_z) & (counts[c] >= min_df) & (precision >= min_precision)
        idx = [i for i in np.nonzero(ok)[0] if not _is_seed_form(vocab[i], seeds)]
        idx.sort(key=lambda i: (-round(float(z[c, i]), 9), vocab[i]))
        out.append([str(vocab[i]) for i in idx[:per_class]])
    return out


def _embedding_owner(
    owner: np.ndarray,
    z: np.ndarray,
    vocab: np.ndarray,
    schema: LabelSchema,
    embed_terms: Callable[[list[str]], np.ndarray],
    *,
    min_z: float,
) -> np.ndarray:
    """Keep a co-occurring term only where it also *embeds* closest to its class's seed
    keywords (owner -1 otherwise): co-occurrence alone picks up the batch's incidental words."""
    cand = np.nonzero(z.max(axis=0) >= min_z)[0]
    if len(cand) == 0:
        return owner
    seed_lists = [[*kws, name] for name, kws in zip(schema.names, schema.keywords, strict=True)]
    flat = [w for ws in seed_lists for w in ws]
    emb = np.asarray(embed_terms(flat + [str(vocab[i]) for i in cand]), dtype=np.float64)
    seed_emb, term_emb = emb[: len(flat)], emb[len(flat) :]
    centres, start = [], 0
    for ws in seed_lists:
        m = seed_emb[start : start + len(ws)].mean(axis=0)
        centres.append(m / max(np.linalg.norm(m), 1e-12))
        start += len(ws)
    near = (term_emb @ np.asarray(centres).T).argmax(axis=1)
    out = np.full_like(owner, -1)
    agree = near == owner[cand]
    out[cand[agree]] = owner[cand[agree]]
    return out


def expansion_votes(
    titles: Sequence[str],
    texts: Sequence[str],
    terms: Sequence[Sequence[str]],
    *,
    title_weight: float = 3.0,
    min_score: float = 1.0,
    min_ratio: float = 1.25,
    lead_chars: int = 400,
) -> np.ndarray:
    """Votes (n,) from the expanded terms: title hits × title_weight + lead hits, argmax class
    where it reaches min_score and beats the runner-up by min_ratio, else ABSTAIN."""
    n, k = len(titles), len(terms)
    votes = np.full(n, ABSTAIN, dtype=np.int64)
    vocab = {t: c for c, ts in enumerate(terms) for t in ts}
    if n == 0 or not vocab:
        return votes
    from sklearn.feature_extraction.text import CountVectorizer

    vec = CountVectorizer(token_pattern=_TOKEN, lowercase=True, vocabulary=sorted(vocab))
    member = np.zeros((len(vocab), k))
    for j, t in enumerate(sorted(vocab)):
        member[j, vocab[t]] = 1.0
    t_hits = vec.transform(titles) @ member
    b_hits = vec.transform([tx[:lead_chars] for tx in texts]) @ member
    scores = title_weight * np.asarray(t_hits) + np.asarray(b_hits)
    order = np.sort(scores, axis=1)
    top, second = order[:, -1], order[:, -2] if k > 1 else np.zeros(n)
    best = scores.argmax(axis=1)
    ok = (top >= min_score) & (top >= min_ratio * second) & (top > second)
    votes[ok] = best[ok]
    return votes
