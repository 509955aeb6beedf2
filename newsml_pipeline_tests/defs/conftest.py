"""Helpers for Dagster-layer tests: a Settings object over a config written to tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from newsml_pipeline.settings import DEFAULT_CONFIG_PATH, Settings


def write_config(path: Path, **overrides: Any) -> Path:
    """The shipped config with top-level keys replaced (labels kept unless overridden)."""
    base = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    # Tests use fixed dates; the shipped rolling range (today - lookback_days) would drop them as
    # the calendar moves, so they pin the start the way a user backfilling an archive does.
    base["partitions"] = {"start_date": "2020-01-01"}
    base.update(overrides)
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return path


@pytest.fixture
def make_settings(newsml_home: Path, tmp_path: Path):
    def _make(**overrides: Any) -> Settings:
        cfg = write_config(tmp_path / "config.yaml", **overrides)
        return Settings(home=newsml_home, config_file=cfg)

    return _make
