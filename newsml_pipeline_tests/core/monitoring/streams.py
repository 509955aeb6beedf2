"""Seeded synthetic scored streams (stdlib `random`, whose sequence is stable across versions)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import polars as pl

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def scored_stream(
    n: int,
    *,
    seed: int,
    shift_at: int | None = None,
    error_before: float = 0.10,
    error_after: float = 0.30,
    conf_before: tuple[float, float] = (8.0, 2.0),
    conf_after: tuple[float, float] = (5.0, 3.0),
    start: int = 0,
    model_version: str = "1",
    abstain_every: int = 0,
    no_fit_before: float | None = None,
    no_fit_after: float | None = None,
) -> pl.DataFrame:
    """n scored rows: confidence ~ Beta(conf_*), disagreement ~ Bernoulli(error_*), changing at shift_at.

    Rows are one second apart from T0 + start seconds; article ids are zero-padded indexes.
    abstain_every=k leaves the auto-label null on every k-th row.
    no_fit_before / no_fit_after: share of rows no class fits (class_fit uniform in [0, 0.12)
    rather than [0.12, 0.5)); without them there is no class_fit column (and no extra draw).
    """
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        after = shift_at is not None and i >= shift_at
        a, b = conf_after if after else conf_before
        err = error_after if after else error_before
        wrong = rng.random() < err
        auto = None if abstain_every and i % abstain_every == 0 else ("politics" if wrong else "sport")
        row = {
            "article_id": f"a{start + i:08d}",
            "model_version": model_version,
            "label": "sport",
            "confidence": rng.betavariate(a, b),
            "auto_label": auto,
            "scored_at": T0 + timedelta(seconds=start + i),
        }
        if no_fit_before is not None:
            share = no_fit_after if after and no_fit_after is not None else no_fit_before
            no_fit = rng.random() < share
            row["class_fit"] = rng.uniform(0.0, 0.12) if no_fit else rng.uniform(0.12, 0.5)
        rows.append(row)
    return pl.DataFrame(
        rows,
        schema={
            "article_id": pl.String,
            "model_version": pl.String,
            "label": pl.String,
            "confidence": pl.Float64,
            "auto_label": pl.String,
            "scored_at": pl.Datetime("us", "UTC"),
            **({"class_fit": pl.Float64} if no_fit_before is not None else {}),
        },
    )
