"""Token classification with a transformer + LoRA, for users who configure a cased base model
(`entities.training.method: transformer_lora`, `base_model`: a local model directory).

Targets are BIO tags over the user's types, put on each sub-word token from the auto-labels'
character spans (a token inside a span: B- at the span's first token, I- after); special tokens
and tokens the label model abstained on get -100 (no loss). LoRA adapters (peft) train on the
attention projections (core/training/lora.py picks them per architecture) and the new head; the
adapters are merged into the saved model so prediction needs no peft.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

from newsml_pipeline.core.entities.model import LABELS_FILE
from newsml_pipeline.core.entities.spans import CharSpan
from newsml_pipeline.core.entities.train_spacy import TrainingSentence
from newsml_pipeline.core.training.lora import lora_target_modules
from newsml_pipeline.entity_settings import EntitiesConfig

log = logging.getLogger(__name__)

IGNORE = -100
KIND = "transformer"


def bio_labels(types: list[str]) -> list[str]:
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


def token_targets(
    offsets: list[tuple[int, int]],
    spans: list[CharSpan],
    missing: list[tuple[int, int]],
    index: dict[str, int],
) -> list[int]:
    """BIO label id per sub-word token (offsets (0, 0) = special token -> IGNORE)."""
    out = []
    for a, b in offsets:
        if a == b:
            out.append(IGNORE)
            continue
        if any(a < mb and ma < b for ma, mb in missing):
            out.append(IGNORE)
            continue
        tag = "O"
        for s in spans:
            if s.start <= a and b <= s.end:
                tag = ("B-" if a == s.start else "I-") + s.label
                break
        out.append(index[tag])
    return out


def decode_spans(offsets: list[tuple[int, int]], tags: list[str]) -> list[CharSpan]:
    """Sub-word BIO tags -> character spans (an I- of another type, or after O, opens a span)."""
    spans: list[CharSpan] = []
    cur: list | None = None
    for (a, b), tag in zip(offsets, tags, strict=True):
        if a == b:
            continue
        kind, _, label = tag.partition("-")
        if kind == "I" and cur is not None and cur[2] == label:
            cur[1] = b
            continue
        if cur is not None:
            spans.append(CharSpan(*cur))
            cur = None
        if kind in ("B", "I"):
            cur = [a, b, label]
    if cur is not None:
        spans.append(CharSpan(*cur))
    return spans


@dataclass
class TransformerRecognizer:
    """A saved token-classification model; `predict` answers like EntityRecognizer."""

    model: object
    tokenizer: object
    tags: list[str]
    max_length: int = 128

    @classmethod
    def load(cls, path: str | Path) -> TransformerRecognizer:
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        meta = json.loads((Path(path) / LABELS_FILE).read_text(encoding="utf-8"))
        model = AutoModelForTokenClassification.from_pretrained(path)
        model.eval()
        return cls(model, AutoTokenizer.from_pretrained(path), list(meta["tags"]), int(meta["max_length"]))

    def save(self, path: str | Path, *, types: list[str]) -> Path:
        path = Path(path)
        self.model.save_pretrained(path)  # type: ignore[attr-defined]
        self.tokenizer.save_pretrained(path)  # type: ignore[attr-defined]
        meta = {"kind": KIND, "tags": self.tags, "types": types, "max_length": self.max_length}
        (path / LABELS_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return path

    def predict(self, texts: list[str], *, batch_size: int = 32) -> list[list[CharSpan]]:
        import torch

        out: list[list[CharSpan]] = []
        for i in range(0, len(texts), batch_size):
            chunk = texts[i : i + batch_size]
            enc = self.tokenizer(  # type: ignore[operator]
                chunk, truncation=True, max_length=self.max_length, padding=True,
                return_offsets_mapping=True, return_tensors="pt",
            )  # fmt: skip
            offsets = enc.pop("offset_mapping").tolist()
            with torch.inference_mode():
                logits = self.model(**enc).logits  # type: ignore[operator]
            pred = logits.argmax(-1).tolist()
            for offs, ids, mask in zip(offsets, pred, enc["attention_mask"].tolist(), strict=True):
                n = sum(mask)
                out.append(decode_spans([tuple(o) for o in offs[:n]], [self.tags[j] for j in ids[:n]]))
        return out


@dataclass(frozen=True)
class TransformerTrainResult:
    recognizer: TransformerRecognizer
    losses: list[float]
    seconds: float
    n_sentences: int


def train_token_classifier(
    sentences: list[TrainingSentence], cfg: EntitiesConfig, *, seed: int | None = None
) -> TransformerTrainResult:
    """Fine-tune `cfg.training.base_model` with LoRA on the auto-labels (seeded, CPU or GPU)."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tc = cfg.training
    if not tc.base_model:
        raise ValueError("entities.training.base_model is needed for transformer_lora")
    seed = tc.seed if seed is None else seed
    random.seed(seed)
    torch.manual_seed(seed)
    tags = bio_labels(cfg.names)
    index = {t: i for i, t in enumerate(tags)}
    tokenizer = AutoTokenizer.from_pretrained(tc.base_model)
    model = AutoModelForTokenClassification.from_pretrained(
        tc.base_model,
        num_labels=len(tags),
        id2label=dict(enumerate(tags)),
        label2id=index,
        ignore_mismatched_sizes=True,
    )
    lora = LoraConfig(
        task_type=TaskType.TOKEN_CLS,
        r=tc.lora.r,
        lora_alpha=tc.lora.alpha,
        lora_dropout=tc.lora.dropout,
        target_modules=lora_target_modules(model.config.model_type, tc.lora.target_modules),
    )
    peft_model = get_peft_model(model, lora)
    rows = sentences[: tc.max_sentences]
    if not rows:
        raise ValueError("no auto-labelled sentences to train the entity recognizer on")
    enc = tokenizer(
        [s.text for s in rows], truncation=True, max_length=tc.max_length, return_offsets_mapping=True
    )
    targets = [
        token_targets([tuple(o) for o in offs], s.entities, s.missing, index)
        for offs, s in zip(enc["offset_mapping"], rows, strict=True)
    ]
    optim = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=tc.learning_rate)
    order = list(range(len(rows)))
    losses = []
    t0 = time.perf_counter()
    peft_model.train()
    for epoch in range(tc.epochs):
        random.shuffle(order)
        total = 0.0
        for i in range(0, len(order), tc.batch_size):
            idx = order[i : i + tc.batch_size]
            batch = tokenizer.pad(
                {
                    "input_ids": [enc["input_ids"][j] for j in idx],
                    "attention_mask": [enc["attention_mask"][j] for j in idx],
                },
                return_tensors="pt",
            )
            width = batch["input_ids"].shape[1]
            labels = torch.tensor([targets[j] + [IGNORE] * (width - len(targets[j])) for j in idx])
            loss = peft_model(**batch, labels=labels).loss
            optim.zero_grad()
            loss.backward()
            optim.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(rows))
        log.info("entity token classifier epoch %d/%d: loss %.4f", epoch + 1, tc.epochs, losses[-1])
    merged = peft_model.merge_and_unload()
    merged.eval()
    rec = TransformerRecognizer(merged, tokenizer, tags, tc.max_length)
    return TransformerTrainResult(rec, losses, time.perf_counter() - t0, len(rows))
