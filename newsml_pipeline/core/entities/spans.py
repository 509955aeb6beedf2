"""Entity spans in the two coordinates the task uses: token spans inside a spaCy Doc (sources,
label model, training) and character spans inside a text (gold files, serving, metrics)."""

from __future__ import annotations

from dataclasses import dataclass

from newsml_pipeline.entity_settings import SpanConventions

_POSSESSIVE = frozenset({"'s", "’s", "'", "’"})
_OPENING = frozenset({"(", "[", "{"})
_TRAILING_PUNCT = frozenset({",", ";", ":", "(", "[", "{", "-", "–", "—"})


@dataclass(frozen=True, order=True)
class TokenSpan:
    """Tokens [start, end) of one Doc carrying `label`."""

    start: int
    end: int
    label: str


@dataclass(frozen=True, order=True)
class CharSpan:
    """Characters [start, end) of one text carrying `label` (the strict-match unit of the metrics)."""

    start: int
    end: int
    label: str


def apply_conventions(words: list[str], span: TokenSpan, conv: SpanConventions) -> TokenSpan | None:
    """Trim a span the way the user's annotators draw it: leading determiners out ("the United
    States" -> "United States"), a trailing possessive out ("Obama 's" -> "Obama"), lowercase
    edge words out, nothing from an opening bracket on. None when nothing is left."""
    start, end = span.start, span.end
    if conv.split_at_brackets:
        for i in range(start + 1, end):
            if words[i] in _OPENING:
                end = i
                break
    lead = {w.casefold() for w in conv.strip_leading}
    lower = span.label in conv.strip_lowercase_edges
    changed = True
    while changed and start < end:
        changed = False
        while start < end and (words[start].casefold() in lead or (lower and words[start][:1].islower())):
            start, changed = start + 1, True
        while end > start and (
            (conv.strip_possessive and words[end - 1] in _POSSESSIVE)
            or (lower and words[end - 1][:1].islower())
            or words[end - 1] in _TRAILING_PUNCT
        ):
            end, changed = end - 1, True
    if start >= end:
        return None
    return TokenSpan(start, end, span.label)


def to_char_spans(doc: object, spans: list[TokenSpan]) -> list[CharSpan]:
    """Token spans of a spaCy Doc -> character spans of `doc.text`."""
    out = []
    for s in spans:
        first, last = doc[s.start], doc[s.end - 1]  # type: ignore[index]
        out.append(CharSpan(first.idx, last.idx + len(last.text), s.label))
    return out


def remove_overlaps(spans: list[TokenSpan]) -> list[TokenSpan]:
    """Keep the longest of overlapping spans (ties: the earlier), sorted by start."""
    kept: list[TokenSpan] = []
    taken: set[int] = set()
    for s in sorted(spans, key=lambda s: (-(s.end - s.start), s.start)):
        if not taken.intersection(range(s.start, s.end)):
            kept.append(s)
            taken.update(range(s.start, s.end))
    return sorted(kept)
