"""URL-section votes: news sites file articles under sections (`/business/`, `/sport/`, `/tech/`).

Path segments (split further on `-`/`_`) are compared with each category's name and its
single-word keywords: exact, plural (`sports` ~ `sport`), or a word starting with a name of at least
four letters (`technology` ~ `tech`). The last matching segment wins (deeper = more specific);
the function abstains without a URL, without a match, or when one segment matches two categories.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

import numpy as np

from newsml_pipeline.core.labeling.schema import ABSTAIN, LabelSchema

_SPLIT = re.compile(r"[-_.+]+")
_NAME_SPLIT = re.compile(r"[\W_]+")  # category names are free text: `Sci/Tech`, `Economy & business`
_SECTION_ID = re.compile(r"^([a-z]+(?:[-_][a-z]+)?)[-_]\d{5,}$")


def _forms(schema: LabelSchema) -> list[tuple[set[str], set[str]]]:
    """Per category: (exact words, prefixes) that identify it in a URL segment."""
    out = []
    for name, kws in zip(schema.names, schema.keywords, strict=True):
        exact = {name.lower()} | {w for w in _NAME_SPLIT.split(name.lower()) if len(w) >= 3}
        exact |= {k.lower() for k in kws if " " not in k and len(k) >= 3}
        prefixes = {w for w in exact if len(w) >= 4}
        out.append((exact, prefixes))
    return out


def _segment_classes(segment: str, forms: list[tuple[set[str], set[str]]]) -> set[int]:
    words = [segment, *_SPLIT.split(segment)]
    hits = set()
    for c, (exact, prefixes) in enumerate(forms):
        for w in words:
            if not w:
                continue
            singular = w[:-1] if w.endswith("s") else w
            if w in exact or singular in exact or any(w.startswith(p) for p in prefixes):
                hits.add(c)
                break
    return hits


def url_section_votes(urls: Sequence[str | None], *, schema: LabelSchema) -> np.ndarray:
    """Votes (n,) from URL path sections: class index or ABSTAIN (see module docstring)."""
    forms = _forms(schema)
    votes = np.full(len(urls), ABSTAIN, dtype=np.int64)
    for i, url in enumerate(urls):
        if not url:
            continue
        path = urlsplit(url).path.lower()
        segments = [s for s in path.split("/") if s]
        # The last segment is usually the article slug, whose words are content, not a section;
        # BBC-style `section-12345678` ids are the exception.
        if segments:
            m = _SECTION_ID.match(segments[-1])
            segments[-1:] = [m.group(1)] if m else []
        for seg in reversed(segments):
            if seg.isdigit():
                continue
            hits = _segment_classes(seg, forms)
            if len(hits) == 1:
                votes[i] = next(iter(hits))
                break
            if len(hits) > 1:
                break
    return votes
