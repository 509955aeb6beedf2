"""Which days a backfill can fill: feeds keep days, not years, and the store holds what was crawled.

A day with nothing stored that is older than the oldest article the sources hold now cannot gain
an article from this read: materializing it would record an empty day as if it had been ingested.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date


def unservable_days(
    days: Sequence[date], *, stored: Mapping[date, int], oldest_served: date | None
) -> list[date]:
    """The `days` with no stored article that are older than `oldest_served` (the oldest
    partition_date among the articles the sources returned now). When the sources returned
    nothing, their window is unknown and no day is judged."""
    if oldest_served is None:
        return []
    return [d for d in days if stored.get(d, 0) == 0 and d < oldest_served]


def days_label(days: Sequence[date]) -> str:
    """`2020-01-01`, `2020-01-01...2020-03-31 (91 days)`."""
    days = sorted(days)
    if len(days) == 1:
        return days[0].isoformat()
    return f"{days[0].isoformat()}...{days[-1].isoformat()} ({len(days)} days)"
