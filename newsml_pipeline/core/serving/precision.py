"""How `serving.precision: auto` picks a precision: the evaluation's per-precision measurements.

The evaluation scores every precision of the candidate (torch fp32 / bf16, ONNX fp32 / int8) on
the gold test rows and stores macro-F1 and ms per article as tags of that model version:

    newsml.precision.<precision>.macro_f1      e.g. newsml.precision.onnx-int8.macro_f1 = 0.9412
    newsml.precision.<precision>.ms_per_article

The Predictor reads the champion's tags and applies `choose_precision` with its own
`serving.auto_max_f1_loss`: the fastest precision whose macro-F1 is at most that much below
torch fp32's. A version without the tags (older, or evaluated elsewhere) serves torch as before.
"""

from __future__ import annotations

from collections.abc import Mapping

TAG_PREFIX = "newsml.precision."
TAG_CHOSEN = "newsml.precision.auto"
REFERENCE = "fp32"
PRECISIONS = ("fp32", "bf16", "onnx", "onnx-int8")


def precision_tags(measured: Mapping[str, Mapping[str, float]]) -> dict[str, str]:
    """{precision: {macro_f1, ms_per_article}} -> model-version tags (strings)."""
    tags: dict[str, str] = {}
    for p, m in measured.items():
        if p not in PRECISIONS:
            raise ValueError(f"unknown precision {p!r}; expected one of {PRECISIONS}")
        tags[f"{TAG_PREFIX}{p}.macro_f1"] = f"{float(m['macro_f1']):.6f}"
        tags[f"{TAG_PREFIX}{p}.ms_per_article"] = f"{float(m['ms_per_article']):.4f}"
    return tags


def parse_precision_tags(tags: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """Model-version tags -> {precision: {macro_f1, ms_per_article}} (only complete entries)."""
    out: dict[str, dict[str, float]] = {}
    for p in PRECISIONS:
        f1, ms = tags.get(f"{TAG_PREFIX}{p}.macro_f1"), tags.get(f"{TAG_PREFIX}{p}.ms_per_article")
        if f1 is None or ms is None:
            continue
        try:
            out[p] = {"macro_f1": float(f1), "ms_per_article": float(ms)}
        except ValueError as e:
            raise ValueError(f"model-version tag for precision {p} is not a number: {e}") from e
    return out


def choose_precision(measured: Mapping[str, Mapping[str, float]], *, max_f1_loss: float) -> str | None:
    """The fastest precision whose macro-F1 >= fp32's - max_f1_loss; None without an fp32 reference."""
    ref = measured.get(REFERENCE)
    if ref is None:
        return None
    floor = ref["macro_f1"] - max_f1_loss - 1e-12
    ok = [
        (m["ms_per_article"], PRECISIONS.index(p), p) for p, m in measured.items() if m["macro_f1"] >= floor
    ]
    return min(ok)[2]  # fp32 itself always qualifies
