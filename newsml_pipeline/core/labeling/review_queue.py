"""Which articles are most worth a person's minute: uncertainty, diversity, classes that need gold.

Active learning for the labelling page (`review_queue` asset). A label is worth most where the
model is unsure (uncertainty = 1 − the top-class confidence of the champion, else of the label
model; an abstained article counts as fully uncertain), on an article unlike the others already
picked (diversity: k-means over the sentence embeddings the labeller uses, one pick per cluster),
and in a class whose val/test still lacks trusted labels (coverage: `needs.trusted_labels_needed`).

Greedy selection: clusters are visited by their most uncertain member; each contributes the
member that maximises uncertainty + `coverage_weight` × (its suggested class still needs labels),
and a pick uses up one unit of its class's need. Articles that already carry a trusted label are
never candidates (the caller leaves them out).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import polars as pl

log = logging.getLogger(__name__)

QUEUE_SCHEMA: dict[str, pl.DataType] = {
    "article_id": pl.String(),
    "partition_date": pl.Date(),
    "title": pl.String(),
    "lead": pl.String(),
    "url": pl.String(),
    "suggested_label": pl.String(),
    "confidence": pl.Float64(),
    "uncertainty": pl.Float64(),
    "cluster": pl.Int64(),
    "reason": pl.String(),
    "rank": pl.Int64(),
}
CANDIDATE_COLUMNS = ("article_id", "partition_date", "title", "text", "url", "suggested_label", "confidence")


def lead_of(text: str | None, max_chars: int = 400) -> str:
    """The first paragraph (or the first `max_chars`), what a person reads before deciding."""
    text = (text or "").strip()
    first = text.split("\n", 1)[0].strip() or text
    return first if len(first) <= max_chars else first[: max_chars - 1].rstrip() + "…"


def kmeans_clusters(embeddings: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """Cluster ids (n,) of L2-normalised embeddings into k groups (k-means, seeded)."""
    from sklearn.cluster import KMeans

    n = embeddings.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k = max(1, min(k, n))
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    model = KMeans(n_clusters=k, n_init=3, random_state=seed)
    return model.fit_predict(embeddings).astype(np.int64)


def select_for_review(
    candidates: pl.DataFrame,
    embeddings: np.ndarray,
    *,
    budget: int,
    need: Mapping[str, int],
    coverage_weight: float = 0.5,
    seed: int = 0,
) -> pl.DataFrame:
    """Up to `budget` rows of `candidates` in QUEUE_SCHEMA, rank 1 first.

    candidates: CANDIDATE_COLUMNS, one row per unlabelled article; embeddings: (n, d) for them in
    the same order; need: trusted labels each class still needs (0 = enough).
    """
    missing = [c for c in CANDIDATE_COLUMNS if c not in candidates.columns]
    if missing:
        raise ValueError(f"select_for_review: candidates lack columns {missing}")
    if embeddings.shape[0] != candidates.height:
        raise ValueError(f"{embeddings.shape[0]} embeddings for {candidates.height} candidates")
    if budget < 1 or candidates.is_empty():
        return pl.DataFrame(schema=QUEUE_SCHEMA)
    conf = candidates["confidence"].cast(pl.Float64).to_numpy()
    uncertainty = np.where(np.isnan(conf), 1.0, 1.0 - np.nan_to_num(conf, nan=0.0))
    clusters = kmeans_clusters(embeddings, budget, seed=seed)
    suggested = candidates["suggested_label"].cast(pl.String).to_list()
    remaining = {c: int(n) for c, n in need.items()}
    members: dict[int, list[int]] = {}
    for i, c in enumerate(clusters.tolist()):
        members.setdefault(c, []).append(i)
    order = sorted(members, key=lambda c: (-max(uncertainty[i] for i in members[c]), c))
    picks: list[tuple[int, int, str]] = []
    for c in order[:budget]:

        def score(i: int) -> float:
            return float(uncertainty[i]) + (
                coverage_weight if remaining.get(suggested[i] or "", 0) > 0 else 0.0
            )

        best = max(members[c], key=lambda i: (score(i), -i))
        lab = suggested[best]
        why = [f"confidence {conf[best]:.2f}" if not np.isnan(conf[best]) else "no label yet (abstained)"]
        why.append(f"cluster {len(picks) + 1} of {min(budget, len(members))}")
        if lab is not None and remaining.get(lab, 0) > 0:
            why.append(f"class {lab!r} needs {remaining[lab]} more trusted labels")
            remaining[lab] -= 1
        picks.append((best, c, "; ".join(why)))
    idx = [p[0] for p in picks]
    rows = candidates[idx]
    out = pl.DataFrame(
        {
            "article_id": rows["article_id"],
            "partition_date": rows["partition_date"].cast(pl.Date),
            "title": rows["title"],
            "lead": [lead_of(t) for t in rows["text"].to_list()],
            "url": rows["url"],
            "suggested_label": rows["suggested_label"],
            "confidence": rows["confidence"].cast(pl.Float64),
            "uncertainty": [float(uncertainty[i]) for i in idx],
            "cluster": [int(p[1]) for p in picks],
            "reason": [p[2] for p in picks],
            "rank": list(range(1, len(picks) + 1)),
        },
        schema=QUEUE_SCHEMA,
    )
    log.info(
        "review queue: %d of %d candidates in %d clusters; still needed per class after it: %s",
        out.height,
        candidates.height,
        len(members),
        remaining,
    )
    return out
