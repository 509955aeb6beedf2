"""Entity-type-profile votes: which kinds of named entities an article mentions.

Business news is dense in MONEY/PERCENT/ORG, politics in NORP/PERSON/GPE, sport in CARDINAL and
PERSON... but how much each type says about each category depends on the schema and the stream,
so nothing is hand-set: a small logistic regression maps the profile to a category, trained on
the articles where the *other* labeling functions agree (their agreement is the teacher). It
abstains when too few agreed examples exist to learn from, or when its probability is low.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from newsml_pipeline.core.labeling.schema import ABSTAIN

log = logging.getLogger(__name__)


def entity_profiles(
    titles: Sequence[str],
    texts: Sequence[str],
    *,
    nlp: Any,
    max_chars: int = 600,
    batch_size: int = 64,
) -> tuple[np.ndarray, list[str]]:
    """Entity-type features (n, 2*T+1): share of each type, log1p count of each type, log1p total.

    Only the title and the first `max_chars` of the body are parsed: the lead carries the
    article's entity mix, and NER cost grows with length. Returns the matrix and the type names.
    """
    if len(titles) != len(texts):
        raise ValueError(f"entity_profiles: {len(titles)} titles but {len(texts)} texts")
    types = sorted(nlp.get_pipe("ner").labels)
    col = {t: j for j, t in enumerate(types)}
    counts = np.zeros((len(texts), len(types)), dtype=np.float64)
    docs_in = (f"{ti}\n{tx[:max_chars]}" for ti, tx in zip(titles, texts, strict=True))
    start = time.perf_counter()
    for i, doc in enumerate(nlp.pipe(docs_in, batch_size=batch_size)):
        for ent in doc.ents:
            j = col.get(ent.label_)
            if j is not None:
                counts[i, j] += 1
        if (i + 1) % 1000 == 0:
            log.info(
                "entities: %d/%d articles (%.0f/s)",
                i + 1,
                len(texts),
                (i + 1) / (time.perf_counter() - start),
            )
    total = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    return np.hstack([shares, np.log1p(counts), np.log1p(total)]), types


def agreement_targets(other_votes: np.ndarray, *, min_agree: int = 2) -> np.ndarray:
    """Per row: the label all non-abstaining functions give when at least `min_agree` voted
    and none dissents, else ABSTAIN. `other_votes` is (n, m) of class indices / ABSTAIN."""
    n, m = other_votes.shape
    targets = np.full(n, ABSTAIN, dtype=np.int64)
    if m == 0:
        return targets
    need = max(1, min(min_agree, m))
    for i in range(n):
        v = other_votes[i][other_votes[i] != ABSTAIN]
        if len(v) >= need and np.all(v == v[0]):
            targets[i] = v[0]
    return targets


def entity_votes(
    profiles: np.ndarray,
    targets: np.ndarray,
    *,
    k: int,
    min_prob: float = 0.6,
    min_examples_per_class: int = 5,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit profile → category on rows with a target, then vote where the probability ≥ min_prob.

    Returns votes (n,) and an info dict (how many teacher rows per class, whether it was fitted).
    Classes with fewer than `min_examples_per_class` teacher rows are left out of the fit (the
    function never votes for them); with fewer than two learnable classes it abstains everywhere.
    """
    n = profiles.shape[0]
    votes = np.full(n, ABSTAIN, dtype=np.int64)
    per_class = np.bincount(targets[targets != ABSTAIN], minlength=k)
    learnable = [c for c in range(k) if per_class[c] >= min_examples_per_class]
    info: dict[str, Any] = {"teacher_rows": int(per_class.sum()), "learnable_classes": len(learnable)}
    if len(learnable) < 2:
        info["fitted"] = False
        log.info(
            "entities: only %d classes with ≥%d agreed examples; abstaining",
            len(learnable),
            min_examples_per_class,
        )
        return votes, info
    mask = np.isin(targets, learnable)
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced", random_state=seed)
    clf.fit(profiles[mask], targets[mask])
    proba = clf.predict_proba(profiles)
    best = proba.argmax(axis=1)
    ok = proba[np.arange(n), best] >= min_prob
    votes[ok] = clf.classes_[best[ok]]
    info["fitted"] = True
    return votes, info
