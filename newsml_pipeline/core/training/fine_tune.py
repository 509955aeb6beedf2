"""Fine-tune the base encoder (LoRA or full) on the auto-labelled train split with transformers' Trainer.

Noise-robust by construction: model selection and early stopping use macro-F1 on the val split
(gold labels in the pipeline), the loss is class-weighted cross-entropy with label smoothing, and
the best epoch (not the last) is kept. Checkpoints go to `output_dir/checkpoints`; a rerun on
the same data and config after a crash resumes from the newest one, and a finished training
removes them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import polars as pl

from newsml_pipeline.core.evaluation.metrics import score_predictions
from newsml_pipeline.core.training.artifacts import save_classifier_artifacts
from newsml_pipeline.core.training.inputs import build_datasets, split_counts
from newsml_pipeline.core.training.lora import apply_lora, count_parameters, load_base_classifier
from newsml_pipeline.settings import TrainingConfig

if TYPE_CHECKING:  # torch (~3 s) is imported by the functions that train, not by the code location
    import torch

logger = logging.getLogger(__name__)


class RunLogger(Protocol):
    """Where per-epoch metrics go while training runs (MLflow in the pipeline)."""

    def log_metrics(self, metrics: dict[str, float], *, step: int) -> None: ...


@dataclass
class TrainResult:
    model_dir: Path  # merged model + tokenizer + label_map.json + README.md
    adapter_dir: Path | None  # bare LoRA adapter (None for full fine-tuning)
    labels: list[str]
    metrics: dict[str, Any]  # val_/test_ macro_f1, accuracy, per-class f1, history (per epoch)
    train_seconds: float  # wall time of the training loop, evaluation included
    seconds_per_epoch: float  # training only (evaluation excluded)
    samples_per_s: float  # training samples processed per second (evaluation excluded)
    device: str
    precision: str
    peak_memory_mb: float
    n_train: int
    n_val: int
    n_test: int
    epochs_run: float
    best_epoch: float | None
    trainable_parameters: int
    total_parameters: int
    resumed_from: str | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Flat JSON-able dict (paths as strings, history left out) for metadata and reports."""
        d = asdict(self)
        d["model_dir"] = str(self.model_dir)
        d["adapter_dir"] = str(self.adapter_dir) if self.adapter_dir else None
        d["metrics"] = {k: v for k, v in self.metrics.items() if k != "history"}
        return d


