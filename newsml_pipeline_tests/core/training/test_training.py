"""LoRA fine-tuning on a tiny random BERT: learning, artifacts, reload, resume, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from newsml_pipeline.core.model_paths import ModelNotFoundError
from newsml_pipeline.core.training.fine_tune import TrainResult, train_classifier
from newsml_pipeline.core.training.inputs import DatasetError, build_datasets, format_input
from newsml_pipeline.core.training.lora import apply_lora, load_base_classifier, lora_target_modules
from newsml_pipeline.core.training.model_io import load_classifier, predict_proba
from newsml_pipeline.settings import TrainingConfig
from newsml_pipeline_tests.core.training.toy_data import TOY_LABELS, toy_frame
from testkit.tiny_models import make_tiny_classifier_dir


def tiny_cfg(base: Path, **kw) -> TrainingConfig:
    opts = dict(
        base_model=str(base),
        epochs=8,
        batch_size=8,
        learning_rate=1e-2,
        max_length=64,
        early_stopping_patience=0,
        logging_steps=5,
        warmup_ratio=0.0,
    )
    opts.update(kw)
    return TrainingConfig(**opts)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_classifier_dir(tmp_path_factory.mktemp("base"), TOY_LABELS)


@pytest.fixture(scope="module")
def trained(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    out = tmp_path_factory.mktemp("run")
    return train_classifier(
        toy_frame(), labels=TOY_LABELS, training_cfg=tiny_cfg(tiny_base), output_dir=out, data_window="toy"
    )


def test_format_input_joins_title_and_text() -> None:
    assert format_input("Title", " body ") == "Title\n\nbody"
    assert format_input(None, "body") == "body"
    assert format_input("Title", None) == "Title"


def test_training_learns_a_separable_toy_set(trained: TrainResult) -> None:
    history = trained.metrics["history"]
    assert len(history) == 8
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.2
    assert trained.metrics["val_macro_f1"] >= 0.85
    assert trained.metrics["test_macro_f1"] >= 0.8
    assert trained.best_epoch is not None
    # the model kept (and scored) is the best val epoch's checkpoint, not the last epoch's
    best = max(history, key=lambda h: h["val_macro_f1"])
    assert trained.metrics["val_macro_f1"] == pytest.approx(best["val_macro_f1"], abs=1e-6)
    assert trained.best_epoch == next(
        h["epoch"] for h in history if h["val_macro_f1"] == best["val_macro_f1"]
    )
    assert trained.n_train == 84 and trained.n_val == 18 and trained.n_test == 18
    assert 0 < trained.trainable_parameters < trained.total_parameters
    assert trained.samples_per_s > 0 and trained.peak_memory_mb > 0


def test_artifacts_are_written(trained: TrainResult) -> None:
    files = {p.name for p in trained.model_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "label_map.json", "README.md"} <= files
    assert json.loads((trained.model_dir / "label_map.json").read_text())["labels"] == TOY_LABELS
    card = (trained.model_dir / "README.md").read_text()
    assert "window: toy" in card and "test_macro_f1" in card and "| train | 28 | 28 | 28 |" in card
    assert (trained.adapter_dir / "adapter_model.safetensors").exists()


def test_saved_model_reloads_with_the_same_predictions(trained: TrainResult) -> None:
    frame = toy_frame().filter(pl.col("split") == "test")
    texts = [format_input(t, x) for t, x in zip(frame["title"], frame["text"], strict=True)]
    model, tok, labels = load_classifier(trained.model_dir)
    assert labels == TOY_LABELS
    p1 = predict_proba(model, tok, texts, max_length=64, bf16=False)
    model2, tok2, _ = load_classifier(trained.model_dir)
    p2 = predict_proba(model2, tok2, texts, max_length=64, bf16=False, batch_size=3)
    assert p1.shape == (18, 3)
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p1, p2, atol=1e-5)
    acc = (p1.argmax(1) == np.array([TOY_LABELS.index(x) for x in frame["label"]])).mean()
    assert acc == pytest.approx(trained.metrics["test_accuracy"], abs=1 / 18 + 1e-9)
    # the bare adapter applied to the base model gives the merged model's predictions
    from peft import PeftModel

    base, _ = load_base_classifier(str(_tiny_base_of(trained)), labels=TOY_LABELS)
    adapted = PeftModel.from_pretrained(base, trained.adapter_dir).eval()
    p3 = predict_proba(adapted, tok, texts, max_length=64, bf16=False)
    np.testing.assert_allclose(p1, p3, atol=1e-4)


def _tiny_base_of(trained: TrainResult) -> Path:
    cfg = json.loads((trained.adapter_dir / "adapter_config.json").read_text())
    return Path(cfg["base_model_name_or_path"])


def test_predict_proba_keeps_input_order_and_handles_empty(trained: TrainResult) -> None:
    model, tok, _ = load_classifier(trained.model_dir)
    texts = ["match team player " * 20, "software", "government minister election vote"]
    p = predict_proba(model, tok, texts, max_length=64, bf16=False)
    single = np.vstack([predict_proba(model, tok, [t], max_length=64, bf16=False) for t in texts])
    np.testing.assert_allclose(p, single, atol=1e-5)
    assert predict_proba(model, tok, [], max_length=64).shape == (0, 3)
    with pytest.raises(TypeError):
        predict_proba(model, tok, "one string", max_length=64)


def test_resume_from_checkpoint(tiny_base: Path, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    class Crash(RuntimeError):
        pass

    class CrashAfterSecondSave(TrainerCallback):
        def on_save(self, args, state, control, **kw):  # noqa: ANN001
            if state.global_step >= 22:
                raise Crash("simulated crash")

    cfg = tiny_cfg(tiny_base, epochs=3)

    def crash() -> None:
        with pytest.raises(Crash):
            train_classifier(
                toy_frame(),
                labels=TOY_LABELS,
                training_cfg=cfg,
                output_dir=tmp_path,
                callbacks=[CrashAfterSecondSave()],
            )
        assert (tmp_path / "checkpoints" / "checkpoint-22").is_dir()

    crash()
    # other data -> the stale checkpoints are discarded, not resumed
    other = train_classifier(
        toy_frame(seed=1),
        labels=TOY_LABELS,
        training_cfg=cfg.model_copy(update={"epochs": 1}),
        output_dir=tmp_path,
    )
    assert other.resumed_from is None
    crash()
    result = train_classifier(toy_frame(), labels=TOY_LABELS, training_cfg=cfg, output_dir=tmp_path)
    assert result.resumed_from is not None and result.resumed_from.endswith("checkpoint-22")
    assert result.epochs_run == 3.0
    # the resumed run only trained the remaining epoch; history has that epoch's evaluation
    assert [h["epoch"] for h in result.metrics["history"]] == [3.0]
    assert result.model_dir.joinpath("model.safetensors").exists()
    assert not (tmp_path / "checkpoints").exists()  # a finished training leaves no checkpoints


def test_class_absent_from_train_is_a_clear_error(tiny_base: Path, tmp_path: Path) -> None:
    frame = toy_frame().filter(~((pl.col("label") == "tech") & (pl.col("split") == "train")))
    with pytest.raises(DatasetError, match=r"classes \['tech'\] have no rows in the train split"):
        train_classifier(frame, labels=TOY_LABELS, training_cfg=tiny_cfg(tiny_base), output_dir=tmp_path)


def test_bad_frames_are_clear_errors(tiny_base: Path) -> None:
    _, tok = load_base_classifier(str(tiny_base), labels=TOY_LABELS)
    frame = toy_frame()
    with pytest.raises(DatasetError, match="lacks columns"):
        build_datasets(frame.drop("text"), labels=TOY_LABELS, tokenizer=tok, max_length=32)
    with pytest.raises(DatasetError, match="not in the configured categories"):
        build_datasets(frame, labels=["sport", "tech"], tokenizer=tok, max_length=32)
    with pytest.raises(DatasetError, match="no label"):
        build_datasets(
            frame.with_columns(
                pl.when(pl.col("article_id") == "tech-000")
                .then(None)
                .otherwise(pl.col("label"))
                .alias("label")
            ),
            labels=TOY_LABELS,
            tokenizer=tok,
            max_length=32,
        )
    with pytest.raises(DatasetError, match="val split is empty"):
        build_datasets(
            frame.filter(pl.col("split") != "val"), labels=TOY_LABELS, tokenizer=tok, max_length=32
        )
    ds = build_datasets(frame, labels=TOY_LABELS, tokenizer=tok, max_length=32)
    assert {k: len(v) for k, v in ds.items()} == {"train": 84, "val": 18, "test": 18}
    assert max(ds["train"]["length"]) <= 32


@pytest.mark.parametrize("name", ["/nonexistent/model-dir", "no-such-org/no-such-model"])
def test_missing_or_unknown_base_model_is_a_clear_error(name: str, newsml_home: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no-such|nonexistent"):
        train_classifier(
            toy_frame(), labels=TOY_LABELS, training_cfg=TrainingConfig(base_model=name), output_dir=tmp_path
        )


def test_target_modules_per_architecture() -> None:
    assert lora_target_modules("bert") == ["query", "value"]
    assert lora_target_modules("distilbert") == ["q_lin", "v_lin"]
    assert lora_target_modules("deberta-v2") == ["query_proj", "value_proj"]
    assert lora_target_modules("weird", ["a"]) == ["a"]
    with pytest.raises(ValueError, match="training.lora.target_modules"):
        lora_target_modules("weird")


def test_wrong_target_modules_are_a_clear_error(tiny_base: Path) -> None:
    model, _ = load_base_classifier(str(tiny_base), labels=TOY_LABELS)
    with pytest.raises(ValueError, match="training.lora.target_modules"):
        apply_lora(model, r=4, alpha=8, dropout=0.0, target_modules=["no_such_layer"])


def test_full_finetune_trains_every_parameter(tiny_base: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(tiny_base, full_finetune=True, epochs=2, learning_rate=2e-3)
    result = train_classifier(toy_frame(), labels=TOY_LABELS, training_cfg=cfg, output_dir=tmp_path)
    assert result.adapter_dir is None
    assert result.trainable_parameters == result.total_parameters
    assert (result.model_dir / "model.safetensors").exists()


def test_choose_device_resolves_auto_and_rejects_impossible(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from newsml_pipeline.core.training import device as dev

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)
    # auto trains in fp32 on every CPU, native bf16 or not (measured: quality over a 1.1-1.5x speed-up)
    assert dev.choose_device("auto", "auto", threads=2) == dev.DeviceChoice("cpu", "fp32", 2)
    assert dev.choose_device("cpu", "bf16", threads=2) == dev.DeviceChoice("cpu", "bf16", 2)
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: False)
    assert dev.choose_device("auto", "auto").precision == "fp32"
    with pytest.raises(ValueError, match="no CUDA device"):
        dev.choose_device("cuda", "auto")
    with pytest.raises(ValueError, match="fp16 training is not supported on CPU"):
        dev.choose_device("cpu", "fp16")


def test_cuda_precision_uses_native_bf16_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 only where the GPU has it natively; emulated bf16 (e.g. a T4) gets fp16."""
    import torch

    from newsml_pipeline.core.training import device as dev

    asked: list[object] = []

    def bf16(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return including_emulation  # emulated yes, native no: a pre-Ampere GPU

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", bf16)
    assert dev.choose_device("auto", "auto", threads=1) == dev.DeviceChoice("cuda", "fp16", 1)
    assert asked == [False]
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert dev.choose_device("auto", "auto", threads=1) == dev.DeviceChoice("cuda", "bf16", 1)
    assert dev.choose_device("cuda", "fp32", threads=1).precision == "fp32"


def test_class_weights_are_inverse_frequency() -> None:
    from newsml_pipeline.core.training.fine_tune import class_weights

    w = class_weights([0, 0, 0, 1], 2)
    assert w.tolist() == pytest.approx([4 / 6, 2.0])
    with pytest.raises(ValueError, match="zero"):
        class_weights([0, 0], 2)


def test_top_layers_adapts_only_the_last_layers(tiny_base: Path) -> None:
    import torch

    model, tok = load_base_classifier(str(tiny_base), labels=TOY_LABELS)  # 2 layers
    peft_model = apply_lora(model, r=4, alpha=8, dropout=0.0, target_modules=None, top_layers=1)
    lora_names = [n for n, p in peft_model.named_parameters() if "lora_" in n and p.requires_grad]
    assert lora_names and all(".layer.1." in n for n in lora_names)
    batch = tok(["markets rally", "cup final"], return_tensors="pt", padding=True)
    out = peft_model(**batch, labels=torch.tensor([0, 1]))
    out.loss.backward()
    # the lower layer stays frozen (the time saved by skipping its backward is in bench/train.py)
    lower = [p for n, p in peft_model.named_parameters() if ".layer.0." in n]
    assert lower and all(p.grad is None for p in lower)
    assert all(p.grad is not None for n, p in peft_model.named_parameters() if n in lora_names)
