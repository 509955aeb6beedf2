"""Silver labels: what evaluation can use before people have labelled enough (gate.evaluation).

The gate compares the candidate with the baseline, and the default baseline is the zero-shot
embedding function. Evaluating on labels that the baseline itself voted for would hand it the
answer key, so a silver label comes only from labelling functions *independent of the
baseline*: functions that neither use the base model's embeddings nor learn from its votes.

The rule (stated in the README): an article gets a silver label when at least
`gate.silver_min_votes` of the configured independent functions voted and every one of them that
voted chose the same class. Functions that are not independent are refused at config load.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

# Functions that read only the text, the URL or keyword lists: no base-model embedding, no
# learning from other functions' votes. `zero_shot` IS the baseline; `entities` learns its class
# profiles from the agreement of the others, zero-shot included.
INDEPENDENT_OF_BASELINE = frozenset({"keywords", "url_section"})


def check_silver_functions(functions: Sequence[str]) -> list[str]:
    """The names, or ValueError naming any function that is not independent of the baseline."""
    bad = [f for f in functions if f not in INDEPENDENT_OF_BASELINE]
    if bad:
        raise ValueError(
            f"{bad} cannot make silver labels: they use the base model's embeddings or learn from the "
            f"zero-shot baseline's votes; choose from {sorted(INDEPENDENT_OF_BASELINE)}"
        )
    if not functions:
        raise ValueError("at least one independent labelling function is needed for silver labels")
    return list(functions)


def silver_label(votes: dict[str, str | None], *, functions: Sequence[str], min_votes: int) -> str | None:
    """The class every voting independent function agrees on, if at least `min_votes` voted."""
    cast = [votes.get(f) for f in functions]
    given = [v for v in cast if v is not None]
    if len(given) < min_votes or len(set(given)) != 1:
        return None
    return given[0]


def silver_labels(
    votes_json: Sequence[str | None], *, functions: Sequence[str], min_votes: int, labels: Sequence[str]
) -> list[str | None]:
    """Per article (the `votes` JSON of labeled_articles), its silver label or None.

    A vote outside the schema (a label from an older config) counts as no vote.
    """
    allowed = set(labels)
    out: list[str | None] = []
    for raw in votes_json:
        votes = json.loads(raw) if raw else {}
        votes = {k: (v if v in allowed else None) for k, v in votes.items()}
        out.append(silver_label(votes, functions=functions, min_votes=min_votes))
    return out
