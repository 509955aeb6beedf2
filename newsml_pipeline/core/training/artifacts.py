"""Save a trained classifier: merged weights (safetensors) + tokenizer + label map + model card.

The merged model is what serving and evaluation load (no peft needed at inference); the bare
adapter is kept beside it because it is tiny and can be re-applied to the same base model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsml_pipeline.settings import TrainingConfig

if TYPE_CHECKING:
    from newsml_pipeline.core.training.fine_tune import TrainResult

logger = logging.getLogger(__name__)

LABEL_MAP_FILE = "label_map.json"
MODEL_CARD_FILE = "README.md"


def write_label_map(model_dir: Path, labels: list[str]) -> Path:
    """label_map.json: {"labels": [...], "id2label": {"0": ...}} in class-index order."""
    path = model_dir / LABEL_MAP_FILE
    path.write_text(
        json.dumps({"labels": list(labels), "id2label": {str(i): n for i, n in enumerate(labels)}}, indent=2),
        encoding="utf-8",
    )
    return path


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def model_card(result: TrainResult, *, training_cfg: TrainingConfig, data_window: str | None) -> str:
    """Markdown model card: what data (window, counts), which config, which metrics."""
    m = result.metrics
    lines = [
        "# newsml topic classifier",
        "",
        f"Base model: `{training_cfg.base_model or 'packaged all-MiniLM-L6-v2'}`; "
        f"{'full fine-tuning' if training_cfg.full_finetune else f'LoRA r={training_cfg.lora.r} merged into the base'}.",
        f"Labels: {', '.join(result.labels)}. Input: `title + blank line + text`, max {training_cfg.max_length} tokens.",
        "",
        "## Data",
        f"- window: {data_window or 'not given'}",
        f"- rows: train {result.n_train} (auto-labels), val {result.n_val}, test {result.n_test}",
        "",
        "| split | " + " | ".join(result.labels) + " |",
        "| --- | " + " | ".join("---" for _ in result.labels) + " |",
    ]
    for split, counts in result.counts.items():
        lines.append(f"| {split} | " + " | ".join(str(counts.get(n, 0)) for n in result.labels) + " |")
    lines += ["", "## Metrics (selected epoch)", "", "| metric | value |", "| --- | --- |"]
    for k, v in m.items():
        if k in ("history",) or isinstance(v, dict):
            continue
        lines.append(f"| {k} | {_fmt(v)} |")
    for split in ("val", "test"):
        per = m.get(f"{split}_per_class_f1")
        if per:
            lines.append(
                f"| {split} F1 per class | " + ", ".join(f"{n} {v:.3f}" for n, v in per.items()) + " |"
            )
    lines += [
        "",
        "## Training history",
        "",
        "| epoch | train_loss | val_loss | val_macro_f1 | val_accuracy |",
        "| --- | --- | --- | --- | --- |",
    ]
    for h in m.get("history", []):
        lines.append(
            f"| {h['epoch']:.2f} | {h['train_loss']:.4f} | {h['val_loss']:.4f} | {h['val_macro_f1']:.4f} | {h['val_accuracy']:.4f} |"
        )
    lines += [
        "",
        "## Run",
        f"- device: {result.device}; {result.train_seconds:.0f} s total, {result.seconds_per_epoch:.1f} s/epoch, "
        f"{result.samples_per_s:.1f} samples/s, peak memory {result.peak_memory_mb:.0f} MB",
        f"- epochs run {result.epochs_run:.2f}, best epoch {result.best_epoch}; trainable parameters "
        f"{result.trainable_parameters:,} of {result.total_parameters:,}",
        "",
        "## Config",
        "```json",
        json.dumps(training_cfg.model_dump(mode="json"), indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def save_classifier_artifacts(
    model: Any, tokenizer: Any, *, result: TrainResult, training_cfg: TrainingConfig, data_window: str | None
) -> None:
    """Write result.adapter_dir (LoRA only) and result.model_dir (merged) to disk."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        if result.adapter_dir is None:
            raise ValueError("a LoRA model needs an adapter_dir to save its adapter")
        result.adapter_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(result.adapter_dir)
        write_label_map(result.adapter_dir, result.labels)
        model = model.merge_and_unload()
    model = model.float().eval()
    model.config.id2label = dict(enumerate(result.labels))
    model.config.label2id = {n: i for i, n in enumerate(result.labels)}
    result.model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(result.model_dir, safe_serialization=True)
    tokenizer.save_pretrained(result.model_dir)
    write_label_map(result.model_dir, result.labels)
    (result.model_dir / MODEL_CARD_FILE).write_text(
        model_card(result, training_cfg=training_cfg, data_window=data_window), encoding="utf-8"
    )
    logger.info("saved merged model to %s", result.model_dir)
