"""bench/learners.py: recipes are the shipped config plus their overrides, rows are summarised
per model, the results file carries what made it, and peft's all-linear LoRA recipe trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsml_pipeline.core.training.lora import (
    ALL_LINEAR,
    apply_lora,
    load_base_classifier,
    lora_target_modules,
)
from newsml_pipeline_tests.bench.bench_import import bench_module
from testkit.tiny_models import make_tiny_classifier_dir


@pytest.fixture(scope="module")
def learners():
    with bench_module("learners") as module:
        yield module


def test_recipes_override_the_shipped_config_and_keep_the_rest(learners) -> None:
    cfg = learners.recipe_config("lora_qv_top3", base_model="/m", epochs=2, seed=7)
    assert (cfg.lora.top_layers, cfg.learning_rate, cfg.full_finetune) == (3, 1e-3, False)
    assert (cfg.base_model, cfg.epochs, cfg.seed) == ("/m", 2, 7)
    assert cfg.lora.r == 16  # a nested override keeps the lora keys it does not name
    full = learners.recipe_config("full_ft_fp32", base_model=None, epochs=None, seed=0)
    assert (full.full_finetune, full.precision, full.learning_rate) == (True, "fp32", 5e-5)


def test_summary_is_mean_and_std_over_seeds(learners) -> None:
    rows = [
        {"model": "lora_qv", "test_macro_f1": 0.8, "train_seconds": 10.0},
        {"model": "lora_qv", "test_macro_f1": 0.9, "train_seconds": 30.0},
        {"model": "tfidf_logreg", "test_macro_f1": 0.7, "train_seconds": 1.0},
    ]
    s = learners.summarize({"c": {"rows": rows}})["c"]
    assert s["lora_qv"] == {"mean": 0.85, "std": 0.05, "n": 2, "train_seconds": 20.0, "device": None}
    assert s["tfidf_logreg"]["n"] == 1


def test_results_file_names_its_command_commit_and_cpu(learners, tmp_path: Path) -> None:
    res = learners.Results(tmp_path / "r.json", append=False)
    res.corpus("c", {"rows": 3, "auto_labels": {}, "label_seconds": 0.1, "data": {}})
    res.add("c", {"model": "zero_shot", "test_macro_f1": 0.5})
    out = json.loads((tmp_path / "r.json").read_text())
    assert out["command"].startswith("python ") and len(out["commit"].split("-")[0]) == 40
    assert isinstance(out["cpu_flags"], list) and "gpu" in out
    assert out["summary"]["c"]["zero_shot"]["mean"] == 0.5
    again = learners.Results(tmp_path / "r.json", append=True)  # --append keeps rows and history
    assert again.corpora["c"]["rows"] and again.earlier[0]["commit"] == out["commit"]


def test_all_linear_lora_adapts_every_linear_layer_of_the_encoder(tmp_path: Path) -> None:
    assert lora_target_modules("bert", [ALL_LINEAR]) == ALL_LINEAR
    base = make_tiny_classifier_dir(tmp_path, ["a", "b"])
    model, _ = load_base_classifier(str(base), labels=["a", "b"])
    qv = apply_lora(model, r=4, alpha=8, dropout=0.0, target_modules=None)
    qv_layers = {n for n, _ in qv.named_modules() if n.endswith("lora_A")}
    model, _ = load_base_classifier(str(base), labels=["a", "b"])
    lin = apply_lora(model, r=4, alpha=8, dropout=0.0, target_modules=[ALL_LINEAR])
    lin_layers = {n for n, _ in lin.named_modules() if n.endswith("lora_A")}
    assert qv_layers < lin_layers
    assert any(".intermediate.dense" in n for n in lin_layers)
    assert not any("classifier" in n for n in lin_layers)  # the head is trained in full, not adapted
