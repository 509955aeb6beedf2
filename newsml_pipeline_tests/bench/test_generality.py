"""bench/generality.py's labelling part on a small sample of each benchmark corpus: the schemas
load with their user-style names, gold labels map onto them, and every function and label-model
variant is scored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from newsml_pipeline_tests.bench.bench_import import BENCH, bench_module


@pytest.fixture(scope="module")
def generality(corpora):
    with bench_module("generality") as module:
        yield module


def test_first_sentence(generality) -> None:
    assert generality.first_sentence("Shares rose 5%. The firm said so.") == "Shares rose 5%."
    assert generality.first_sentence("U.S. shares rose on Monday") == "U.S. shares rose on Monday"
    assert generality.first_sentence("") == ""


@pytest.mark.parametrize("corpus", ["bbc_short", "reuters"])
def test_labelling_part_on_a_small_sample(generality, corpus: str) -> None:
    raw, labels_cfg, schema = generality.load_corpus(corpus, limit=64)
    names = labels_cfg.names
    assert raw.height >= 40 and set(raw["gold_label"]) == set(names)
    assert [c["name"] for c in schema["categories"]] == names
    if corpus == "bbc_short":
        assert "Sci/Tech" in names and raw["text"].str.len_chars().max() < 600
    section, labels = generality.run_labelling(raw, labels_cfg)
    assert set(section["functions"]) == set(generality.ALL_FUNCTIONS)
    assert (
        "shipped_default" in section["label_model"]
        and "shipped_default (majority vote)" in section["label_model"]
    )
    for s in [*section["functions"].values(), *section["label_model"].values()]:
        assert 0.0 <= s["coverage"] <= 1.0 and 0.0 <= s["macro_f1"] <= 1.0
    lm = section["label_model"]["shipped_default"]
    assert lm["coverage"] >= 0.7 and lm["accuracy_on_covered"] >= 0.5, section
    assert labels["shipped_default"].shape == (raw.height,)
    assert set(np.unique(labels["shipped_default"])) <= set(range(-1, len(names)))
    assert set(section["expanded_keywords"]) == set(names)


def test_an_interrupted_training_keeps_the_seeds_it_finished(generality, monkeypatch, tmp_path: Path) -> None:
    """A seed is saved when it ends: a run stopped during its second training keeps the first."""
    import train

    raw, labels_cfg, _ = generality.load_corpus("bbc", limit=100)
    names = labels_cfg.names
    labels = np.array([names.index(g) for g in raw["gold_label"]])  # gold stands in for auto-labels

    def transformer(frame, names, *, name: str, cfg, out_dir: Path) -> dict:  # the ~20-min training
        if cfg.seed == 1:
            raise RuntimeError("stopped during seed 1")
        return {
            "test_macro_f1": 0.5,
            "test_accuracy": 0.6,
            "seconds_per_epoch": 1.0,
            "epochs_run": 1.0,
            "best_epoch": 1.0,
            "device": "cpu",
        }

    monkeypatch.setattr(train, "run_transformer", transformer)
    out = tmp_path / "generality.json"
    payload = {"corpora": {"bbc": {"labelling": {}}}}
    with pytest.raises(RuntimeError, match="seed 1"):
        generality.run_training(
            raw,
            labels,
            labels_cfg,
            seeds=[0, 1],
            epochs=1,
            out_dir=tmp_path,
            limit_train=None,
            on_seed=lambda tr: generality._save_training(out, payload, "bbc", tr),
        )
    saved = json.loads(out.read_text())["corpora"]["bbc"]["training"]
    assert [r["seed"] for r in saved["runs"]["lora"]] == [0]
    assert saved["test_macro_f1"]["lora"] == {"mean": 0.5, "std": 0.0, "n": 1}
    assert saved["test_macro_f1"]["tfidf_logreg"]["n"] == 1


def _labelling_section(label_model_macro_f1: float) -> dict:
    scores = {"coverage": 0.9, "accuracy_on_covered": 0.8, "macro_f1": label_model_macro_f1}
    return {
        "rows": 40,
        "functions": {"keywords": scores},
        "label_model": {"shipped_default": {"functions": ["keywords"], **scores}},
    }


@pytest.mark.parametrize("same_labels", [True, False])
def test_append_keeps_earlier_seeds_only_under_the_same_labels(
    generality, monkeypatch, tmp_path: Path, same_labels: bool
) -> None:
    """`--append` mixes seeds into one mean only when the labelling that trained them is the
    same; otherwise it stops with a clear error and leaves the earlier results file as it was."""
    out = tmp_path / "generality.json"
    earlier_training = {"runs": {"lora": [{"seed": 0, "test_macro_f1": 0.97}]}}
    out.write_text(
        json.dumps(
            {
                "command": "python bench/generality.py --corpora bbc --seeds 1",
                "corpora": {"bbc": {"labelling": _labelling_section(0.9451), "training": earlier_training}},
            }
        )
    )
    stored = out.read_bytes()
    now = _labelling_section(0.9451 if same_labels else 0.9450)  # one row voted differently
    monkeypatch.setattr(generality, "run_labelling", lambda raw, cfg: (now, {}))
    argv = ["generality.py", "--corpora", "bbc", "--limit", "40", "--skip-training", "--append"]
    monkeypatch.setattr(sys, "argv", [*argv, "--json", str(out)])
    if same_labels:
        generality.main()
        saved = json.loads(out.read_text())
        assert saved["corpora"]["bbc"]["training"] == earlier_training
        assert saved["command"].startswith("python bench/generality.py --corpora bbc --seeds 1 ; ")
    else:
        with pytest.raises(SystemExit, match="labels differ from the earlier run"):
            generality.main()
        assert out.read_bytes() == stored


def test_benchmarks_read_the_shared_folder_named_by_newsml_shared(tmp_path: Path) -> None:
    """A checkout that is not beside `shared/` benchmarks the data NEWSML_SHARED names, as the
    tests' fixture does, rather than a path next to the clone."""
    env = {**os.environ, "NEWSML_SHARED": str(tmp_path)}
    code = "from testkit import corpora; print(corpora.CORPORA); print(corpora.BBC_CORPUS)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=BENCH.parent, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [str(tmp_path / "corpora"), str(tmp_path / "corpora" / "bbc_news" / "bbc_news.jsonl.gz")]
