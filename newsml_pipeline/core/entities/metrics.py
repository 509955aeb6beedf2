"""Strict span scores: a predicted entity counts only if its type, start and end all match a gold
one (CoNLL/seqeval "strict" exact match). Per type precision/recall/F1 and the micro average."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from newsml_pipeline.core.entities.spans import CharSpan


def _prf(tp: int, n_pred: int, n_gold: int) -> dict[str, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "support": float(n_gold), "predicted": float(n_pred)}


def span_scores(
    gold: Iterable[Iterable[CharSpan]], pred: Iterable[Iterable[CharSpan]], *, types: list[str]
) -> dict:
    """{"micro": {precision, recall, f1, support, predicted}, "per_type": {type: {...}}}.

    gold/pred: one collection of spans per text, aligned. Predicted spans of a label outside
    `types` are ignored (a model may know more labels than the user scores)."""
    tp: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    wanted = set(types)
    for g, p in zip(gold, pred, strict=True):
        gs = {s for s in g if s.label in wanted}
        ps = {s for s in p if s.label in wanted}
        for s in gs:
            n_gold[s.label] += 1
        for s in ps:
            n_pred[s.label] += 1
        for s in gs & ps:
            tp[s.label] += 1
    per_type = {t: _prf(tp[t], n_pred[t], n_gold[t]) for t in types}
    micro = _prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    return {"micro": micro, "per_type": per_type}
