"""Combine labeling-function votes into one label with learned per-function reliabilities.

`DawidSkene` is the classic EM estimator (Dawid & Skene 1979, the model behind Snorkel's label
model): each function j has a confusion matrix P(vote = v | true class = c) and the classes have
a prior; both are learned from the vote matrix alone, without gold labels. Abstentions are
treated as uninformative. A symmetric Dirichlet prior (diagonal-heavy) keeps small batches and
rarely-voting functions stable. `majority_vote` is kept as the reference to beat.

Shapes: votes (n, m) int, class index in [0, k) or ABSTAIN (-1); probabilities (n, k).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from newsml_pipeline.core.labeling.schema import ABSTAIN

log = logging.getLogger(__name__)


def _check_votes(votes: np.ndarray, k: int) -> np.ndarray:
    votes = np.asarray(votes)
    if votes.ndim != 2:
        raise ValueError(f"votes must be a 2-D (n_articles, n_functions) array, got shape {votes.shape}")
    if votes.size and (votes.min() < ABSTAIN or votes.max() >= k):
        raise ValueError(
            f"votes must be class indices in [0, {k}) or {ABSTAIN} (abstain); got range [{votes.min()}, {votes.max()}]"
        )
    return votes.astype(np.int64)


def majority_vote(votes: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain majority vote: (labels (n,), share of votes for the winner (n,)); ties and rows
    without votes get ABSTAIN and confidence 0."""
    votes = _check_votes(votes, k)
    n = votes.shape[0]
    counts = np.zeros((n, k), dtype=np.int64)
    for j in range(votes.shape[1]):
        v = votes[:, j]
        ok = v != ABSTAIN
        np.add.at(counts, (np.nonzero(ok)[0], v[ok]), 1)
    total = counts.sum(axis=1)
    best = counts.argmax(axis=1)
    top = counts.max(axis=1)
    tie = (counts == top[:, None]).sum(axis=1) > 1
    labels = np.where((total > 0) & ~tie, best, ABSTAIN)
    conf = np.where(labels != ABSTAIN, top / np.maximum(total, 1), 0.0)
    return labels.astype(np.int64), conf


@dataclass
class DawidSkene:
    """EM label model. After `fit`: `class_prior_` (k,), `confusion_` (m, k, k) with
    confusion_[j, c, v] = P(function j votes v | class c, j votes), `n_iter_`.

    prior_strength: pseudo-counts per confusion row (spread as prior_accuracy on the diagonal,
    the rest evenly off it); larger = more shrinkage toward prior_accuracy.
    """

    k: int
    max_iter: int = 100
    tol: float = 1e-5
    prior_accuracy: float = 0.7
    prior_strength: float = 5.0
    class_prior_: np.ndarray = field(init=False, repr=False)
    confusion_: np.ndarray = field(init=False, repr=False)
    n_iter_: int = field(init=False, default=0)

    def _one_hot(self, votes: np.ndarray) -> np.ndarray:
        n, m = votes.shape
        oh = np.zeros((n, m, self.k), dtype=np.float64)
        rows, cols = np.nonzero(votes != ABSTAIN)
        oh[rows, cols, votes[rows, cols]] = 1.0
        return oh

    def _m_step(self, oh: np.ndarray, post: np.ndarray) -> None:
        k = self.k
        off = (1 - self.prior_accuracy) / max(k - 1, 1)
        prior = self.prior_strength * np.where(np.eye(k, dtype=bool), self.prior_accuracy, off)
        # counts[j, c, v] = sum_i post[i, c] * oh[i, j, v]
        counts = np.einsum("ic,ijv->jcv", post, oh) + prior[None]
        self.confusion_ = counts / counts.sum(axis=2, keepdims=True)
        self.class_prior_ = (post.sum(axis=0) + 1.0) / (post.shape[0] + k)

    def _e_step(self, oh: np.ndarray) -> np.ndarray:
        log_post = np.log(self.class_prior_)[None, :] + np.einsum("ijv,jcv->ic", oh, np.log(self.confusion_))
        log_post -= log_post.max(axis=1, keepdims=True)
        post = np.exp(log_post)
        return post / post.sum(axis=1, keepdims=True)

    def fit(self, votes: np.ndarray) -> DawidSkene:
        """Learn class prior and per-function confusion matrices from votes (n, m) by EM,
        starting from the majority-vote distribution."""
        votes = _check_votes(votes, self.k)
        oh = self._one_hot(votes)
        counts = oh.sum(axis=1)
        post = (counts + 1e-3) / (counts + 1e-3).sum(axis=1, keepdims=True)
        prev = None
        for it in range(1, self.max_iter + 1):
            self._m_step(oh, post)
            post = self._e_step(oh)
            self.n_iter_ = it
            if prev is not None and np.abs(post - prev).max() < self.tol:
                break
            prev = post
        log.debug("Dawid-Skene converged after %d iterations", self.n_iter_)
        return self

    def predict_proba(self, votes: np.ndarray) -> np.ndarray:
        """Posterior class probabilities (n, k); rows without votes get the class prior."""
        votes = _check_votes(votes, self.k)
        return self._e_step(self._one_hot(votes))

    def function_accuracies(self) -> np.ndarray:
        """Estimated P(vote correct | function votes) per function (m,), class-prior weighted."""
        diag = np.diagonal(self.confusion_, axis1=1, axis2=2)
        return diag @ self.class_prior_


def labels_from_proba(proba: np.ndarray, *, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """(labels (n,), confidence (n,)): argmax class, ABSTAIN where its probability < min_confidence."""
    conf = proba.max(axis=1) if proba.size else np.zeros(proba.shape[0])
    labels = proba.argmax(axis=1).astype(np.int64) if proba.size else np.zeros(0, dtype=np.int64)
    labels[conf < min_confidence] = ABSTAIN
    return labels, conf
