"""A separable toy split frame: each class has its own vocabulary, so a tiny model can learn it."""

from __future__ import annotations

import random

import polars as pl

TOY_LABELS = ["sport", "tech", "politics"]
_WORDS = {
    "sport": ["match", "team", "player", "league", "cup", "coach", "season", "football"],
    "tech": ["software", "computer", "internet", "phone", "mobile", "digital", "device", "broadband"],
    "politics": ["government", "minister", "election", "party", "parliament", "vote", "policy", "law"],
}
_FILLER = ["the", "a", "of", "and", "in", "was", "for", "on", "with"]


def toy_frame(
    n_per_class: int = 40, *, seed: int = 0, labels: list[str] | None = None, signal: float = 0.8
) -> pl.DataFrame:
    """article_id, split (70/15/15 per class), label, title, text for len(labels) separable classes."""
    labels = labels or TOY_LABELS
    rng = random.Random(seed)
    rows = []
    for label in labels:
        words = _WORDS[label]
        for i in range(n_per_class):
            n = rng.randint(6, 30)
            text = " ".join(
                rng.choice(words) if rng.random() < signal else rng.choice(_FILLER) for _ in range(n)
            )
            split = "train" if i < 0.7 * n_per_class else ("val" if i < 0.85 * n_per_class else "test")
            rows.append(
                {
                    "article_id": f"{label}-{i:03d}",
                    "split": split,
                    "label": label,
                    "title": f"{rng.choice(words)} news",
                    "text": text,
                }
            )
    return pl.DataFrame(rows)
