"""Fine-tune the pretrained spaCy NER on the auto-labels without forgetting.

The recognizer keeps the pretrained labels inside: a user type fed by pretrained labels trains
the output row of its first one (PER -> PERSON, LOC -> GPE), so fine-tuning adjusts what the model
already knows instead of learning a fresh row from nothing; custom types get new labels. Two
strategies (bench/entities.py measures both):
- `rehearsal`: the pretrained model's own spans of the labels no type maps (DATE, MONEY, NORP ...)
  stay targets, so those outputs keep being practised and the shared features do not drift away;
- `mixed`: only the user's types are targets, from the pretrained weights.
Tokens the label model abstained on are "missing" (no loss); only the `ner` pipe is updated (in
en_core_web_sm it has its own tok2vec, so the tagger and the sentence splitter are untouched).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field

from newsml_pipeline.core.entities.model import PREDICT_DISABLE, EntityRecognizer, load_pretrained
from newsml_pipeline.core.entities.spans import CharSpan
from newsml_pipeline.entity_settings import EntitiesConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingSentence:
    text: str
    entities: list[CharSpan]  # user types
    missing: list[tuple[int, int]] = field(default_factory=list)  # character ranges without a label
    rehearsal: list[CharSpan] = field(default_factory=list)  # pretrained labels no type maps


@dataclass(frozen=True)
class TrainResult:
    recognizer: EntityRecognizer
    losses: list[float]  # NER loss per epoch
    seconds: float
    n_sentences: int


def internal_labels(cfg: EntitiesConfig) -> dict[str, str]:
    """User type -> the label the model trains for it (its first pretrained label, else its name)."""
    return {t.name: (t.spacy_labels[0] if t.spacy_labels else t.name) for t in cfg.types}


def label_map(cfg: EntitiesConfig) -> dict[str, str]:
    """Model label -> user type, for every label the refined model can emit for a user type."""
    out = dict(cfg.spacy_map)
    out.update({v: k for k, v in internal_labels(cfg).items()})
    return out


def _example(nlp: object, s: TrainingSentence, internal: dict[str, str], rehearse: bool):
    from spacy.training import Example, offsets_to_biluo_tags

    doc = nlp.make_doc(s.text)  # type: ignore[attr-defined]
    ents = [(e.start, e.end, internal[e.label]) for e in s.entities if e.label in internal]
    if rehearse:
        taken = [(a, b) for a, b, _ in ents]
        ents += [
            (e.start, e.end, e.label)
            for e in s.rehearsal
            if not any(e.start < b and a < e.end for a, b in taken)
        ]
    tags = offsets_to_biluo_tags(doc, sorted(ents))
    for a, b in s.missing:
        for i, tok in enumerate(doc):
            if tok.idx < b and a < tok.idx + len(tok.text):
                tags[i] = "-"
    return Example.from_dict(doc, {"entities": tags})


def train_spacy_ner(
    sentences: list[TrainingSentence],
    cfg: EntitiesConfig,
    *,
    seed: int | None = None,
    strategy: str | None = None,
    epochs: int | None = None,
) -> TrainResult:
    """Fine-tune a fresh copy of the pretrained pipeline's NER on `sentences` (seeded)."""
    from spacy.util import fix_random_seed, minibatch

    tc = cfg.training
    seed = tc.seed if seed is None else seed
    strategy = strategy or tc.strategy
    epochs = epochs or tc.epochs
    fix_random_seed(seed)
    rng = random.Random(seed)
    nlp = load_pretrained()
    if "senter" in nlp.disabled:  # type: ignore[attr-defined]
        nlp.enable_pipe("senter")  # type: ignore[attr-defined]
    ner = nlp.get_pipe("ner")  # type: ignore[attr-defined]
    internal = internal_labels(cfg)
    for lab in internal.values():
        if lab not in ner.labels:
            ner.add_label(lab)
    examples = [_example(nlp, s, internal, strategy == "rehearsal") for s in sentences[: tc.max_sentences]]
    if not examples:
        raise ValueError("no auto-labelled sentences to train the entity recognizer on")
    t0 = time.perf_counter()
    losses_per_epoch = []
    with nlp.select_pipes(enable=["ner"]):  # type: ignore[attr-defined]
        optimizer = nlp.resume_training()  # type: ignore[attr-defined]
        optimizer.learn_rate = tc.learning_rate
        for epoch in range(epochs):
            rng.shuffle(examples)
            losses: dict[str, float] = {}
            for batch in minibatch(examples, size=tc.batch_size):
                nlp.update(batch, drop=tc.dropout, sgd=optimizer, losses=losses)  # type: ignore[attr-defined]
            losses_per_epoch.append(float(losses.get("ner", 0.0)))
            log.info("entity NER epoch %d/%d: loss %.1f", epoch + 1, epochs, losses_per_epoch[-1])
    seconds = time.perf_counter() - t0
    for name in PREDICT_DISABLE:
        if name in nlp.pipe_names:  # type: ignore[attr-defined]
            nlp.disable_pipe(name)  # type: ignore[attr-defined]
    rec = EntityRecognizer(nlp, label_map(cfg), cfg.conventions)
    return TrainResult(rec, losses_per_epoch, seconds, len(examples))


def training_sentences(labelled: list, *, max_abstain_share: float) -> list[TrainingSentence]:
    """LabelledSentence records -> training rows, leaving out sentences the label model mostly
    abstained on."""
    return [
        TrainingSentence(s.text, list(s.entities), list(s.missing), list(s.rehearsal))
        for s in labelled
        if s.abstain_share <= max_abstain_share
    ]
