"""Labelling sources: each reads a spaCy Doc and proposes token spans of the user's types.

- `pretrained`: the pretrained pipeline's NER, its OntoNotes labels mapped to the user's types
  (`PERSON` -> `PER` ...). It sees every token, so where it proposes nothing it votes `O`.
- `gazetteer`: spaCy PhraseMatcher over the types' gazetteer entries and files.
- `patterns`: spaCy Matcher over the types' token patterns.
The rule sources only speak where they match (elsewhere they abstain). Every source's spans are
trimmed by the span conventions before they vote, so all evidence follows the annotators' rules.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from newsml_pipeline.core.entities.spans import TokenSpan, apply_conventions, remove_overlaps
from newsml_pipeline.entity_settings import EntitiesConfig

log = logging.getLogger(__name__)

PRETRAINED = "pretrained"
GAZETTEER = "gazetteer"
PATTERNS = "patterns"


@dataclass(frozen=True)
class SourceSpans:
    """One Doc's proposals: spans per source, plus the pretrained spans of labels no type maps
    (kept for rehearsal: the fine-tuned model keeps practising them)."""

    by_source: dict[str, list[TokenSpan]]
    rehearsal: list[TokenSpan] = field(default_factory=list)


def read_gazetteer_file(path: str | Path) -> list[str]:
    """One phrase a line; blank lines and `#` comments skipped."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


class Sources:
    """The configured sources bound to one spaCy `nlp` (its vocab builds the matchers)."""

    def __init__(self, cfg: EntitiesConfig, nlp: object) -> None:
        from spacy.matcher import Matcher, PhraseMatcher

        self.cfg = cfg
        self.spacy_map = cfg.spacy_map
        self._phrases = PhraseMatcher(nlp.vocab)  # type: ignore[attr-defined]
        self._patterns = Matcher(nlp.vocab)  # type: ignore[attr-defined]
        n_phrases = n_patterns = 0
        for t in cfg.types:
            phrases = list(t.gazetteer) + [p for f in t.gazetteer_files for p in read_gazetteer_file(f)]
            if phrases:
                self._phrases.add(t.name, [nlp.make_doc(p) for p in phrases])  # type: ignore[attr-defined]
                n_phrases += len(phrases)
            if t.patterns:
                self._patterns.add(t.name, t.patterns)
                n_patterns += len(t.patterns)
        self.names = [PRETRAINED] + ([GAZETTEER] if n_phrases else []) + ([PATTERNS] if n_patterns else [])
        log.info("entity sources %s (%d gazetteer phrases, %d patterns)", self.names, n_phrases, n_patterns)

    def _trim(self, words: list[str], spans: list[TokenSpan]) -> list[TokenSpan]:
        out = [apply_conventions(words, s, self.cfg.conventions) for s in spans]
        return remove_overlaps([s for s in out if s is not None])

    def pretrained_spans(self, doc: object) -> tuple[list[TokenSpan], list[TokenSpan]]:
        """(mapped spans of the user's types, spans of unmapped OntoNotes labels)."""
        mapped, other = [], []
        for ent in doc.ents:  # type: ignore[attr-defined]
            if ent.label_ in self.spacy_map:
                mapped.append(TokenSpan(ent.start, ent.end, self.spacy_map[ent.label_]))
            else:
                other.append(TokenSpan(ent.start, ent.end, ent.label_))
        return mapped, other

    def __call__(self, doc: object) -> SourceSpans:
        words = [t.text for t in doc]  # type: ignore[attr-defined]
        vocab = doc.vocab.strings  # type: ignore[attr-defined]
        mapped, other = self.pretrained_spans(doc)
        by_source = {PRETRAINED: self._trim(words, mapped)}
        if GAZETTEER in self.names:
            by_source[GAZETTEER] = self._trim(
                words, [TokenSpan(s, e, vocab[m]) for m, s, e in self._phrases(doc)]
            )
        if PATTERNS in self.names:
            by_source[PATTERNS] = self._trim(
                words, [TokenSpan(s, e, vocab[m]) for m, s, e in self._patterns(doc)]
            )
        taken = {i for spans in by_source.values() for s in spans for i in range(s.start, s.end)}
        user_names = set(self.cfg.names)
        rehearsal = [
            s for s in other if s.label not in user_names and not taken.intersection(range(s.start, s.end))
        ]
        return SourceSpans(by_source=by_source, rehearsal=rehearsal)
