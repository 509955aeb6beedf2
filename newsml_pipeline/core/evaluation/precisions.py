"""Macro-F1 and speed of each serving precision of one model on the gold test rows.

What `serving.precision: auto` needs to pick a precision honestly: torch fp32 (the reference),
torch bf16 (where the hardware has native bf16), ONNX fp32 and ONNX int8 (where the model dir
holds the export) all score the same rows with the same input text; their macro-F1 and
milliseconds per article (batched, as the server batches) go to the model version's tags.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from newsml_pipeline.core.evaluation.metrics import score_predictions
from newsml_pipeline.core.serving.onnx_model import ONNX_PRECISIONS, OnnxBackend, onnx_path
from newsml_pipeline.core.serving.precision import REFERENCE

log = logging.getLogger(__name__)


def available_precisions(model_dir: str | Path, *, device: str | None = None) -> list[str]:
    """fp32 always; bf16 where native; onnx / onnx-int8 where the export exists (CPU only)."""
    from newsml_pipeline.core.training.device import cpu_has_native_bf16

    out = [REFERENCE]
    if (device in (None, "cpu") and cpu_has_native_bf16()) or device == "cuda":
        out.append("bf16")
    if device in (None, "cpu"):
        out += [p for p in ONNX_PRECISIONS if onnx_path(model_dir, p).exists()]
    return out


def _backend(model_dir: Path, precision: str, *, max_length: int, batch_size: int, device: str | None) -> Any:
    if precision in ONNX_PRECISIONS:
        return OnnxBackend(
            model_dir, version="eval", precision=precision, max_length=max_length, batch_size=batch_size
        )
    from newsml_pipeline.core.serving.predictor import TransformerBackend

    return TransformerBackend(
        model_dir,
        version="eval",
        max_length=max_length,
        batch_size=batch_size,
        device=device or "cpu",
        precision=precision,
    )


def measure_precisions(
    model_dir: str | Path,
    rows: pl.DataFrame,
    *,
    labels: list[str],
    max_length: int,
    batch_size: int,
    device: str | None = None,
    precisions: list[str] | None = None,
) -> dict[str, dict[str, float]]:
    """{precision: {macro_f1, ms_per_article, agreement_vs_fp32}} on `rows` (title, text, label).

    ms_per_article is measured after one warm-up batch, over all rows in `batch_size` batches.
    """
    model_dir = Path(model_dir)
    precisions = precisions or available_precisions(model_dir, device=device)
    if REFERENCE not in precisions:
        precisions = [REFERENCE, *precisions]
    gold = rows["label"].to_list()
    titles, texts = rows["title"].to_list(), rows["text"].to_list()
    out: dict[str, dict[str, float]] = {}
    reference_labels: list[str] | None = None
    for precision in precisions:
        backend = _backend(model_dir, precision, max_length=max_length, batch_size=batch_size, device=device)
        missing = sorted(set(labels) - set(backend.labels))
        if missing:
            raise ValueError(f"model at {model_dir} has no output for classes {missing}")
        backend.predict_proba(titles[:batch_size], texts[:batch_size])  # warm-up
        t0 = time.perf_counter()
        proba = np.asarray(backend.predict_proba(titles, texts), dtype=float)
        ms = (time.perf_counter() - t0) * 1000 / max(1, len(texts))
        proba = proba[:, [backend.labels.index(lbl) for lbl in labels]]
        predicted = [labels[i] for i in proba.argmax(axis=1)]
        scores = score_predictions(gold, predicted, labels=labels)
        if reference_labels is None:
            reference_labels = predicted
        agree = float(np.mean([a == b for a, b in zip(predicted, reference_labels, strict=True)]))
        out[precision] = {
            "macro_f1": float(scores.macro_f1),
            "ms_per_article": float(ms),
            "agreement_vs_fp32": agree,
        }
        log.info(
            "precision %s: macro-F1 %.4f, %.2f ms/article, agreement with fp32 %.3f",
            precision,
            scores.macro_f1,
            ms,
            agree,
        )
    return out
