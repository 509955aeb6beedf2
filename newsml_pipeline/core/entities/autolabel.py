"""Auto-label articles sentence by sentence: the pretrained pipeline reads each article, the
sources propose spans, the label model decides per token. One record per sentence, with
character offsets into the sentence text, so the table is readable without spaCy."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from newsml_pipeline.core.entities.label_model import label_docs
from newsml_pipeline.core.entities.sources import Sources, SourceSpans
from newsml_pipeline.core.entities.spans import CharSpan, TokenSpan, to_char_spans
from newsml_pipeline.entity_settings import EntitiesConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledSentence:
    article_id: str
    sentence: int  # index of the sentence in the article
    start: int  # character offset of the sentence in the article text as labelled
    text: str
    entities: list[CharSpan]  # the label model's spans
    missing: list[tuple[int, int]]  # character ranges of abstained tokens (no training signal)
    rehearsal: list[CharSpan]  # pretrained spans of labels no user type maps
    proposals: dict[str, list[CharSpan]]  # each source's own spans
    min_confidence: float
    abstain_share: float


def needs_parser(cfg: EntitiesConfig) -> bool:
    """Whether a token pattern reads the dependency parse (DEP / HEAD attributes)."""
    return any("DEP" in tok or "HEAD" in tok for t in cfg.types for p in t.patterns for tok in p)


def labelling_nlp(nlp: object, cfg: EntitiesConfig) -> object:
    """The pretrained pipeline set up for labelling: the parser when a pattern reads DEP (it also
    sets sentence boundaries), else the cheaper senter."""
    parser = needs_parser(cfg)
    for name, on in (("parser", parser), ("senter", not parser)):
        if on and name in nlp.disabled:  # type: ignore[attr-defined]
            nlp.enable_pipe(name)  # type: ignore[attr-defined]
        if not on and name in nlp.pipe_names:  # type: ignore[attr-defined]
            nlp.disable_pipe(name)  # type: ignore[attr-defined]
    return nlp


def sentence_docs(
    nlp: object,
    article_ids: list[str],
    texts: list[str],
    *,
    max_chars: int,
    split_sentences: bool = True,
    batch_size: int = 32,
):
    """(article_id, sentence index, its character offset, sentence Doc) for every non-blank sentence
    (`split_sentences` off: each text is one Doc, e.g. gold sentences scored as they are)."""
    pairs = ((t[:max_chars], aid) for aid, t in zip(article_ids, texts, strict=True))
    for doc, aid in nlp.pipe(pairs, as_tuples=True, batch_size=batch_size):  # type: ignore[attr-defined]
        if not split_sentences:
            yield aid, 0, 0, doc
            continue
        k = 0
        for sent in doc.sents:
            if not sent.text.strip() or not any(t.is_alpha for t in sent):
                continue
            yield aid, k, sent.start_char, sent.as_doc()
            k += 1


def _char_ranges(doc: object, mask) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for i, m in enumerate(mask):
        if m:
            tok = doc[i]  # type: ignore[index]
            out.append((tok.idx, tok.idx + len(tok.text)))
    return out


def autolabel(
    nlp: object,
    cfg: EntitiesConfig,
    article_ids: list[str],
    texts: list[str],
    *,
    split_sentences: bool = True,
) -> tuple[list[LabelledSentence], dict[str, float]]:
    """Label every sentence of the articles; returns the sentences and each source's estimated
    accuracy (label-model confusions; 1.0 each under the majority vote)."""
    nlp = labelling_nlp(nlp, cfg)
    sources = Sources(cfg, nlp)
    docs: list[tuple[str, int, int, object]] = []
    proposals: list[SourceSpans] = []
    for aid, k, start, doc in sentence_docs(
        nlp, article_ids, texts, max_chars=cfg.max_chars, split_sentences=split_sentences
    ):
        docs.append((aid, k, start, doc))
        proposals.append(sources(doc))
    labels, accuracies = label_docs(
        [len(d) for _, _, _, d in docs],  # type: ignore[arg-type]
        proposals,
        sources=sources.names,
        types=cfg.names,
        pretrained_types=set(cfg.spacy_map.values()),
        cfg=cfg.label_model,
    )
    out = []
    for (aid, k, start, doc), p, lab in zip(docs, proposals, labels, strict=True):
        out.append(
            LabelledSentence(
                article_id=aid,
                sentence=k,
                start=start,
                text=doc.text,  # type: ignore[attr-defined]
                entities=to_char_spans(doc, lab.spans),
                missing=_char_ranges(doc, lab.abstained),
                rehearsal=to_char_spans(doc, p.rehearsal),
                proposals={s: to_char_spans(doc, spans) for s, spans in p.by_source.items()},
                min_confidence=float(lab.confidence.min()) if len(lab.confidence) else 1.0,
                abstain_share=lab.abstain_share,
            )
        )
    log.info(
        "auto-labelled %d sentences of %d articles; source accuracies %s",
        len(out),
        len(article_ids),
        accuracies,
    )
    return out, accuracies


def token_spans_of(doc: object, spans: list[CharSpan]) -> list[TokenSpan]:
    """Character spans -> token spans of `doc` (spans not on token boundaries are expanded)."""
    out = []
    for s in spans:
        span = doc.char_span(s.start, s.end, label=s.label, alignment_mode="expand")  # type: ignore[attr-defined]
        if span is not None:
            out.append(TokenSpan(span.start, span.end, s.label))
    return out
