"""Transductive embedding votes: class centres learned from the batch's own articles.

The zero-shot function compares each article with an embedding of what the user *wrote* about a
class (name, description, keywords). Those texts sit far from real articles in embedding space,
and all news shares one dominant direction, so zero-shot is brittle on a schema nobody tuned.
In the spirit of X-Class (Wang et al., 2021), this function moves the centres to where the
batch's articles actually are:

1. centre the article embeddings (subtract the batch mean, re-normalise) so the shared "news"
   direction no longer dominates every cosine;
2. seed each class centre with the mean of the articles most similar to its schema prototype
   (the `seed_share` most similar of those for which the class is the best match);
3. refine by EM for a mixture of von Mises–Fisher distributions with one shared concentration
   (spherical soft k-means; the shared kappa keeps the normalising constants out of the
   posteriors), each centre pulled back toward its seed with `anchor` pseudo-articles so a
   class cannot wander off to a different topic;
4. vote for the most probable class, abstaining where the posterior is below `min_posterior` or
   the article is far from every centre (cosine to its centre below that class's
   `far_quantile` quantile).

It reads the embeddings the zero-shot function already computed (nothing is embedded twice), so
its errors are correlated with zero-shot's: the label model treats the two as one dependent
group (see `label_model.DawidSkene(groups=...)`).

Shapes: article embeddings (n, d), prototypes (k, d), both L2-normalised; votes (n,).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from newsml_pipeline.core.labeling.schema import ABSTAIN

log = logging.getLogger(__name__)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _kappa(resultant: float, d: int) -> float:
    """Banerjee et al. (2005) approximation of the vMF concentration from the mean resultant length."""
    r = min(max(resultant, 1e-6), 1 - 1e-6)
    return r * (d - r * r) / (1 - r * r)


def transductive_posteriors(
    docs: np.ndarray,
    prototypes: np.ndarray,
    *,
    seed_share: float = 0.5,
    anchor: float = 5.0,
    max_iter: int = 30,
    tol: float = 1e-4,
    kappa_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(posteriors (n, k), centred docs (n, d), info) of the prototype-initialised vMF mixture."""
    docs = np.asarray(docs, dtype=np.float64)
    protos = np.asarray(prototypes, dtype=np.float64)
    n, d = docs.shape
    k = protos.shape[0]
    info: dict[str, Any] = {"iterations": 0}
    if n == 0:
        return np.zeros((0, k)), docs, info
    mean = docs.mean(axis=0)
    x = _normalise(docs - mean) if n > 1 else _normalise(docs)
    p = _normalise(protos - mean) if n > 1 else protos
    sims = x @ p.T
    best = sims.argmax(axis=1)
    seeds = np.empty((k, d))
    for c in range(k):
        mine = np.nonzero(best == c)[0]
        if len(mine) == 0:
            seeds[c] = p[c]
            continue
        top = mine[np.argsort(-sims[mine, c], kind="stable")[: max(1, int(np.ceil(seed_share * len(mine))))]]
        seeds[c] = _normalise(x[top].mean(axis=0))
    centres = seeds.copy()
    prior = np.full(k, 1.0 / k)
    post = np.full((n, k), 1.0 / k)
    kappa = 1.0
    for it in range(1, max_iter + 1):
        # M-step quantities from the current centres: shared kappa from the mean resultant length.
        cos = x @ centres.T
        if it == 1:
            assign = cos.argmax(axis=1)
            resultant = float(np.mean(cos[np.arange(n), assign]))
        else:
            resultant = float(np.sum(post * cos) / n)
        kappa = _kappa(resultant, d) * kappa_scale
        logits = kappa * cos + np.log(np.maximum(prior, 1e-12))[None, :]
        logits -= logits.max(axis=1, keepdims=True)
        new_post = np.exp(logits)
        new_post /= new_post.sum(axis=1, keepdims=True)
        centres = _normalise(new_post.T @ x + anchor * seeds)
        prior = (new_post.sum(axis=0) + 1.0) / (n + k)
        delta = float(np.abs(new_post - post).max())
        post = new_post
        info["iterations"] = it
        if delta < tol:
            break
    info["kappa"] = round(float(kappa), 2)
    info["centre_to_prototype_cosine"] = [round(float(v), 3) for v in np.sum(centres * p, axis=1)]
    return post, x @ centres.T, info


def transductive_votes(
    docs: np.ndarray,
    prototypes: np.ndarray,
    *,
    min_posterior: float = 0.6,
    far_quantile: float = 0.1,
    min_batch: int = 30,
    **kwargs: Any,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Votes (n,) (class index or ABSTAIN) and an info dict (EM iterations, kappa, abstentions).

    A batch of fewer than `min_batch` articles (a serving request) has no structure to learn
    from: it gets the plain zero-shot vote (nearest prototype by ≥ 0.01 cosine), said in info."""
    n = len(docs)
    if n < min_batch:
        from newsml_pipeline.core.labeling.functions.zero_shot import zero_shot_votes_from_scores

        sims = np.asarray(docs) @ np.asarray(prototypes).T if n else np.zeros((0, len(prototypes)))
        return zero_shot_votes_from_scores(sims), {"fallback": f"zero-shot vote: batch of {n} < {min_batch}"}
    post, cos, info = transductive_posteriors(docs, prototypes, **kwargs)
    votes = post.argmax(axis=1).astype(np.int64)
    near = cos[np.arange(n), votes]
    far = np.zeros(n, dtype=bool)
    for c in range(post.shape[1]):
        mine = votes == c
        if mine.sum() >= 5:
            far[mine] = near[mine] < np.quantile(near[mine], far_quantile)
    unsure = post.max(axis=1) < min_posterior
    votes[far | unsure] = ABSTAIN
    info.update({"abstained_far": int(far.sum()), "abstained_unsure": int((unsure & ~far).sum())})
    return votes, info
