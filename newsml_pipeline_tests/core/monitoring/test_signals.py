from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from newsml_pipeline.core.monitoring.signals import SignalError, check_signal_names, extract_signals


def _rows(**cols):
    base = {
        "article_id": ["a", "b", "c", "d"],
        "label": ["sport", "tech", "sport", "politics"],
        "confidence": [0.9, 0.4, 1.0, 0.0],
        "auto_label": ["sport", "sport", None, "politics"],
    }
    base.update(cols)
    return pl.DataFrame(base, schema_overrides={"auto_label": pl.String})


def test_confidence_and_disagreement_streams():
    out = extract_signals(_rows(), signals=["confidence", "disagreement"])
    np.testing.assert_array_equal(out["confidence"].row_offsets, [0, 1, 2, 3])
    np.testing.assert_allclose(out["confidence"].values, [0.9, 0.4, 1.0, 0.0])
    # the row without an auto-label (offset 2) is skipped, not counted as agreement
    np.testing.assert_array_equal(out["disagreement"].row_offsets, [0, 1, 3])
    np.testing.assert_array_equal(out["disagreement"].values, [0.0, 1.0, 0.0])


def test_only_configured_signals_are_extracted():
    assert list(extract_signals(_rows(), signals=["disagreement"])) == ["disagreement"]


def test_confidence_out_of_range_names_the_article():
    with pytest.raises(SignalError, match=r"article_id='b'.*1\.5"):
        extract_signals(_rows(confidence=[0.5, 1.5, 0.5, 0.5]), signals=["confidence"])


def test_null_confidence_is_an_error():
    rows = _rows(confidence=[0.5, None, 0.5, 0.5])
    with pytest.raises(SignalError, match="in \\[0, 1\\]"):
        extract_signals(rows, signals=["confidence"])


def test_missing_column_is_an_error():
    with pytest.raises(SignalError, match="auto_label"):
        extract_signals(_rows().drop("auto_label"), signals=["disagreement"])


def test_unknown_or_repeated_signal_names():
    with pytest.raises(SignalError, match="unknown"):
        check_signal_names(["confidence", "entropy"])
    with pytest.raises(SignalError, match="unique"):
        check_signal_names(["confidence", "confidence"])
    with pytest.raises(SignalError, match="at least one"):
        check_signal_names([])
