"""Warehouse access: one table per tabular asset, in a DuckDB file (default) or a Postgres database.

`Warehouse(target)` takes a path (the DuckDB file `$NEWSML_HOME/warehouse.duckdb`) or a
`postgresql://` URL (`warehouse.url` in the config, or NEWSML_WAREHOUSE_URL); the methods and the
SQL callers pass are the same on both, and what differs lives in `dialect`.

DuckDB lets one process write at a time, and Dagster runs steps in separate processes, so every
operation opens a short-lived connection and retries while another process holds the lock. On
Postgres many processes write at once; each write takes an advisory lock on the tables it changes,
so writers of one table queue as they do on DuckDB while readers never wait. Writes that replace a
partition run in one transaction on both: a crash leaves the old rows intact.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from newsml_pipeline.core.data.dialect import (
    ConstraintViolation,
    DuckDBSession,
    PostgresSession,
    Session,
    connect_postgres,
    ident,
    is_postgres_url,
    redact,
)

log = logging.getLogger(__name__)

__all__ = ["ConstraintViolation", "Session", "Warehouse"]


class Warehouse:
    """Small, explicit API over one warehouse; every method is safe to call from any process."""

    def __init__(self, target: str | Path, *, lock_timeout_s: float = 120.0) -> None:
        self.url: str | None = str(target) if is_postgres_url(str(target)) else None
        # the DuckDB file (None on Postgres)
        self.path: Path | None = None if self.url else Path(target)
        self.lock_timeout_s = lock_timeout_s

    @property
    def dialect(self) -> str:
        return "postgres" if self.url else "duckdb"

    @property
    def location(self) -> str:
        """Where the tables are, for messages (a Postgres password is never shown)."""
        return redact(self.url) if self.url else str(self.path)

    def __repr__(self) -> str:
        return f"Warehouse({self.location!r})"

    @contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[Session]:
        """One connection (DuckDB: waiting with backoff while another process holds the write lock)."""
        s = self._open_postgres() if self.url else self._open_duckdb(read_only=read_only)
        try:
            yield s
        finally:
            s.close()

    def _open_postgres(self) -> Session:
        return PostgresSession(connect_postgres(self.url))

    def _open_duckdb(self, *, read_only: bool) -> Session:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if read_only and not self.path.exists():
            read_only = False  # nothing to read yet; create the empty file
        deadline = time.monotonic() + self.lock_timeout_s
        wait = 0.05
        while True:
            try:
                return DuckDBSession(duckdb.connect(str(self.path), read_only=read_only))
            except duckdb.IOException as e:
                if "lock" not in str(e).lower() or time.monotonic() > deadline:
                    raise
                log.debug("warehouse %s is locked by another process; retrying in %.2fs", self.path, wait)
                time.sleep(wait)
                wait = min(wait * 2, 2.0)

    @contextmanager
    def transaction(self, *, lock: tuple[str, ...] = ()) -> Iterator[Session]:
        """A session inside BEGIN/COMMIT: everything done with it lands together or not at all.

        `lock` names the tables it will change: their other writers wait until it ends."""
        with self.session() as s:
            s.begin()
            try:
                if lock:
                    s.lock(*lock)
                yield s
            except BaseException:
                s.rollback()
                raise
            s.commit()

    # ------------------------------------------------------------ reads

    def table_exists(self, table: str) -> bool:
        with self.session(read_only=True) as s:
            return s.table_exists(table)

    def read(self, table: str, *, where: str | None = None, params: list[Any] | None = None) -> pl.DataFrame:
        """Read a table (optionally filtered with a parameterised WHERE clause) into polars."""
        with self.session(read_only=True) as s:
            if not s.table_exists(table):
                raise LookupError(
                    f"table {table!r} does not exist in {self.location}; materialize the asset that writes it first"
                )
            sql = f"SELECT * FROM {ident(table)}"
            if where:
                sql += f" WHERE {where}"
            return s.query(sql, params)

    def query(
        self, sql: str, params: list[Any] | None = None, *, frames: dict[str, pl.DataFrame] | None = None
    ) -> pl.DataFrame:
        """Run a read query; `frames` are polars frames the SQL can name as tables (e.g. key lists)."""
        with self.session(read_only=True) as s:
            for name, df in (frames or {}).items():
                s.register(name, df)
            return s.query(sql, params)

    def columns(self, table: str) -> list[str]:
        with self.session(read_only=True) as s:
            return s.columns(table)

    def column_types(self, table: str) -> dict[str, str]:
        """Column name -> the backend's type name, upper case (e.g. 'TIMESTAMP WITH TIME ZONE')."""
        with self.session(read_only=True) as s:
            return s.column_types(table)

    # ------------------------------------------------------------ writes

    def replace_partition(
        self, table: str, df: pl.DataFrame, *, partition_column: str, partition_key: Any
    ) -> int:
        """Atomically replace every row whose `partition_column` equals `partition_key` with `df`.

        Rows of other partitions are untouched, so re-materializing a partition never duplicates.
        Returns the number of rows that were deleted.
        """
        if len(df) and partition_column not in df.columns:
            raise ValueError(f"dataframe for {table} lacks partition column {partition_column!r}")
        with self.transaction(lock=(table,)) as s:
            deleted = 0
            if s.table_exists(table):
                where = f"{ident(partition_column)} = ?"
                deleted = s.scalar(f"SELECT count(*) FROM {ident(table)} WHERE {where}", [partition_key])
                s.execute(f"DELETE FROM {ident(table)} WHERE {where}", [partition_key])
            s.insert(table, df)
        return int(deleted)

    def upsert(self, table: str, df: pl.DataFrame, *, key: str) -> None:
        """Insert rows, replacing existing rows with the same `key` (one transaction)."""
        with self.transaction(lock=(table,)) as s:
            if len(df) and s.table_exists(table):
                s.register("_upsert_keys", df.select(key))
                s.execute(
                    f"DELETE FROM {ident(table)} WHERE {ident(key)} IN (SELECT {ident(key)} FROM _upsert_keys)"
                )
                s.unregister("_upsert_keys")
            s.insert(table, df)

    def replace_table(self, table: str, df: pl.DataFrame) -> None:
        """Replace a whole (unpartitioned) table atomically."""
        with self.transaction(lock=(table,)) as s:
            s.replace_with(table, df)

    def append(self, table: str, df: pl.DataFrame) -> None:
        with self.transaction(lock=(table,)) as s:
            s.insert(table, df)
