"""How `serving.precision: auto` picks a precision: the evaluation's per-precision measurements.

The evaluation scores every precision of the candidate (torch fp32 / bf16, ONNX fp32 / int8) on
the gold test rows and stores macro-F1 and ms per article as tags of that model version:

    newsml.precision.<precision>.macro_f1      e.g. newsml.precision.onnx-int8.macro_f1 = 0.9412
    newsml.precision.<precision>.ms_per_article

The tags decide what is *allowed* (`allowed_precisions`: macro-F1 at most
`serving.auto_max_f1_loss` below torch fp32's); the speed tags are only a hint, because they were
measured on the machine that trained, not the one that serves. The serving process times the
allowed precisions its own hardware runs natively (`hardware_candidates`) on a probe batch
(core/serving/probe.py) and serves the fastest. A version without the tags (older, or evaluated
elsewhere) may use the torch precisions native to the device (fp32, bf16 / fp16 autocast), as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

TAG_PREFIX = "newsml.precision."
TAG_CHOSEN = "newsml.precision.auto"
REFERENCE = "fp32"
PRECISIONS = ("fp32", "bf16", "fp16", "onnx", "onnx-int8")
TORCH_PRECISIONS = ("fp32", "bf16", "fp16")


def needs_onnx_export(serving_precision: str) -> bool:
    """Whether a model served at `serving.precision` can use the ONNX files written at registration.

    auto may pick onnx / onnx-int8, so it needs them; a fixed torch precision never reads them, and
    the dynamo export costs seconds per retrain (more than the training itself on a small model)."""
    return serving_precision in ("auto", "onnx", "onnx-int8")


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


def hardware_candidates(
    *, device: str, native_bf16: bool, onnx_available: Iterable[str] = ()
) -> tuple[list[str], dict[str, str]]:
    """(precisions worth timing on this device, {precision: why not}).

    Emulated bf16 (a CPU without avx512_bf16 / AMX, a GPU before Ampere) is several times slower
    than fp32, so it is not timed at all; fp16 autocast is a GPU path; the ONNX files run on the
    CPU execution provider only, so on a GPU they would compete with the GPU's own fp32.
    """
    out, why_not = [REFERENCE], {}
    if native_bf16:
        out.append("bf16")
    else:
        why_not["bf16"] = f"no native bf16 on this {device}"
    if device == "cuda":
        out.append("fp16")
        for p in ("onnx", "onnx-int8"):
            why_not[p] = "ONNX runs on the CPU execution provider; this process serves on CUDA"
    else:
        why_not["fp16"] = "fp16 autocast is CUDA only"
        have = set(onnx_available)
        for p in ("onnx", "onnx-int8"):
            if p in have:
                out.append(p)
            else:
                why_not[p] = "no ONNX export in this model version"
    return out, why_not


def allowed_precisions(
    candidates: Iterable[str], measured: Mapping[str, Mapping[str, float]], *, max_f1_loss: float
) -> tuple[list[str], dict[str, str]]:
    """(the candidates the evaluation's quality rule allows, {precision: why not}).

    With the evaluation's tags: a precision is allowed when its macro-F1 on the gold rows is at
    least fp32's - max_f1_loss; one the evaluation did not score is not allowed (its quality is
    unknown). Without tags (no fp32 reference): the torch precisions only, as before the tags existed.
    """
    allowed, why_not = [], {}
    ref = measured.get(REFERENCE)
    for p in candidates:
        if p == REFERENCE:
            allowed.append(p)
        elif ref is None:
            if p in TORCH_PRECISIONS:
                allowed.append(p)
            else:
                why_not[p] = "this version has no per-precision evaluation tags"
        elif p not in measured:
            why_not[p] = "the evaluation did not score this precision"
        elif measured[p]["macro_f1"] < ref["macro_f1"] - max_f1_loss - 1e-12:
            why_not[p] = (
                f"macro-F1 {measured[p]['macro_f1']:.4f} < fp32 {ref['macro_f1']:.4f} - {max_f1_loss} "
                "(serving.auto_max_f1_loss)"
            )
        else:
            allowed.append(p)
    return allowed, why_not
