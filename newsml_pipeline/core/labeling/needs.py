"""How many trusted (gold) labels each class still needs before the splits and the gate can run.

`dataset_splits` sends whole near-duplicate groups to val/test by a salted hash, with shares
`splits.val_fraction` / `splits.test_fraction`; gold rows that land there become evaluation rows.
The splits need `splits.min_per_class_eval` of each class in val and in test, and the gate needs
`gate.min_test_rows` test rows in all. So a class with `n` gold labels expects `n·test_fraction`
of them in test: this module turns those rules into the per-class number a person can act on
(the review queue's metadata and the labelling page show it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from newsml_pipeline.settings import NewsmlConfig


def gold_needed_per_class(
    *, k: int, val_fraction: float, test_fraction: float, min_per_class_eval: int, min_test_rows: int
) -> int:
    """Gold labels per class for the expected val/test share to meet the splits' and the gate's
    minimums (the test minimum spread evenly over the k classes)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    per_class_test = max(min_per_class_eval, math.ceil(min_test_rows / k))
    return max(math.ceil(min_per_class_eval / val_fraction), math.ceil(per_class_test / test_fraction))


def trusted_labels_needed(
    have: Mapping[str, int],
    *,
    labels: list[str],
    val_fraction: float,
    test_fraction: float,
    min_per_class_eval: int,
    min_test_rows: int,
) -> dict[str, int]:
    """Per class (in schema order): how many more trusted labels it needs (0 = enough).

    `have`: trusted labels per class so far (feedback and gold carried by sources); classes
    missing from it have none; labels outside the schema are ignored.
    """
    target = gold_needed_per_class(
        k=len(labels),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        min_per_class_eval=min_per_class_eval,
        min_test_rows=min_test_rows,
    )
    return {c: max(0, target - int(have.get(c, 0))) for c in labels}


def trusted_labels_needed_by_config(have: Mapping[str, int], *, cfg: NewsmlConfig) -> dict[str, int]:
    """trusted_labels_needed with the config's schema, `splits.*` fractions and `gate.min_test_rows`."""
    return trusted_labels_needed(
        have,
        labels=cfg.labels.names,
        val_fraction=cfg.splits.val_fraction,
        test_fraction=cfg.splits.test_fraction,
        min_per_class_eval=cfg.splits.min_per_class_eval,
        min_test_rows=cfg.gate.min_test_rows,
    )
