"""A tiny randomly initialised BERT classifier directory, built in about a second, fully offline.

Tests across areas point `training.base_model` (or a serving/evaluation model dir) at it so they
exercise the real transformers/peft code paths without the 90 MB MiniLM or any download.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable
from pathlib import Path

# Generic news-ish words so the tokenizer covers what toy test sets use; callers add their own.
_SAMPLE_TEXTS = [
    "shares rose after the company reported record profit and the bank raised growth forecasts",
    "markets fell as investors worried about inflation prices and the economy",
    "the film won an award at the festival and the singer released a new album",
    "the actor and actress starred in a television show with music by the band",
    "the government minister lost the election vote in parliament over the new policy",
    "the prime minister and the party campaign on law and tax",
    "the team won the match and the player scored in the cup final this season",
    "the coach said the league championship game of football tennis rugby and cricket",
    "the software company released a new phone and computer for internet users online",
    "mobile broadband digital device technology apple microsoft games console",
    "a the of and to in is was for on with by at from that this it be as are has have",
]


def make_tiny_classifier_dir(
    tmp_path: Path,
    labels: list[str],
    *,
    seed: int = 0,
    texts: Iterable[str] | None = None,
    vocab_size: int = 600,
    name: str = "tiny-bert",
) -> Path:
    """Save a tiny random BERT + WordPiece tokenizer under `tmp_path/name`; return that dir.

    hidden 32, 2 layers, 2 heads, max 512 positions; `labels` become id2label/label2id in the
    config. `texts` (optional) are added to the tokenizer's training sample.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    if len(labels) < 2:
        raise ValueError(f"a classifier needs at least two labels, got {labels}")
    out = Path(tmp_path) / name
    out.mkdir(parents=True, exist_ok=True)

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    sample = list(_SAMPLE_TEXTS) + list(labels) + list(texts or [])
    # The vocabulary is built here, not by tokenizers' WordPieceTrainer: that trainer breaks
    # frequency ties in hash order, which differs between processes, so the same call gave
    # another vocabulary (and another model to train) in each test process. Whole words (most
    # frequent first, then alphabetical) plus every character alone and as a `##` suffix, so
    # any word of the sample's alphabet still tokenizes.
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    counts: dict[str, int] = {}
    for text in sample:
        for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)):
            counts[word] = counts.get(word, 0) + 1
    chars = sorted({c for w in counts for c in w} | set(string.ascii_lowercase + string.digits))
    pieces = chars + [f"##{c}" for c in chars]
    room = max(0, vocab_size - len(special) - len(pieces))
    words = [w for w in sorted(counts, key=lambda w: (-counts[w], w)) if w not in pieces][:room]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(special + pieces + words))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece()
    from tokenizers.processors import TemplateProcessing

    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    fast.save_pretrained(out)

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    model = BertForSequenceClassification(config)
    model.save_pretrained(out)
    (out / "tiny_model.json").write_text(json.dumps({"labels": list(labels), "seed": seed}), encoding="utf-8")
    return out
