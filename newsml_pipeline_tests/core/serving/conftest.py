"""A temp MLflow registry with two tiny model versions, shared by the serving tests of a module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from newsml_pipeline.settings import LabelsConfig, ServingConfig
from newsml_pipeline_tests.core.serving.registry_helpers import register_tiny_version, tracking_uri_for

LABELS = ["business", "entertainment", "politics", "sport", "tech"]
LABELS_CFG = LabelsConfig(
    categories=[{"name": n, "description": f"{n} news", "keywords": [n]} for n in LABELS]
)


class FixedFallback:
    """Test double for the auto-labeler fallback: uniform scores, fast (the real one loads spaCy)."""

    version = "auto-labeler"
    labels = LABELS

    def predict_proba(self, titles, texts):  # noqa: ANN001, ANN201
        return np.full((len(texts), len(LABELS)), 1.0 / len(LABELS))


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("registry")
    name = "tiny-news"
    v1 = register_tiny_version(root, name, LABELS, seed=1)
    v2 = register_tiny_version(root, name, LABELS, seed=2)
    return {"root": root, "uri": tracking_uri_for(root), "name": name, "versions": [v1, v2]}


def serving_cfg(**kw) -> ServingConfig:  # noqa: ANN003
    return ServingConfig(**{"reload_interval_s": 30.0, "batch_size": 4, **kw})


@pytest.fixture
def labels_cfg() -> LabelsConfig:
    return LABELS_CFG


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"
