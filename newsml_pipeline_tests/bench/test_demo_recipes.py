"""bench/demo_recipes.py: each recipe is a valid override of the demo's training section."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsml_pipeline.newsroom import demo
from newsml_pipeline.settings import NewsmlConfig
from newsml_pipeline_tests.bench.bench_import import bench_module


@pytest.fixture
def recipes():  # noqa: ANN201
    with bench_module("demo_recipes") as module:
        yield module


def test_deep_merge_overrides_nested_keys_and_keeps_the_rest() -> None:
    base = {"epochs": 5, "lora": {"r": 16, "top_layers": 3}, "learning_rate": 1e-3}
    out = demo.deep_merge(base, {"lora": {"top_layers": None}, "epochs": 8})
    assert out == {"epochs": 8, "lora": {"r": 16, "top_layers": None}, "learning_rate": 1e-3}
    assert base["lora"]["top_layers"] == 3  # the base is not changed


class _Site:
    sections: list[str] = []

    def feed_url(self, section: str) -> str:
        return section


def test_every_recipe_validates_over_the_demo_config(recipes, tmp_path: Path) -> None:
    raw = demo.demo_config(tmp_path, _Site(), demo.DemoOptions())
    cfg = NewsmlConfig.model_validate(raw)
    for name, over in recipes.RECIPES.items():
        training = demo.deep_merge(cfg.training.model_dump(), over)
        got = NewsmlConfig.model_validate(cfg.model_dump() | {"training": training}).training
        assert got.model_dump() == training, name
    # the demo's shipped recipe is the one named "demo": no override
    assert recipes.RECIPES["demo"] == {}
    assert cfg.training.lora.top_layers is None
