"""The one daily partitioning shared by raw, labeled and scored articles (UTC, by published date)."""

from __future__ import annotations

import dagster as dg

from newsml_pipeline.settings import NewsmlConfig


def daily_partitions(config: NewsmlConfig) -> dg.DailyPartitionsDefinition:
    """Daily partitions from `partitions.start_date`; end_offset=1 makes today's partition
    materializable (news arrives during the day, so today is the partition people run)."""
    return dg.DailyPartitionsDefinition(start_date=config.partitions.start_date, timezone="UTC", end_offset=1)
