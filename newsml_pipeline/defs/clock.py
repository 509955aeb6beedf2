"""The time a run acts as: now, unless the run carries the tag `newsml/as_of`.

A crawl stamps what it stores with its fetch time, and an undated article belongs to the day it
was first fetched; the rolling window of the splits ends today. To replay weeks of a newsroom in
minutes (the simulated newsroom benchmark, the demo, tests), a run can be told what time it is
with a run tag, visible in the UI like any other tag. Runs without the tag use the real clock.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

AS_OF_TAG = "newsml/as_of"


def run_time(context: dg.AssetExecutionContext) -> datetime:
    """The run's `newsml/as_of` tag (ISO datetime with a zone) or, without it, now (UTC)."""
    value = context.run.tags.get(AS_OF_TAG)
    if value is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(value)
    except ValueError as e:
        raise dg.Failure(f"run tag {AS_OF_TAG}={value!r} is not an ISO datetime") from e
    if when.tzinfo is None:
        raise dg.Failure(f"run tag {AS_OF_TAG}={value!r} needs a time zone (e.g. +00:00)")
    return when.astimezone(UTC)
