"""Embedding zero-shot votes: the article's sentence embedding vs each category's embedding.

A category is embedded from its name, description and keywords (what the user wrote); the
article from its title and lead, truncated to `max_tokens` (the lead carries the topic, and
encoder cost grows with length). The vote is the most similar category; the function abstains
when the best similarity does not beat the runner-up by `min_margin`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from newsml_pipeline.core.labeling.schema import ABSTAIN, LabelSchema

log = logging.getLogger(__name__)


def category_texts(schema: LabelSchema) -> list[str]:
    """The text embedded for each category: `name: description. keywords`."""
    out = []
    for name, desc, kws in zip(schema.names, schema.descriptions, schema.keywords, strict=True):
        words = ", ".join(kws)
        out.append(f"{name.replace('-', ' ').replace('_', ' ')}: {desc}." + (f" {words}." if words else ""))
    return out


def embed(
    texts: Sequence[str], *, model: Any, max_tokens: int = 128, batch_size: int = 32, bf16: bool = True
) -> np.ndarray:
    """L2-normalised sentence embeddings (n, d). `bf16` asks for bf16 autocast, taken only where
    the device computes bf16 natively (it roughly doubles CPU speed with avx512_bf16/AMX; emulated
    bf16 is 4-5x slower than fp32)."""
    import torch

    from newsml_pipeline.core.training.device import has_native_bf16

    model.max_seq_length = max_tokens
    device_type = str(model.device).split(":")[0]
    ctx = (
        torch.autocast(device_type=device_type, dtype=torch.bfloat16)
        if bf16 and has_native_bf16(device_type)
        else contextlib.nullcontext()
    )
    with torch.inference_mode(), ctx:
        emb = model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=False,
            convert_to_tensor=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
    return emb.float().cpu().numpy()


def zero_shot_embeddings(
    titles: Sequence[str],
    texts: Sequence[str],
    *,
    schema: LabelSchema,
    model: Any,
    max_tokens: int = 128,
    batch_size: int = 32,
    bf16: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(article embeddings (n, d), category embeddings (k, d)), L2-normalised. Computed once per
    batch: the zero-shot vote and the transductive function both read them."""
    if len(titles) != len(texts):
        raise ValueError(f"zero_shot_scores: {len(titles)} titles but {len(texts)} texts")
    cats = embed(
        category_texts(schema), model=model, max_tokens=max_tokens, batch_size=batch_size, bf16=False
    )
    emb = embed(
        article_inputs(titles, texts, max_tokens=max_tokens),
        model=model,
        max_tokens=max_tokens,
        batch_size=batch_size,
        bf16=bf16,
    )
    return emb, cats


def article_inputs(titles: Sequence[str], texts: Sequence[str], *, max_tokens: int) -> list[str]:
    """What is embedded per article: "title. lead" cut near `max_tokens` (the review queue clusters
    the very same embeddings)."""
    # ~6 characters per token: no need to hand the tokenizer more than it will keep.
    return [f"{ti or ''}. {(tx or '')[: max_tokens * 6]}" for ti, tx in zip(titles, texts, strict=True)]


def configured_article_embeddings(
    titles: Sequence[str], texts: Sequence[str], *, labels_cfg: Any
) -> np.ndarray:
    """The article embeddings (n, d) the labeller's embedding functions use, with the config's model."""
    from newsml_pipeline.core.labeling import nlp_cache

    max_tokens = labels_cfg.embedding_max_tokens
    return embed(
        article_inputs(titles, texts, max_tokens=max_tokens),
        model=nlp_cache.sentence_model(labels_cfg.embedding_model),
        max_tokens=max_tokens,
        bf16=labels_cfg.embedding_bf16,
    )


def zero_shot_scores(
    titles: Sequence[str],
    texts: Sequence[str],
    *,
    schema: LabelSchema,
    model: Any,
    max_tokens: int = 128,
    batch_size: int = 32,
    bf16: bool = True,
) -> np.ndarray:
    """Cosine similarity matrix (n, k) of articles vs categories."""
    emb, cats = zero_shot_embeddings(
        titles, texts, schema=schema, model=model, max_tokens=max_tokens, batch_size=batch_size, bf16=bf16
    )
    return emb @ cats.T


def class_fit(docs: np.ndarray, protos: np.ndarray) -> np.ndarray:
    """Cosine similarity (n,) of each article to the class description that fits it best.

    Low for an article no class describes: the share of such articles is a drift signal that
    needs no trained model (core/monitoring/signals.py `no_fit`).
    """
    if docs.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    return (docs @ protos.T).max(axis=1).astype(np.float64)


def zero_shot_votes_from_scores(sims: np.ndarray, *, min_margin: float = 0.01) -> np.ndarray:
    """Argmax category where it beats the runner-up by ≥ min_margin cosine, else ABSTAIN."""
    if sims.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.sort(sims, axis=1)
    votes = sims.argmax(axis=1).astype(np.int64)
    votes[(order[:, -1] - order[:, -2]) < min_margin] = ABSTAIN
    return votes


def configured_zero_shot_embeddings(
    titles: Sequence[str], texts: Sequence[str], *, labels_cfg: Any, schema: LabelSchema | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """zero_shot_embeddings with the model and settings of `labels` in the config."""
    from newsml_pipeline.core.labeling import nlp_cache

    return zero_shot_embeddings(
        titles,
        texts,
        schema=schema or LabelSchema.from_config(labels_cfg),
        model=nlp_cache.sentence_model(labels_cfg.embedding_model),
        max_tokens=labels_cfg.embedding_max_tokens,
        bf16=labels_cfg.embedding_bf16,
    )


def configured_zero_shot_scores(
    titles: Sequence[str], texts: Sequence[str], *, labels_cfg: Any, schema: LabelSchema | None = None
) -> np.ndarray:
    """zero_shot_scores with the model and settings of `labels` in the config.

    The one place both the labeler's zero-shot vote and the evaluation's zero-shot baseline come
    from, so the baseline is exactly the computation the labeler uses. Returns [n, k] similarities.
    """
    emb, cats = configured_zero_shot_embeddings(titles, texts, labels_cfg=labels_cfg, schema=schema)
    return emb @ cats.T
