"""Load the base encoder as a sequence classifier and wrap it with a peft LoRA adapter.

The adapter goes on the attention query/value projections (named differently per architecture);
the classification head (and BERT's pooler) is trained in full via `modules_to_save`.
"""

from __future__ import annotations

import logging
from typing import Any

from newsml_pipeline.core.model_paths import ModelNotFoundError, resolve_model

logger = logging.getLogger(__name__)

# model_type -> attention projections that get LoRA matrices.
TARGET_MODULES: dict[str, list[str]] = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "camembert": ["query", "value"],
    "electra": ["query", "value"],
    "albert": ["query", "value"],
    "distilbert": ["q_lin", "v_lin"],
    "deberta": ["in_proj"],
    "deberta-v2": ["query_proj", "value_proj"],
    "mpnet": ["q", "v"],
    "modernbert": ["Wqkv"],
}
# Head modules trained in full besides peft's default classifier/score: a pooler that feeds the
# head (BERT) was pretrained for another objective, so it must adapt too.
_EXTRA_HEAD_MODULES: dict[str, list[str]] = {"bert": ["pooler"], "albert": ["pooler"]}


ALL_LINEAR = "all-linear"


def lora_target_modules(model_type: str, override: list[str] | None = None) -> list[str] | str:
    """Configured target modules, else the known ones for `model_type`; a clear error otherwise.
    `["all-linear"]` is peft's shorthand for every linear layer but the output head."""
    if override == [ALL_LINEAR]:
        return ALL_LINEAR
    if override:
        return list(override)
    if model_type in TARGET_MODULES:
        return list(TARGET_MODULES[model_type])
    raise ValueError(
        f"no default LoRA target modules for model type {model_type!r} (known: {sorted(TARGET_MODULES)}); "
        "set training.lora.target_modules to the names of its attention projection layers"
    )


def load_base_classifier(base_model: str | None, *, labels: list[str]) -> tuple[Any, Any]:
    """(model, tokenizer) for `base_model` with a fresh head of len(labels) outputs.

    Raises ModelNotFoundError when the model is neither a local dir, the packaged MiniLM, nor
    downloadable.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model(base_model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
            ignore_mismatched_sizes=True,
        )
    except (OSError, ValueError) as e:
        raise ModelNotFoundError(
            f"cannot load training.base_model={base_model!r} (resolved to {path!r}): {e}. Use a local "
            "model directory, null for the packaged all-MiniLM-L6-v2, or a hub name where the hub is reachable."
        ) from e
    if tokenizer.pad_token is None:
        raise ModelNotFoundError(f"the tokenizer of {path!r} has no pad token; batches cannot be padded")
    logger.info(
        "loaded base model %s (%s, %.1fM parameters)",
        path,
        model.config.model_type,
        model.num_parameters() / 1e6,
    )
    return model, tokenizer


def apply_lora(
    model: Any,
    *,
    r: int,
    alpha: int,
    dropout: float,
    target_modules: list[str] | None,
    top_layers: int | None = None,
) -> Any:
    """Wrap `model` in a peft LoRA adapter (SEQ_CLS task: the head stays fully trainable).

    `top_layers` = N adapts only the last N transformer layers: backpropagation then stops at the
    lowest adapted layer, which saves the backward pass through the layers below.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    model_type = model.config.model_type
    targets = lora_target_modules(model_type, target_modules)
    extra = [m for m in _EXTRA_HEAD_MODULES.get(model_type, []) if _has_module(model, m)]
    layers = None
    if top_layers is not None:
        n = int(getattr(model.config, "num_hidden_layers", 0) or 0)
        if not n:
            raise ValueError(
                f"training.lora.top_layers needs a model config with num_hidden_layers; "
                f"{model_type!r} has none (set top_layers: null)"
            )
        layers = list(range(max(n - top_layers, 0), n))
    cfg = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        modules_to_save=extra or None,
        layers_to_transform=layers,
    )
    try:
        peft_model = get_peft_model(model, cfg)
    except ValueError as e:
        raise ValueError(
            f"LoRA target modules {targets} do not fit model type {model_type!r}: {e}. "
            "Set training.lora.target_modules to its attention projection names."
        ) from e
    trainable, total = count_parameters(peft_model)
    logger.info(
        "LoRA r=%d on %s of layers %s (+ head %s): %d of %d parameters trainable",
        r,
        targets,
        "all" if layers is None else layers,
        extra,
        trainable,
        total,
    )
    return peft_model


def _has_module(model: Any, name: str) -> bool:
    return any(n.split(".")[-1] == name for n, _ in model.named_modules())


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
