"""Heavy models loaded once per process: the spaCy pipeline (NER + lemmatizer) and the embedder.

Both are cached so that labelling many partitions in one process pays the load cost once.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from newsml_pipeline.core.model_paths import resolve_model
from newsml_pipeline.core.nlp import load_spacy

log = logging.getLogger(__name__)

# Only NER runs over article text (its own internal tok2vec); the tagger/parser are the slow part
# and the keyword function lemmatizes unique words with the rule lemmatizer instead (lemmas.py).
NER_ONLY_DISABLED = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer")


def spacy_ner() -> Any:
    """The spaCy English pipeline with every pipe but `ner` disabled (cached by `load_spacy`)."""
    return load_spacy(disable=NER_ONLY_DISABLED)


@functools.cache
def sentence_model(name: str | None) -> Any:
    """A SentenceTransformer on CPU/GPU for `name` (None = packaged all-MiniLM-L6-v2), cached."""
    import torch
    from sentence_transformers import SentenceTransformer

    path = resolve_model(name)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = SentenceTransformer(path, device=device)
    model.eval()
    log.info("loaded sentence-embedding model %s on %s", path, device)
    return model
