"""Aggregate the sources' spans per token into one labelling per sentence, with abstention.

Each token gets one vote per source: a type index where the source proposes a span of that type
over it, `O` (0) where a source that sees every token (the pretrained NER) proposes nothing, and
abstain where a rule source does not match. The project's Dawid-Skene EM (the topic label model,
core/labeling/label_model.py) learns each source's confusion between `O` and the types from these
votes alone. `majority_vote` (the default) weighs each source by `source_weights`: measured on 60
BBC articles with the shipped config, the vote gave 69 custom-type spans (NEWS_ORG 24,
POLITICAL_ROLE 22, FINANCIAL_METRIC 23) and Dawid-Skene none, even with the pretrained source
abstaining there: a source that only ever votes one type looks uninformative to EM (abstentions
carry no information), and a rare type's class prior is tiny.
A token whose confidence stays below `min_confidence` (a tie between disagreeing sources under
the vote) is left unannotated (abstain: training computes no loss there), and so is every token
of a span that contains one.

Spans come back from the per-token decisions: a run of tokens of one type, cut where a source that
voted for that type ends one span and starts another (two adjacent entities stay two).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from newsml_pipeline.core.entities.sources import PRETRAINED, SourceSpans
from newsml_pipeline.core.entities.spans import TokenSpan
from newsml_pipeline.core.labeling.label_model import DawidSkene
from newsml_pipeline.core.labeling.schema import ABSTAIN
from newsml_pipeline.entity_settings import EntityLabelModelConfig


@dataclass(frozen=True)
class DocLabels:
    """The label model's answer for one Doc: spans, per-token confidence, abstained tokens."""

    spans: list[TokenSpan]
    confidence: np.ndarray  # (n_tokens,) posterior of the chosen class
    abstained: np.ndarray  # (n_tokens,) bool

    @property
    def abstain_share(self) -> float:
        return float(self.abstained.mean()) if self.abstained.size else 0.0


def token_votes(
    n_tokens: int,
    proposals: SourceSpans,
    sources: list[str],
    types: list[str],
    pretrained_types: set[str],
) -> np.ndarray:
    """Votes (n_tokens, n_sources): 0 = O, 1 + type index, ABSTAIN.

    The pretrained source's `O` only means "none of the types it maps to": where a rule source
    proposes a type outside `pretrained_types` (a custom type such as NEWS_ORG), the pretrained
    source abstains instead of outvoting it (its ORG on "Reuters" is not evidence against NEWS_ORG).
    """
    index = {t: i + 1 for i, t in enumerate(types)}
    votes = np.full((n_tokens, len(sources)), ABSTAIN, dtype=np.int64)
    custom = np.zeros(n_tokens, dtype=bool)
    for j, name in enumerate(sources):
        if name == PRETRAINED:
            votes[:, j] = 0
        for s in proposals.by_source.get(name, []):
            votes[s.start : s.end, j] = index[s.label]
            if name != PRETRAINED and s.label not in pretrained_types:
                custom[s.start : s.end] = True
    if PRETRAINED in sources:
        votes[custom, sources.index(PRETRAINED)] = ABSTAIN
    return votes


def _decode(
    labels: np.ndarray, proposals: SourceSpans, types: list[str], abstained: np.ndarray
) -> list[TokenSpan]:
    """Per-token classes -> spans (runs of one type, cut at a source's span boundary)."""
    ends: dict[str, set[int]] = {t: set() for t in types}  # token indices where a source span ends
    starts: dict[str, set[int]] = {t: set() for t in types}
    for spans in proposals.by_source.values():
        for s in spans:
            ends[s.label].add(s.end)
            starts[s.label].add(s.start)
    spans: list[TokenSpan] = []
    i, n = 0, len(labels)
    while i < n:
        c = int(labels[i])
        if c <= 0:
            i += 1
            continue
        t = types[c - 1]
        j = i + 1
        while j < n and int(labels[j]) == c and not (j in ends[t] and j in starts[t]):
            j += 1
        if not abstained[i:j].any():
            spans.append(TokenSpan(i, j, t))
        else:
            abstained[i:j] = True
        i = j
    return spans


def weighted_vote(votes: np.ndarray, *, k: int, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels (n,), winner's share of the vote weight (n,)); a tie or no vote gives ABSTAIN, 0."""
    n = votes.shape[0]
    score = np.zeros((n, k))
    for j in range(votes.shape[1]):
        ok = votes[:, j] != ABSTAIN
        np.add.at(score, (np.nonzero(ok)[0], votes[ok, j]), weights[j])
    total = score.sum(axis=1)
    top = score.max(axis=1)
    tie = np.isclose(score, top[:, None]).sum(axis=1) > 1
    labels = np.where((total > 0) & ~tie, score.argmax(axis=1), ABSTAIN)
    conf = np.where(labels != ABSTAIN, top / np.maximum(total, 1e-12), 0.0)
    return labels.astype(np.int64), conf


def label_docs(
    lengths: list[int],
    proposals: list[SourceSpans],
    *,
    sources: list[str],
    types: list[str],
    pretrained_types: set[str],
    cfg: EntityLabelModelConfig,
) -> tuple[list[DocLabels], dict[str, float]]:
    """Fit the label model on all tokens of the batch and decode each Doc.

    Returns the per-Doc labels and the estimated accuracy of each source on the tokens it votes on
    (from the fitted confusions; 1.0 each for the majority vote, which learns none).
    """
    k = 1 + len(types)
    votes = [
        token_votes(n, p, sources, types, pretrained_types) for n, p in zip(lengths, proposals, strict=True)
    ]
    allv = np.concatenate(votes) if votes else np.zeros((0, len(sources)), dtype=np.int64)
    if cfg.method == "majority_vote":
        weights = np.array([cfg.source_weights.get(s, 1.0) for s in sources])  # type: ignore[call-overload]
        labels, conf = weighted_vote(allv, k=k, weights=weights)
        accuracies = {s: 1.0 for s in sources}
    elif len(allv):
        model = DawidSkene(k=k).fit(allv)
        proba = model.predict_proba(allv)
        labels = proba.argmax(axis=1)
        conf = proba.max(axis=1)
        accuracies = dict(zip(sources, (float(a) for a in model.function_accuracies()), strict=True))
    else:
        labels, conf = np.zeros(0, dtype=np.int64), np.zeros(0)
        accuracies = {s: 1.0 for s in sources}
    out = []
    offset = 0
    for n, p in zip(lengths, proposals, strict=True):
        lab = labels[offset : offset + n].copy()
        cf = conf[offset : offset + n]
        abstained = (lab == ABSTAIN) | (cf < cfg.min_confidence)
        spans = _decode(lab, p, types, abstained)
        out.append(DocLabels(spans=spans, confidence=cf, abstained=abstained))
        offset += n
    return out, accuracies
