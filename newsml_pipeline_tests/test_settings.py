"""The YAML config: the shipped one loads; typos, wrong types and unknown kinds fail clearly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from newsml_pipeline.settings import DEFAULT_CONFIG_PATH, ConfigError, Settings, check_cron, load_config


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _base() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())


def test_shipped_config_loads_with_feeds_and_inbox(newsml_home: Path) -> None:
    cfg = load_config(DEFAULT_CONFIG_PATH)
    kinds = {s.kind for s in cfg.sources}
    assert kinds == {"rss", "local"}
    assert sum(s.kind == "rss" for s in cfg.sources) >= 3
    inbox = cfg.source("inbox")
    assert inbox.path == str(newsml_home / "inbox")  # ${NEWSML_HOME} expanded
    assert cfg.gate.min_gain_over_baseline == 0.05
    assert cfg.drift.delta == 0.002


def test_typo_key_names_key_and_file(tmp_path: Path) -> None:
    data = _base()
    data["crawl"]["concurency"] = 4
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and "crawl.concurency" in msg and "unknown key" in msg


def test_wrong_type_and_unknown_source_kind(tmp_path: Path) -> None:
    data = _base()
    data["training"]["epochs"] = "three"
    data["sources"].append({"name": "x", "kind": "ftp", "url": "ftp://example.org"})
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, data))
    msg = str(err.value)
    assert "training.epochs" in msg
    assert "sources.7" in msg and "ftp" in msg


def test_top_level_typo_duplicate_sources_and_missing_file(tmp_path: Path) -> None:
    data = _base()
    data["gates"] = {}
    with pytest.raises(ConfigError, match="gates: unknown key"):
        load_config(_write(tmp_path, data))
    data = _base()
    data["sources"].append(dict(data["sources"][0]))
    with pytest.raises(ConfigError, match="source names must be unique"):
        load_config(_write(tmp_path, data))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("sources: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


def test_unset_env_var_in_config_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSML_TEST_UNSET", raising=False)
    data = _base()
    data["sources"] = [{"name": "l", "kind": "local", "path": "${NEWSML_TEST_UNSET}/x"}]
    with pytest.raises(ConfigError, match="NEWSML_TEST_UNSET"):
        load_config(_write(tmp_path, data))


def test_environment_wins_over_the_config_for_every_store(
    newsml_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One rule for the MLflow tracking URI and the warehouse: env var > config key > default."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("NEWSML_WAREHOUSE_URL", raising=False)
    s = Settings(home=newsml_home, config_file=DEFAULT_CONFIG_PATH)
    assert s.mlflow_tracking_uri() == f"sqlite:///{newsml_home / 'mlflow.db'}"
    assert s.warehouse_target == str(newsml_home / "warehouse.duckdb")
    data = _base()
    data["mlflow"] = {"tracking_uri": "sqlite:///from-config.db"}
    data["warehouse"] = {"url": "postgresql://config-host/newsml"}
    from_config = Settings(home=newsml_home, config_file=_write(tmp_path, data))
    assert from_config.mlflow_tracking_uri() == "sqlite:///from-config.db"
    assert from_config.warehouse_target == "postgresql://config-host/newsml"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("NEWSML_WAREHOUSE_URL", "postgresql://env-host/newsml")
    for settings in (s, from_config):
        assert settings.mlflow_tracking_uri() == "http://mlflow.internal:5000"
        assert settings.warehouse_target == "postgresql://env-host/newsml"


def test_ingest_and_retrain_crons_are_config_keys_checked_at_load(tmp_path: Path) -> None:
    cfg = load_config(DEFAULT_CONFIG_PATH)
    assert (cfg.schedules.ingest, cfg.schedules.retrain) == ("30 0 * * *", "0 3 * * 1")  # DESIGN's defaults
    data = _base()
    data["schedules"] = {"ingest": "15 1 * * *", "retrain": "0 4 * * sun"}
    assert load_config(_write(tmp_path, data)).schedules.retrain == "0 4 * * sun"
    data["schedules"] = {"retrian": "0 4 * * 0"}
    with pytest.raises(ConfigError, match=r"schedules\.retrian: unknown key \(typo\?\)") as err:
        load_config(_write(tmp_path, data))
    assert str(tmp_path / "cfg.yaml") in str(err.value)
    for key, bad in [
        ("retrain", "0 3 * * 8"),  # day of week 0-7
        ("retrain", "0 3 * * mon-fry"),
        ("ingest", "30 24 * * *"),
        ("ingest", "30 0 * *"),
        ("ingest", "*/0 * * * *"),
    ]:
        data["schedules"] = {key: bad}
        with pytest.raises(ConfigError, match=rf"schedules\.{key}: .*{re.escape(repr(bad))}"):
            load_config(_write(tmp_path, data))
    data = _base()
    data["crawl"]["schedule"] = "0 * * * 9"  # crawl.schedule gets the same check
    with pytest.raises(ConfigError, match=r"crawl\.schedule: .*day of week"):
        load_config(_write(tmp_path, data))


@pytest.mark.parametrize(
    "cron",
    [
        "30 0 * * *",
        "0 3 * * 1",
        "*/15 * * * *",
        "0 9-17/2 * * mon-fri",
        "0 0 1,15 jan,jul *",
        "0 0 * * 7",
        "0 3 * * 8",
        "60 * * * *",
        "0 0 0 * *",
        "0 0 * 13 *",
        "0 3 * *",
        "0 3 * * * *",
        "a * * * *",
        "0 3 * * mon-fry",
        "1-2-3 * * * *",
        "*/x * * * *",
        "0 0 32 * *",
    ],
)
def test_cron_check_agrees_with_dagsters_parser(cron: str) -> None:
    """What passes at config load is what Dagster's schedules accept, and nothing else."""
    from dagster._utils.schedules import is_valid_cron_string

    try:
        check_cron(cron)
        ours = True
    except ValueError:
        ours = False
    assert ours == is_valid_cron_string(cron)
