"""Load a saved classifier directory and score texts fast (serving, evaluation, scoring).

`predict_proba` tokenizes once, sorts texts by token length and pads per batch, so a batch of
short texts is not padded to the longest article; inference runs under `torch.inference_mode`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from newsml_pipeline.core.training.artifacts import LABEL_MAP_FILE
from newsml_pipeline.core.training.device import available_cores, cpu_has_native_bf16, cuda_has_native_bf16

logger = logging.getLogger(__name__)


class ModelDirError(FileNotFoundError):
    """A classifier directory is missing or lacks what loading needs."""


def read_labels(model_dir: Path, config: Any) -> list[str]:
    """Class names in index order: label_map.json, else a non-default config.id2label."""
    path = model_dir / LABEL_MAP_FILE
    if path.exists():
        labels = json.loads(path.read_text(encoding="utf-8"))["labels"]
    else:
        id2label = {int(k): v for k, v in (config.id2label or {}).items()}
        labels = [id2label[i] for i in sorted(id2label)]
        if not labels or all(n == f"LABEL_{i}" for i, n in enumerate(labels)):
            raise ModelDirError(f"{model_dir} has no {LABEL_MAP_FILE} and its config names no labels")
    if len(labels) != config.num_labels:
        raise ModelDirError(
            f"{model_dir}: {len(labels)} labels in the label map but the model has {config.num_labels} outputs"
        )
    return list(labels)


def load_classifier(model_dir: str | Path, *, device: str | None = None) -> tuple[Any, Any, list[str]]:
    """(model in eval mode, tokenizer, labels) from a directory written by train_classifier."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise ModelDirError(f"no classifier at {model_dir} (config.json missing)")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    labels = read_labels(model_dir, model.config)
    model.to(_device(device)).eval()
    return model, tokenizer, labels


def _device(device: str | None) -> str:
    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def predict_proba(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    *,
    batch_size: int = 32,
    max_length: int = 256,
    device: str | None = None,
    bf16: bool | None = None,
    fp16: bool = False,
) -> np.ndarray:
    """Class probabilities [n, k] (float32, rows in input order) for `texts`.

    bf16=None: bf16 autocast on CUDA with bf16 or a CPU with native bf16, fp32 otherwise.
    fp16=True: fp16 autocast instead (CUDA only: the GPUs without native bf16 have fast fp16).
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string")
    n_classes = model.config.num_labels
    if len(texts) == 0:
        return np.zeros((0, n_classes), dtype=np.float32)
    device = _device(device)
    if next(model.parameters()).device.type != torch.device(device).type:
        model.to(device)
    if fp16 and device != "cuda":
        raise ValueError(f"fp16 inference is CUDA only (device {device!r}); use bf16 or fp32")
    if bf16 is None:
        bf16 = not fp16 and (
            cuda_has_native_bf16() if device == "cuda" else (device == "cpu" and cpu_has_native_bf16())
        )
    half = torch.float16 if fp16 else torch.bfloat16
    if device == "cpu" and torch.get_num_threads() < available_cores():
        torch.set_num_threads(available_cores())
    clipped = [(t or "")[: max_length * 12] for t in texts]
    enc = tokenizer(clipped, truncation=True, max_length=max_length, padding=False)
    ids = enc["input_ids"]
    order = np.argsort([len(x) for x in ids], kind="stable")[::-1]
    out = np.empty((len(texts), n_classes), dtype=np.float32)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    with (
        torch.inference_mode(),
        torch.autocast(device_type=device if device != "mps" else "cpu", dtype=half, enabled=bf16 or fp16),
    ):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer.pad([{k: enc[k][i] for k in keys} for i in idx], return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(**batch).logits.float()
            out[idx] = torch.softmax(logits, dim=-1).cpu().numpy()
    return out
