"""Token-level precision / recall / F1 of extracted text, as the Zyte extraction benchmark scores it.

Bag-of-words over lowercase `\\w+` tokens: order-insensitive, so it measures what text was
kept and what boilerplate leaked in.
"""

from __future__ import annotations

import re
from collections import Counter

_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokens(text: str | None) -> Counter[str]:
    return Counter(_TOKEN.findall((text or "").lower()))


def token_prf(extracted: str | None, expected: str | None) -> tuple[float, float, float]:
    """(precision, recall, F1) of `extracted` against `expected`; empty extraction scores 0."""
    got, want = tokens(extracted), tokens(expected)
    if not want:
        raise ValueError("expected text is empty: nothing to score against")
    common = sum((got & want).values())
    p = common / sum(got.values()) if got else 0.0
    r = common / sum(want.values())
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f
