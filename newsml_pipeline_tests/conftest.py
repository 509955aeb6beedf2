"""Fixtures shared by all tests: the real corpora in ../shared and an isolated NEWSML_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Where the shared corpora are and how they read: the benchmarks' own module (testkit/corpora.py).
from testkit.corpora import CORPORA, SHARED, read_jsonl_gz  # noqa: F401 - re-exported to the tests

# Retries back off from 0.1 s instead of 10 s (defs/retries.py): the tests that fail a step for
# real (every source down) still go through every attempt, without a minute of sleeping. Set
# before any test imports the code location; step and CLI subprocesses inherit it.
os.environ.setdefault("NEWSML_RETRY_DELAY_S", "0.1")

REPO_ROOT = Path(__file__).resolve().parents[1]


def corpora_dir() -> Path:
    """Path of ../shared/corpora; tests that need it skip with a reason when it is absent."""
    if not CORPORA.is_dir():
        pytest.skip(f"real corpora not found at {CORPORA} (set NEWSML_SHARED to the shared/ folder)")
    return CORPORA


@pytest.fixture(scope="session")
def corpora() -> Path:
    return corpora_dir()


@pytest.fixture(scope="session")
def bbc_rows(corpora: Path) -> list[dict]:
    """All 2,225 BBC articles with gold topics (98 are exact duplicates of another)."""
    return read_jsonl_gz(corpora / "bbc_news" / "bbc_news.jsonl.gz")


@pytest.fixture
def newsml_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty NEWSML_HOME for one test, so no test touches ./data or another test's state."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("NEWSML_HOME", str(home))
    # mlflow.set_tracking_uri() also exports MLFLOW_TRACKING_URI, which Settings honours: without
    # this an earlier test's MLflow store (and its champion) would leak into this test.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("NEWSML_WAREHOUSE_URL", raising=False)  # a Postgres warehouse is opted into
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway Postgres server for the whole run (see testkit/postgres_server.py); skips without it."""
    from testkit.postgres_server import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "Postgres binaries (initdb, pg_ctl, postgres) not found on PATH, NEWSML_PG_BIN or "
            "/usr/lib/postgresql/*/bin; install Debian's `postgresql` package to run the Postgres tests"
        )
    server = PostgresServer(bin_dir).start()
    yield server
    server.stop()


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """What `Warehouse(...)` opens, once per backend: a DuckDB file, or a fresh Postgres database."""
    if request.param == "duckdb":
        return str(tmp_path / "warehouse.duckdb")
    return request.getfixturevalue("postgres_server").create_database()
