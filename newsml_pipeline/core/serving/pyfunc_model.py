"""The classifier as an MLflow pyfunc: what `models:/<name>@champion` serves.

Input: a DataFrame with column `text` (and optionally `title`). Output: a DataFrame with
`label`, `confidence` (probability of that label) and `scores` (JSON object label -> probability).
The model directory written by training travels as the artifact `model_dir`; the package's code
travels as the model's `code_paths` and its imports are pinned in requirements.txt (see
core/registry/model_logging.py), so the model loads in an environment without this project.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

MODEL_DIR_ARTIFACT = "model_dir"


def probabilities_to_frame(proba: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """[n, k] probabilities -> DataFrame(label, confidence, scores JSON)."""
    best = proba.argmax(axis=1) if len(proba) else np.zeros(0, dtype=int)
    return pd.DataFrame(
        {
            "label": [labels[i] for i in best],
            "confidence": [float(proba[r, i]) for r, i in enumerate(best)],
            "scores": [
                json.dumps({n: round(float(p), 6) for n, p in zip(labels, row, strict=True)}) for row in proba
            ],
        }
    )


class NewsTopicPyfunc(mlflow.pyfunc.PythonModel):
    """Wraps load_classifier/predict_proba so MLflow serving and the registry share one code path."""

    def __init__(self, *, max_length: int = 256, batch_size: int = 32) -> None:
        self.max_length = max_length
        self.batch_size = batch_size
        self.model: Any = None
        self.tokenizer: Any = None
        self.labels: list[str] = []

    def load_context(self, context: Any) -> None:
        from newsml_pipeline.core.training.model_io import load_classifier

        self.model, self.tokenizer, self.labels = load_classifier(context.artifacts[MODEL_DIR_ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from newsml_pipeline.core.training.inputs import format_input
        from newsml_pipeline.core.training.model_io import predict_proba

        if self.model is None:
            raise RuntimeError("NewsTopicPyfunc.predict called before load_context")
        if isinstance(model_input, dict):
            model_input = pd.DataFrame(model_input)
        if not isinstance(model_input, pd.DataFrame) or "text" not in model_input.columns:
            raise ValueError(
                f"input must be a DataFrame with a 'text' column (optional 'title'); got "
                f"{type(model_input).__name__} with columns {list(getattr(model_input, 'columns', []))}"
            )
        titles = (
            model_input["title"] if "title" in model_input.columns else pd.Series([None] * len(model_input))
        )
        texts = [
            format_input(None if pd.isna(t) else str(t), None if pd.isna(x) else str(x))
            for t, x in zip(titles.tolist(), model_input["text"].tolist(), strict=True)
        ]
        empty = [i for i, t in enumerate(texts) if not t]
        if empty:
            raise ValueError(f"rows {empty[:10]} have neither text nor title")
        params = params or {}
        proba = predict_proba(
            self.model,
            self.tokenizer,
            texts,
            batch_size=int(params.get("batch_size", self.batch_size)),
            max_length=self.max_length,
        )
        return probabilities_to_frame(proba, self.labels)
