"""bench/self_training.py's cached_train (shared by bench/active_learning.py) reuses an earlier
model only when data, config, the training/labelling code and the library versions are all the
same, and says so."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from newsml_pipeline.core.training.fine_tune import TrainResult
from newsml_pipeline.settings import DEFAULT_CONFIG_PATH, load_config

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def self_training() -> Iterator:
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("self_training")
    finally:
        sys.path.remove(str(BENCH))


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "article_id": ["a", "b", "c"],
            "split": ["train", "val", "test"],
            "label": ["x", "y", "x"],
            "gold_label": ["x", "y", "x"],
            "text": ["one", "two", "three"],
            "title": ["", "", ""],
        }
    )


def _fake_result(out: Path) -> TrainResult:
    return TrainResult(
        model_dir=out / "model",
        adapter_dir=None,
        labels=["x", "y"],
        metrics={"val_macro_f1": 0.5, "test_macro_f1": 0.5},
        train_seconds=1.0,
        seconds_per_epoch=1.0,
        samples_per_s=1.0,
        device="cpu",
        precision="fp32",
        peak_memory_mb=1.0,
        n_train=1,
        n_val=1,
        n_test=1,
        epochs_run=1.0,
        best_epoch=1.0,
        trainable_parameters=1,
        total_parameters=1,
    )


def test_cache_misses_when_code_or_library_versions_change(
    self_training, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    trained: list[Path] = []

    def fake_train(train, *, labels, training_cfg, output_dir, resume):
        trained.append(output_dir)
        return _fake_result(output_dir)

    monkeypatch.setattr(self_training, "train_classifier", fake_train)
    cfg = load_config(DEFAULT_CONFIG_PATH).training
    out = tmp_path / "run"

    def run() -> bool:
        _, reused = self_training.cached_train(_frame(), out, cfg, ["x", "y"])
        return reused

    assert run() is False and len(trained) == 1
    assert run() is True and len(trained) == 1  # same everything: reused, and it says so
    assert f"reused: the model trained earlier in {out}" in capsys.readouterr().out

    # Another library version (as after a reinstall): trained again, not reused.
    real = self_training.code_and_libraries()
    bumped = {**real, "libraries": {**real["libraries"], "transformers": "0.0.1"}}
    monkeypatch.setattr(self_training, "code_and_libraries", lambda: bumped)
    assert run() is False and len(trained) == 2
    assert run() is True and len(trained) == 2

    # Another version of the training code: the key reads the sources, so a changed file misses.
    code = tmp_path / "code" / "training"
    code.mkdir(parents=True)
    (code / "fine_tune.py").write_text("x = 1\n")
    monkeypatch.undo()  # the real code_and_libraries again, reading the sources of `code`
    monkeypatch.setattr(self_training, "train_classifier", fake_train)
    monkeypatch.setattr(self_training, "ROOT", tmp_path)
    monkeypatch.setattr(self_training, "CODE_DIRS", (code,))
    assert run() is False and len(trained) == 3
    assert run() is True and len(trained) == 3
    (code / "fine_tune.py").write_text("x = 2\n")
    assert run() is False and len(trained) == 4
