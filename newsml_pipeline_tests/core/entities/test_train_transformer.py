"""The transformer + LoRA token-classification path, on a tiny random BERT (offline, seconds):
BIO targets from character spans, decoding back to character spans, training that lowers the
loss, and a saved model that loads and answers in the user's types."""

from __future__ import annotations

from pathlib import Path

from newsml_pipeline.core.entities.model import load_recognizer
from newsml_pipeline.core.entities.spans import CharSpan
from newsml_pipeline.core.entities.train_spacy import TrainingSentence
from newsml_pipeline.core.entities.train_transformer import (
    IGNORE,
    TransformerRecognizer,
    bio_labels,
    decode_spans,
    token_targets,
    train_token_classifier,
)
from newsml_pipeline.entity_settings import EntitiesConfig
from testkit.tiny_models import make_tiny_classifier_dir

TYPES = ["PER", "LOC"]


def test_targets_and_decoding_round_trip() -> None:
    tags = bio_labels(TYPES)
    index = {t: i for i, t in enumerate(tags)}
    # "John Smith went to Paris", sub-words: [CLS] john smith went to par ##is [SEP]
    offsets = [(0, 0), (0, 4), (5, 10), (11, 15), (16, 18), (19, 22), (22, 24), (0, 0)]
    spans = [CharSpan(0, 10, "PER"), CharSpan(19, 24, "LOC")]
    t = token_targets(offsets, spans, missing=[(11, 15)], index=index)
    assert [tags[i] if i != IGNORE else None for i in t] == [
        None,
        "B-PER",
        "I-PER",
        None,
        "O",
        "B-LOC",
        "I-LOC",
        None,
    ]
    decoded = decode_spans(offsets, ["O", "B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O"])
    assert decoded == spans
    # an I- after O opens a span; an I- of another type starts a new one
    assert decode_spans([(0, 3), (4, 7)], ["I-PER", "I-LOC"]) == [
        CharSpan(0, 3, "PER"),
        CharSpan(4, 7, "LOC"),
    ]


def test_lora_token_classifier_trains_saves_and_predicts(tmp_path: Path) -> None:
    people, places = ["john smith", "maria garcia", "peter brown"], ["paris", "berlin", "madrid"]
    texts = [f"{p} flew to {c} on monday" for p in people for c in places]
    base = make_tiny_classifier_dir(tmp_path, ["a", "b"], texts=texts)
    cfg = EntitiesConfig.model_validate(
        {
            "types": [
                {"name": "PER", "description": "people", "spacy_labels": ["PERSON"]},
                {"name": "LOC", "description": "places", "spacy_labels": ["GPE"]},
            ],
            "training": {
                "method": "transformer_lora",
                "base_model": str(base),
                "epochs": 30,
                "batch_size": 4,
                "learning_rate": 1e-2,
                "max_length": 32,
            },
        }
    )
    rows = []
    for t in texts:
        p = next(x for x in people if t.startswith(x))
        c = next(x for x in places if x in t)
        rows.append(
            TrainingSentence(
                t, [CharSpan(0, len(p), "PER"), CharSpan(t.index(c), t.index(c) + len(c), "LOC")]
            )
        )
    res = train_token_classifier(rows, cfg, seed=0)
    assert res.n_sentences == 9 and len(res.losses) == 30
    assert res.losses[-1] < res.losses[0] * 0.7
    path = res.recognizer.save(tmp_path / "ner", types=cfg.names)
    rec = load_recognizer(path)
    assert isinstance(rec, TransformerRecognizer)
    text = "maria garcia flew to paris on monday"
    (spans,) = rec.predict([text])
    assert all(0 <= s.start < s.end <= len(text) and s.label in TYPES for s in spans)
    assert ("paris", "LOC") in {(text[s.start : s.end], s.label) for s in spans}
