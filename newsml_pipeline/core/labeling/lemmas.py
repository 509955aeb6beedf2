"""Word-boundary tokens and spaCy lemmas without running the tagger over every article.

The tagger is what makes spaCy slow; keyword matching only needs each *distinct* word's lemma.
So text is split by spaCy's tokenizer (fast, proper word boundaries) and each distinct lowercase
word is lemmatized once with spaCy's rule lemmatizer (noun reading first, then verb), cached.
Keywords go through the same function, so "companies" matches "company" and "elected" "elect".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

PREFIX_LEN = 3


class Lemmatizer:
    """Canonical lemma per lowercase word using a spaCy pipeline's rule lemmatizer (cached)."""

    def __init__(self, nlp: Any) -> None:
        self._nlp = nlp
        self._lemmatizer = nlp.get_pipe("lemmatizer")
        self._cache: dict[str, str] = {}

    def lemma(self, word: str) -> str:
        word = word.lower()
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        lemma = word
        if word.isalpha() and len(word) > 2:
            from spacy.tokens import Doc  # here, not at load: spaCy costs ~1 s to import

            for pos in ("NOUN", "VERB"):
                doc = Doc(self._nlp.vocab, words=[word])
                doc[0].pos_ = pos
                cands = self._lemmatizer.rule_lemmatize(doc[0])
                if cands and cands[0] != word:
                    lemma = cands[0]
                    break
        self._cache[word] = lemma
        return lemma

    def tokens(
        self, texts: Iterable[str], *, batch_size: int = 256, prefixes: frozenset[str] | None = None
    ) -> list[list[str]]:
        """Lemma sequence of each text (punctuation and whitespace tokens dropped).

        With `prefixes` (see `relevant_prefixes`), only words starting with one of them are
        lemmatized and the rest are kept lowercased: a cheap filter when the caller only looks
        for a known set of lemmas, which makes a cold cache several times faster.
        """
        out = []
        for doc in self._nlp.tokenizer.pipe(texts, batch_size=batch_size):
            if prefixes is None:
                out.append([self.lemma(t.text) for t in doc if not (t.is_punct or t.is_space)])
            else:
                out.append(
                    [
                        self.lemma(t.lower_) if t.lower_[:PREFIX_LEN] in prefixes else t.lower_
                        for t in doc
                        if not (t.is_punct or t.is_space)
                    ]
                )
        return out

    def relevant_prefixes(self, lemmas: Iterable[str]) -> frozenset[str]:
        """Word prefixes that can lemmatize to one of `lemmas`: their own prefixes plus those of
        every irregular form (spaCy's exception tables, e.g. `went` -> `go`) of them."""
        targets = set(lemmas)
        prefixes = {w[:PREFIX_LEN] for w in targets}
        exc = (
            self._lemmatizer.lookups.get_table("lemma_exc")
            if self._lemmatizer.lookups.has_table("lemma_exc")
            else {}
        )
        for table in exc.values():
            for form, lems in table.items():
                if targets.intersection(lems):
                    prefixes.add(form[:PREFIX_LEN])
        return frozenset(prefixes)

    def phrase(self, phrase: str) -> tuple[str, ...]:
        """Lemma tuple of a (possibly multi-word) keyword."""
        return tuple(self.tokens([phrase])[0])


def count_phrases(lemma_docs: Sequence[Sequence[str]], phrases: Sequence[tuple[str, ...]]) -> list[list[int]]:
    """counts[i][p] = occurrences of phrase p (a lemma tuple) in document i, on token boundaries."""
    by_first: dict[str, list[int]] = {}
    for p, ph in enumerate(phrases):
        if ph:
            by_first.setdefault(ph[0], []).append(p)
    counts = []
    for toks in lemma_docs:
        row = [0] * len(phrases)
        n = len(toks)
        for i, tok in enumerate(toks):
            for p in by_first.get(tok, ()):
                ph = phrases[p]
                if len(ph) == 1 or (i + len(ph) <= n and tuple(toks[i : i + len(ph)]) == ph):
                    row[p] += 1
        counts.append(row)
    return counts
