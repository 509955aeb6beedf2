"""The entity recognizer as an MLflow pyfunc (`models:/<entities.registered_model>@champion`).

Its own module so that mlflow and pandas load only where a model is logged or served, not with
the code location (newsml_pipeline_tests/test_import_cost.py).
"""

from __future__ import annotations

import json
from typing import Any

import mlflow.pyfunc
import pandas as pd

from newsml_pipeline.core.entities.model import load_recognizer
from newsml_pipeline.core.entities.registry import ARTIFACT, spans_json


class EntityPyfunc(mlflow.pyfunc.PythonModel):
    """`models:/<entities.registered_model>@champion` as a pyfunc (loads in a fresh interpreter)."""

    def load_context(self, context: Any) -> None:
        self.recognizer = load_recognizer(context.artifacts[ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        if isinstance(model_input, dict):
            model_input = pd.DataFrame(model_input)
        texts = [str(t) for t in model_input["text"].tolist()]
        spans = self.recognizer.predict(texts)
        return pd.DataFrame(
            {"entities": [json.dumps(spans_json(t, s)) for t, s in zip(texts, spans, strict=True)]}
        )
