"""Trusted labels still needed per class, from the splits' and the gate's minimums."""

import pytest

from newsml_pipeline.core.labeling.needs import gold_needed_per_class, trusted_labels_needed

DEFAULTS = {"val_fraction": 0.15, "test_fraction": 0.15, "min_per_class_eval": 2, "min_test_rows": 50}


def test_defaults_need_ten_test_rows_per_class_of_five() -> None:
    # 50 test rows over 5 classes = 10 per class; at a 15 % test share that is 67 gold labels a class
    assert gold_needed_per_class(k=5, **DEFAULTS) == 67


def test_remaining_need_counts_down_and_ignores_unknown_labels() -> None:
    need = trusted_labels_needed({"a": 60, "b": 200, "zzz": 5}, labels=["a", "b", "c"], **DEFAULTS)
    target = gold_needed_per_class(k=3, **DEFAULTS)
    assert need == {"a": target - 60, "b": 0, "c": target}


def test_the_eval_minimum_binds_when_the_test_minimum_is_small() -> None:
    cfg = {**DEFAULTS, "min_test_rows": 1, "min_per_class_eval": 3, "val_fraction": 0.1}
    assert gold_needed_per_class(k=4, **cfg) == 30  # 3 in val at a 10 % share


def test_no_classes_is_an_error() -> None:
    with pytest.raises(ValueError):
        gold_needed_per_class(k=0, **DEFAULTS)
