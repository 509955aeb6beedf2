"""Publication dates as the crawl stores them: ISO 8601 text (or a date) → an aware UTC datetime.

Feeds, extracted pages and local/hf records all go through `to_utc`, so an article's
`published_at` means the same whichever way it came in: a naive value is taken as UTC, an
offset is converted, a bare date is that day's UTC midnight.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any


def to_utc(value: Any, *, lenient: bool = False) -> datetime | None:
    """ISO date/datetime string, `date` or `datetime` → aware UTC datetime; None or "" → None.

    A value that is not a date raises ValueError, or gives None with `lenient` (a feed's or a
    page's own date is a hint, not a record the user wrote)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            if lenient:
                return None
            raise ValueError(f"is not an ISO date/datetime: {value!r}") from None
    elif lenient:
        return None
    else:
        raise ValueError(f"has unsupported type {type(value).__name__}")
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
