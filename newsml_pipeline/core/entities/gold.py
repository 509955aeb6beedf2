"""Readers of gold entity annotations (trusted rows: evaluation only, never training).

- IOB2 / CoNLL: one token a line (tab- or space-separated; the token in column `token_col`, the
  tag in `tag_col`), `# key = value` comment lines (sent_id, text), a blank line between sentences.
  The sentence text is `# text` when present (offsets are then found in it), else the tokens
  joined by single spaces.
- JSONL with character spans: {"id"?, "text", "entities": [{"start", "end", "label"}]}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from newsml_pipeline.core.entities.spans import CharSpan


class GoldFormatError(ValueError):
    """A gold file that cannot be read as the format says; the message names file and line."""


@dataclass(frozen=True)
class GoldSentence:
    id: str
    text: str
    entities: list[CharSpan]
    meta: dict[str, str] = field(default_factory=dict)


def _token_offsets(text: str | None, tokens: list[str], where: str) -> tuple[str, list[tuple[int, int]]]:
    if text is None:
        text = " ".join(tokens)
    offsets, pos = [], 0
    for tok in tokens:
        at = text.find(tok, pos)
        if at < 0:
            raise GoldFormatError(f"{where}: token {tok!r} not found in the sentence text after offset {pos}")
        offsets.append((at, at + len(tok)))
        pos = at + len(tok)
    return text, offsets


def _spans_from_tags(tags: list[str], offsets: list[tuple[int, int]], where: str) -> list[CharSpan]:
    spans: list[CharSpan] = []
    start = label = None
    end = 0
    for i, tag in enumerate([*tags, "O"]):
        kind, _, lab = tag.partition("-")
        if kind not in ("B", "I", "O") or (kind != "O" and not lab):
            raise GoldFormatError(f"{where}: tag {tag!r} is not IOB2 (B-X, I-X or O)")
        continues = kind == "I" and label == lab
        if label is not None and not continues:
            spans.append(CharSpan(offsets[start][0], offsets[end][1], label))  # type: ignore[index]
            label = None
        if kind == "B" or (kind == "I" and not continues):  # a stray I- opens an entity (CoNLL habit)
            start, label = i, lab
        if label is not None:
            end = i
    return spans


def read_iob2(path: str | Path, *, token_col: int = 1, tag_col: int = 2) -> list[GoldSentence]:
    """Sentences of an IOB2/CoNLL file with character spans into each sentence's text."""
    path = Path(path)
    out: list[GoldSentence] = []
    meta: dict[str, str] = {}
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0

    def flush(lineno: int) -> None:
        nonlocal meta, tokens, tags
        if tokens:
            where = f"{path}:{first_line}"
            text, offsets = _token_offsets(meta.get("text"), tokens, where)
            sid = meta.get("sent_id", f"{path.stem}-{len(out) + 1}")
            out.append(GoldSentence(sid, text, _spans_from_tags(tags, offsets, where), dict(meta)))
        meta, tokens, tags = {}, [], []

    with path.open(encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.rstrip("\n")
            if not line.strip():
                flush(lineno)
                continue
            if line.startswith("#"):
                if tokens:
                    flush(lineno)
                key, eq, value = line[1:].partition("=")
                if eq:
                    meta[key.strip()] = value.strip()
                continue
            cols = line.split("\t") if "\t" in line else line.split()
            if len(cols) <= max(token_col, tag_col):
                raise GoldFormatError(
                    f"{path}:{lineno}: expected at least {max(token_col, tag_col) + 1} columns"
                )
            if not tokens:
                first_line = lineno
            tokens.append(cols[token_col])
            tags.append(cols[tag_col])
        flush(-1)
    return out


def parse_char_spans(
    raw: object,
    text: str,
    *,
    where: str,
    types: list[str] | None = None,
    allow_overlap: bool = True,
) -> list[CharSpan]:
    """`[{"start", "end", "label"}, ...]` (offsets into `text`) -> sorted CharSpans, or a
    GoldFormatError naming `where` and the bad span: a span that is not such an object, offsets that
    are not integers or not inside the text, an empty label, a label outside `types` (when given),
    overlapping spans (unless `allow_overlap`). Shared by the gold files, a local source's gold spans
    and the labelling page, so every road in refuses the same things with the same words."""
    if not isinstance(raw, list):
        raise GoldFormatError(f"{where}: entities must be a list of {{start, end, label}}, got {raw!r:.80}")
    spans: list[CharSpan] = []
    for k, e in enumerate(raw):
        if not isinstance(e, dict) or not {"start", "end", "label"} <= set(e):
            raise GoldFormatError(f"{where}: entity {k} is not {{start, end, label}}: {e!r:.80}")
        start, end, label = e["start"], e["end"], e["label"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
            raise GoldFormatError(f"{where}: entity {k} offsets must be integers, got {start!r}, {end!r}")
        if not isinstance(label, str) or not label.strip():
            raise GoldFormatError(f"{where}: entity {k} needs a non-empty label, got {label!r}")
        if not 0 <= start < end <= len(text):
            raise GoldFormatError(
                f"{where}: entity {k} [{start}, {end}) is outside the text (0 <= start < end <= {len(text)})"
            )
        if types is not None and label not in types:
            raise GoldFormatError(f"{where}: entity {k} has unknown type {label!r}; types are {types}")
        spans.append(CharSpan(start, end, label))
    spans.sort()
    if not allow_overlap:
        for a, b in zip(spans, spans[1:], strict=False):
            if b.start < a.end:
                raise GoldFormatError(
                    f"{where}: spans overlap: {text[a.start : a.end]!r} [{a.label}] and "
                    f"{text[b.start : b.end]!r} [{b.label}]"
                )
    return spans


def read_jsonl(path: str | Path) -> list[GoldSentence]:
    """Records {"id"?, "text", "entities": [{"start", "end", "label"}]} (offsets into text)."""
    from newsml_pipeline.core.records import jsonl_lines, open_text

    path = Path(path)
    out = []
    with open_text(path) as fh:
        for ln in jsonl_lines(fh):
            lineno, rec = ln.line, ln.record
            if ln.error is not None:
                raise GoldFormatError(f"{path}:{lineno}: not a gold record ({ln.error})")
            text = rec.get("text") if isinstance(rec, dict) else None
            if not isinstance(text, str):
                raise GoldFormatError(f"{path}:{lineno}: not a gold record (no string 'text')")
            ents = parse_char_spans(rec.get("entities", []), text, where=f"{path}:{lineno}")
            out.append(GoldSentence(str(rec.get("id", f"{path.stem}-{lineno}")), text, ents))
    return out


def read_gold(path: str | Path) -> list[GoldSentence]:
    """By suffix: .jsonl -> JSONL spans, anything else -> IOB2/CoNLL."""
    return read_jsonl(path) if str(path).endswith(".jsonl") else read_iob2(path)