def classification_metrics(logits: np.ndarray, label_ids: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """macro_f1, accuracy and per-class F1 from logits [n, k] and gold ids [n], scored by the
    evaluation's own `score_predictions` so that training's val/test figures and the gate's agree."""
    pred = np.asarray(logits).argmax(axis=-1)
    scores = score_predictions(
        [labels[int(i)] for i in np.asarray(label_ids)], [labels[int(i)] for i in pred], labels=labels
    )
    return {
        "macro_f1": scores.macro_f1,
        "accuracy": scores.accuracy,
        "per_class_f1": {name: c.f1 for name, c in scores.per_class.items()},
    }


def class_weights(label_ids: list[int], n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights n / (k * n_c), mean 1 over a balanced set."""
    import torch

    counts = np.bincount(np.asarray(label_ids), minlength=n_classes).astype(np.float64)
    if (counts == 0).any():
        raise ValueError(f"class counts {counts.tolist()} contain zero; cannot weight an absent class")
    return torch.tensor(counts.sum() / (n_classes * counts), dtype=torch.float32)


def _loss_fn(weights: torch.Tensor | None, smoothing: float) -> Callable[..., torch.Tensor]:
    import torch

    def compute(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        w = weights.to(logits.device) if weights is not None else None
        loss = torch.nn.functional.cross_entropy(
            logits.float(), labels, weight=w, label_smoothing=smoothing, reduction="sum"
        )
        n = num_items_in_batch if num_items_in_batch is not None else labels.numel()
        return loss / n

    return compute


def training_fingerprint(frame: pl.DataFrame, labels: list[str], cfg: TrainingConfig) -> str:
    """16 hex chars hashing data + labels + config: a checkpoint is only resumed for the very same
    training. Callers key work dirs on it, so a retry of the same training finds its checkpoints."""
    h = hashlib.sha256()
    h.update(json.dumps({"labels": labels, "cfg": cfg.model_dump(mode="json")}, sort_keys=True).encode())
    for row in frame.select("article_id", "split", "label").sort("article_id").iter_rows():
        h.update("\x1f".join(str(v) for v in row).encode())
        h.update(b"\x1e")
    h.update(str(frame.select(pl.col("text").str.len_chars().sum()).item()).encode())
    return h.hexdigest()[:16]


def _prepare_checkpoint_dir(output_dir: Path, fingerprint: str, *, resume: bool) -> tuple[Path, str | None]:
    """The checkpoint dir and the checkpoint to resume (newest, same fingerprint) or None."""
    ckpt_dir = output_dir / "checkpoints"
    stamp = output_dir / "training_fingerprint.json"
    previous = json.loads(stamp.read_text())["fingerprint"] if stamp.exists() else None
    if ckpt_dir.exists() and (not resume or previous != fingerprint):
        logger.warning(
            "discarding checkpoints in %s (%s)",
            ckpt_dir,
            "resume disabled" if not resume else "they belong to another dataset or config",
        )
        shutil.rmtree(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"fingerprint": fingerprint}))
    found = sorted(ckpt_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    found = [p for p in found if (p / "trainer_state.json").exists()]
    return ckpt_dir, (str(found[-1]) if found else None)


def _callbacks(
    *,
    labels: list[str],
    history: list[dict[str, Any]],
    timing: dict[str, float],
    run_logger: RunLogger | None,
    batch_size: int,
    logging_steps: int,
) -> Any:
    from transformers import TrainerCallback

    class ProgressAndHistory(TrainerCallback):
        """Logs progress every `logging_steps` and collects per-epoch train loss + val metrics."""

        def __init__(self) -> None:
            self.losses: list[float] = []
            self.t_start = time.perf_counter()
            self.t_epoch_end: float | None = None

        def on_train_begin(self, args, state, control, **kw):  # noqa: ANN001
            self.t_start = time.perf_counter()
            self.step0 = state.global_step

        def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))
                done = state.global_step - self.step0
                elapsed = time.perf_counter() - self.t_start - timing["eval_seconds"]
                rate = done * batch_size / elapsed if elapsed > 0 else float("nan")
                eta = (state.max_steps - state.global_step) * batch_size / rate if rate > 0 else float("nan")
                logger.info(
                    "step %d/%d epoch %.2f loss %.4f lr %.2e | %.1f samples/s, ~%.0f s left",
                    state.global_step,
                    state.max_steps,
                    state.epoch or 0.0,
                    logs["loss"],
                    logs.get("learning_rate", float("nan")),
                    rate,
                    eta,
                )

        def on_epoch_end(self, args, state, control, **kw):  # noqa: ANN001
            self.t_epoch_end = time.perf_counter()

        def on_evaluate(self, args, state, control, metrics=None, **kw):  # noqa: ANN001
            if self.t_epoch_end is not None:
                timing["eval_seconds"] += time.perf_counter() - self.t_epoch_end
                self.t_epoch_end = None
            metrics = metrics or {}
            row = {
                "epoch": float(round(state.epoch or 0.0, 4)),
                "step": int(state.global_step),
                "train_loss": float(np.mean(self.losses)) if self.losses else float("nan"),
                "val_loss": float(metrics.get("eval_loss", float("nan"))),
                "val_macro_f1": float(metrics["eval_macro_f1"]),
                "val_accuracy": float(metrics["eval_accuracy"]),
            }
            self.losses = []
            history.append(row)
            logger.info(
                "epoch %.2f: train_loss %.4f val_loss %.4f val_macro_f1 %.4f val_accuracy %.4f",
                row["epoch"],
                row["train_loss"],
                row["val_loss"],
                row["val_macro_f1"],
                row["val_accuracy"],
            )
            if run_logger is not None:
                run_logger.log_metrics(
                    # epoch_ prefix: the un-prefixed names hold the selected (best) model's values
                    {
                        f"epoch_{k}": v
                        for k, v in row.items()
                        if k not in ("epoch", "step") and np.isfinite(v)
                    },
                    step=max(1, round(row["epoch"])),
                )

    return ProgressAndHistory()


def train_classifier(
    frame: pl.DataFrame,
    *,
    labels: list[str],
    training_cfg: TrainingConfig,
    output_dir: str | Path,
    run_logger: RunLogger | None = None,
    resume: bool = True,
    data_window: str | None = None,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Fine-tune `training_cfg.base_model` on the train split; select/stop on val macro-F1.

    `frame`: dataset_splits joined with the article title/text (article_id, split, label, title,
    text). Writes `output_dir/model` (merged, safetensors + tokenizer + label_map.json + README.md),
    `output_dir/adapter` (LoRA only) and, until it finishes, `output_dir/checkpoints`. `data_window` is shown in the
    model card. `callbacks` are extra transformers TrainerCallbacks (tests use them).
    """
    from transformers import (
        DataCollatorWithPadding,
        EarlyStoppingCallback,
        PrinterCallback,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from newsml_pipeline.core.training.device import PeakMemory, apply_threads, choose_device

    cfg = training_cfg
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    choice = choose_device(cfg.device, cfg.precision, threads=cfg.num_threads)
    apply_threads(choice)
    set_seed(cfg.seed)
    logger.info("training on %s", choice.describe())

    model, tokenizer = load_base_classifier(cfg.base_model, labels=labels)
    data = build_datasets(frame, labels=labels, tokenizer=tokenizer, max_length=cfg.max_length)
    if cfg.full_finetune:
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        model = apply_lora(
            model,
            r=cfg.lora.r,
            alpha=cfg.lora.alpha,
            dropout=cfg.lora.dropout,
            target_modules=cfg.lora.target_modules,
            top_layers=cfg.lora.top_layers,
        )
    trainable, total = count_parameters(model)

    ckpt_dir, resume_from = _prepare_checkpoint_dir(
        output_dir, training_fingerprint(frame, labels, cfg), resume=resume
    )
    start_epoch = 0.0
    if resume_from:
        logger.info("resuming from checkpoint %s", resume_from)
        # read now: save_total_limit may rotate this checkpoint away while training goes on
        start_epoch = float(
            json.loads((Path(resume_from) / "trainer_state.json").read_text()).get("epoch") or 0.0
        )

    weights = class_weights(data["train"]["labels"], len(labels)) if cfg.class_weights else None
    args = TrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of the total steps
        lr_scheduler_type="linear",
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        restore_callback_states_from_checkpoint=True,
        logging_strategy="steps",
        logging_steps=cfg.logging_steps,
        train_sampling_strategy="group_by_length",
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=choice.precision == "bf16",
        fp16=choice.precision == "fp16",
        use_cpu=choice.device == "cpu",
        dataloader_num_workers=0,
        report_to="none",
        disable_tqdm=True,
        save_only_model=False,
    )
    history: list[dict[str, Any]] = []
    timing = {"eval_seconds": 0.0}
    cbs: list[Any] = [
        _callbacks(
            labels=labels,
            history=history,
            timing=timing,
            run_logger=run_logger,
            batch_size=cfg.batch_size,
            logging_steps=cfg.logging_steps,
        )
    ]
    if cfg.early_stopping_patience > 0:
        cbs.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    cbs.extend(callbacks or [])

    def compute_metrics(pred: Any) -> dict[str, float]:
        m = classification_metrics(pred.predictions, pred.label_ids, labels)
        return {"macro_f1": m["macro_f1"], "accuracy": m["accuracy"]}

    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=data["train"],
        eval_dataset=data["val"],
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(
            tokenizer, pad_to_multiple_of=8 if choice.device == "cuda" else None
        ),
        compute_metrics=compute_metrics,
        compute_loss_func=_loss_fn(weights, cfg.label_smoothing),
        callbacks=cbs,
    )
    trainer.remove_callback(PrinterCallback)  # our callback logs progress via logging instead of print
    with PeakMemory(choice.device) as mem:
        t0 = time.perf_counter()
        trainer.train(resume_from_checkpoint=resume_from)
        train_seconds = time.perf_counter() - t0
        epochs_run = float(trainer.state.epoch or 0.0)
        metrics = _final_metrics(trainer, data, labels)
    epochs_here = max(epochs_run - start_epoch, 1e-9)
    loop_seconds = max(train_seconds - timing["eval_seconds"], 1e-9)
    metrics["history"] = history
    best = trainer.state.best_model_checkpoint
    best_epoch = next((h["epoch"] for h in history if best and best.endswith(f"-{h['step']}")), None)
    logger.info(
        "training done in %.0f s (%.1f s/epoch, %.1f samples/s): val macro-F1 %.4f, test macro-F1 %s",
        train_seconds,
        loop_seconds / epochs_here,
        len(data["train"]) * epochs_here / loop_seconds,
        metrics["val_macro_f1"],
        f"{metrics['test_macro_f1']:.4f}" if "test_macro_f1" in metrics else "n/a",
    )
    result = TrainResult(
        model_dir=output_dir / "model",
        adapter_dir=None if cfg.full_finetune else output_dir / "adapter",
        labels=list(labels),
        metrics=metrics,
        train_seconds=train_seconds,
        seconds_per_epoch=loop_seconds / epochs_here,
        samples_per_s=len(data["train"]) * epochs_here / loop_seconds,
        device=choice.describe(),
        precision=choice.precision,
        peak_memory_mb=mem.peak_mb,
        n_train=len(data["train"]),
        n_val=len(data["val"]),
        n_test=len(data["test"]),
        epochs_run=epochs_run,
        best_epoch=best_epoch,
        trainable_parameters=trainable,
        total_parameters=total,
        resumed_from=resume_from,
        counts=split_counts(frame),
    )
    save_classifier_artifacts(
        trainer.model, tokenizer, result=result, training_cfg=cfg, data_window=data_window
    )
    # Checkpoints only exist to resume a crashed run; with the model saved they are dead weight
    # (optimizer state included, hundreds of MB per training).
    shutil.rmtree(ckpt_dir)
    logger.info("removed checkpoints in %s (model saved to %s)", ckpt_dir, result.model_dir)
    return result


def _final_metrics(trainer: Any, data: Any, labels: list[str]) -> dict[str, Any]:
    """val_* and test_* metrics of the selected (best) model."""
    out: dict[str, Any] = {}
    for split in ("val", "test"):
        if len(data[split]) == 0:
            continue
        pred = trainer.predict(data[split])
        for k, v in classification_metrics(pred.predictions, pred.label_ids, labels).items():
            out[f"{split}_{k}"] = v
    return out
