"""to_utc: the one ISO date → UTC parser that feeds, extracted pages and local records share."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from newsml_pipeline.core.crawl.dates import to_utc


def test_naive_is_utc_offsets_convert_and_a_date_is_midnight() -> None:
    assert to_utc("2026-11-20T10:00:00") == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert to_utc(" 2026-11-20T10:00:00+02:00 ") == datetime(2026, 11, 20, 8, tzinfo=UTC)
    assert to_utc("2026-11-20") == datetime(2026, 11, 20, tzinfo=UTC)
    assert to_utc(date(2026, 11, 20)) == datetime(2026, 11, 20, tzinfo=UTC)
    assert to_utc(None) is None and to_utc("") is None


def test_a_bad_value_raises_unless_lenient() -> None:
    with pytest.raises(ValueError, match="'yesterday'"):
        to_utc("yesterday")
    with pytest.raises(ValueError, match="unsupported type int"):
        to_utc(20261120)
    assert to_utc("yesterday", lenient=True) is None
    assert to_utc(20261120, lenient=True) is None
