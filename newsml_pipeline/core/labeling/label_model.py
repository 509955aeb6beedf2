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


def _group_codes(votes: np.ndarray, groups: list[list[int]], k: int) -> tuple[np.ndarray, list[int]]:
    """Votes (n, m) -> joint codes (n, g): a group's code enumerates its members' vote tuple
    (each member k classes or abstain), ABSTAIN where every member abstains. Returns the codes and
    each group's number of codes, (k + 1) ** size - 1 (k for a single function: its vote)."""
    n = votes.shape[0]
    codes = np.full((n, len(groups)), ABSTAIN, dtype=np.int64)
    sizes = []
    for g, members in enumerate(groups):
        if len(members) == 1:
            codes[:, g] = votes[:, members[0]]
            sizes.append(k)
            continue
        code = np.zeros(n, dtype=np.int64)
        for pos, j in enumerate(members):
            code += (votes[:, j] + 1) * (k + 1) ** pos
        codes[:, g] = code - 1  # all abstain -> -1 = ABSTAIN
        sizes.append((k + 1) ** len(members) - 1)
    return codes, sizes


@dataclass
class DawidSkene:
    """EM label model. After `fit`: `class_prior_` (k,), `confusion_` (g, k, V) with
    confusion_[g, c, v] = P(group g's joint vote code is v | class c, g votes), `n_iter_`.

    prior_strength: pseudo-counts per confusion row (spread as prior_accuracy on the diagonal,
    the rest evenly off it); larger = more shrinkage toward prior_accuracy.

    groups: functions whose errors are correlated (they read the same embeddings, or one learned
    from the other's votes) as lists of column indices; every column not named is its own group.
    A group gets one *joint* confusion over its members' vote tuples instead of one independent
    confusion per member, so agreement between dependent functions is not counted as two
    independent pieces of evidence (the class-conditional independence Dawid–Skene assumes holds
    between groups, not inside them). Its prior is the product of the members' priors.
    """

    k: int
    max_iter: int = 100
    tol: float = 1e-5
    prior_accuracy: float = 0.7
    prior_strength: float = 5.0
    groups: list[list[int]] | None = None
    # Prior share of abstentions of a member inside a group (only used for groups of ≥ 2).
    prior_abstain: float = 0.2
    class_prior_: np.ndarray = field(init=False, repr=False)
    confusion_: np.ndarray = field(init=False, repr=False)
    n_iter_: int = field(init=False, default=0)
    groups_: list[list[int]] = field(init=False, repr=False, default_factory=list)
    _prior: np.ndarray = field(init=False, repr=False)

    def _resolve_groups(self, m: int) -> list[list[int]]:
        named = [list(g) for g in (self.groups or []) if g]
        seen = [j for g in named for j in g]
        if len(seen) != len(set(seen)) or any(not 0 <= j < m for j in seen):
            raise ValueError(
                f"label model groups must be disjoint column indices in [0, {m}), got {self.groups}"
            )
        order = sorted(named + [[j] for j in range(m) if j not in seen], key=min)
        return order

    def _group_prior(self, size: int, n_codes: int) -> np.ndarray:
        """Pseudo-counts (k, n_codes) for one group."""
        k = self.k
        off = (1 - self.prior_accuracy) / max(k - 1, 1)
        single = np.where(np.eye(k, dtype=bool), self.prior_accuracy, off)  # (c, v)
        if size == 1:
            out = np.zeros((k, n_codes))
            out[:, :k] = self.prior_strength * single
            return out
        # member prior over v in (abstain, 0..k-1) given c; product over members, all-abstain dropped
        member = np.hstack([np.full((k, 1), self.prior_abstain), (1 - self.prior_abstain) * single])
        joint = np.ones((k, 1))
        for _ in range(size):  # code digit `pos` varies slowest last: build with kron in reverse
            joint = np.einsum("cv,cw->cwv", joint, member).reshape(k, -1)
        joint = joint[:, 1:]
        joint /= joint.sum(axis=1, keepdims=True)
        return self.prior_strength * size * joint

    def _one_hot(self, codes: np.ndarray) -> np.ndarray:
        n, g = codes.shape
        oh = np.zeros((n, g, self._prior.shape[2]), dtype=np.float64)
        rows, cols = np.nonzero(codes != ABSTAIN)
        oh[rows, cols, codes[rows, cols]] = 1.0
        return oh

    def _codes(self, votes: np.ndarray) -> np.ndarray:
        return _group_codes(votes, self.groups_, self.k)[0]

    def _m_step(self, oh: np.ndarray, post: np.ndarray) -> None:
        # counts[g, c, v] = sum_i post[i, c] * oh[i, g, v]
        counts = np.einsum("ic,igv->gcv", post, oh) + self._prior
        self.confusion_ = counts / counts.sum(axis=2, keepdims=True)
        self.class_prior_ = (post.sum(axis=0) + 1.0) / (post.shape[0] + self.k)

    def _e_step(self, oh: np.ndarray) -> np.ndarray:
        log_conf = np.log(np.maximum(self.confusion_, 1e-300))  # padded codes have probability 0
        log_post = np.log(self.class_prior_)[None, :] + np.einsum("igv,gcv->ic", oh, log_conf)
        log_post -= log_post.max(axis=1, keepdims=True)
        post = np.exp(log_post)
        return post / post.sum(axis=1, keepdims=True)

    def fit(self, votes: np.ndarray) -> DawidSkene:
        """Learn class prior and per-group confusion matrices from votes (n, m) by EM,
        starting from the majority-vote distribution."""
        votes = _check_votes(votes, self.k)
        self.groups_ = self._resolve_groups(votes.shape[1])
        codes, sizes = _group_codes(votes, self.groups_, self.k)
        width = max(sizes, default=self.k)
        self._prior = np.zeros((len(self.groups_), self.k, width))
        for g, (members, size) in enumerate(zip(self.groups_, sizes, strict=True)):
            self._prior[g, :, :size] = self._group_prior(len(members), size)
        oh = self._one_hot(codes)
        # Start from the majority vote with each group weighing as one function.
        counts = np.zeros((votes.shape[0], self.k))
        for members in self.groups_:
            for j in members:
                ok = votes[:, j] != ABSTAIN
                np.add.at(counts, (np.nonzero(ok)[0], votes[ok, j]), 1.0 / len(members))
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
        return self._e_step(self._one_hot(self._codes(votes)))

    def function_accuracies(self) -> np.ndarray:
        """Estimated P(vote correct | function votes) per function (m,), class-prior weighted
        (for a function inside a group: from the group's joint confusion, marginalised)."""
        k = self.k
        m = sum(len(g) for g in self.groups_)
        out = np.zeros(m)
        for g, members in enumerate(self.groups_):
            n_codes = k if len(members) == 1 else (k + 1) ** len(members) - 1
            conf = self.confusion_[g, :, :n_codes]
            if len(members) == 1:
                out[members[0]] = np.diagonal(conf) @ self.class_prior_
                continue
            digits = np.arange(1, n_codes + 1)
            for pos, j in enumerate(members):
                v = (digits // (k + 1) ** pos) % (k + 1) - 1  # member j's vote in each code
                votes_mass = np.stack([conf[:, v >= 0].sum(axis=1)], axis=0)[0]  # (k,)
                right = np.array([conf[c, v == c].sum() for c in range(k)])
                out[j] = float((right / np.maximum(votes_mass, 1e-12)) @ self.class_prior_)
        return out


def labels_from_proba(proba: np.ndarray, *, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """(labels (n,), confidence (n,)): argmax class, ABSTAIN where its probability < min_confidence."""
    conf = proba.max(axis=1) if proba.size else np.zeros(proba.shape[0])
    labels = proba.argmax(axis=1).astype(np.int64) if proba.size else np.zeros(0, dtype=np.int64)
    labels[conf < min_confidence] = ABSTAIN
    return labels, conf
