"""DuckDB warehouse access: one table per tabular asset in `$NEWSML_HOME/warehouse.duckdb`.

DuckDB lets one process write at a time, and Dagster runs steps in separate processes, so every
operation opens a short-lived connection and retries while another process holds the lock.
Writes that replace a partition run in one transaction: a crash leaves the old rows intact.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

log = logging.getLogger(__name__)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _ident(name: str) -> str:
    """Quote a table/column name after checking it is a plain identifier (no SQL injection)."""
    if not _IDENT.match(name):
        raise ValueError(f"not a valid table/column name: {name!r}")
    return f'"{name}"'


class Warehouse:
    """Small, explicit API over one DuckDB file; every method is safe to call from any process."""

    def __init__(self, path: str | Path, *, lock_timeout_s: float = 120.0) -> None:
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open a connection, waiting (with backoff) while another process holds the write lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if read_only and not self.path.exists():
            read_only = False  # nothing to read yet; create the empty file
        deadline = time.monotonic() + self.lock_timeout_s
        wait = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as e:
                if "lock" not in str(e).lower() or time.monotonic() > deadline:
                    raise
                log.debug("warehouse %s is locked by another process; retrying in %.2fs", self.path, wait)
                time.sleep(wait)
                wait = min(wait * 2, 2.0)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside BEGIN/COMMIT: everything done with it lands together or not at all."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # ------------------------------------------------------------ reads

    def table_exists(self, table: str) -> bool:
        with self.connect(read_only=True) as con:
            return _table_exists(con, table)

    def read(self, table: str, *, where: str | None = None, params: list[Any] | None = None) -> pl.DataFrame:
        """Read a table (optionally filtered with a parameterised WHERE clause) into polars."""
        with self.connect(read_only=True) as con:
            if not _table_exists(con, table):
                raise LookupError(
                    f"table {table!r} does not exist in {self.path}; materialize the asset that writes it first"
                )
            sql = f"SELECT * FROM {_ident(table)}"
            if where:
                sql += f" WHERE {where}"
            return _frame(con, sql, params)

    def query(
        self, sql: str, params: list[Any] | None = None, *, frames: dict[str, pl.DataFrame] | None = None
    ) -> pl.DataFrame:
        """Run a read query; `frames` are polars frames the SQL can name as tables (e.g. key lists)."""
        with self.connect(read_only=True) as con:
            for name, df in (frames or {}).items():
                con.register(name, df.to_arrow())
            return _frame(con, sql, params)

    def columns(self, table: str) -> list[str]:
        with self.connect(read_only=True) as con:
            return [r[0] for r in con.execute(f"DESCRIBE {_ident(table)}").fetchall()]

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
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                deleted = 0
                if _table_exists(con, table):
                    deleted = _scalar(
                        con,
                        f"SELECT count(*) FROM {_ident(table)} WHERE {_ident(partition_column)} = ?",
                        [partition_key],
                    )
                    con.execute(
                        f"DELETE FROM {_ident(table)} WHERE {_ident(partition_column)} = ?", [partition_key]
                    )
                _insert(con, table, df)
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        return int(deleted)

    def upsert(self, table: str, df: pl.DataFrame, *, key: str) -> None:
        """Insert rows, replacing existing rows with the same `key` (one transaction)."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                if _table_exists(con, table) and len(df):
                    con.register("_upsert_keys", df.select(key).to_arrow())
                    con.execute(
                        f"DELETE FROM {_ident(table)} WHERE {_ident(key)} IN (SELECT {_ident(key)} FROM _upsert_keys)"
                    )
                    con.unregister("_upsert_keys")
                _insert(con, table, df)
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise

    def replace_table(self, table: str, df: pl.DataFrame) -> None:
        """Replace a whole (unpartitioned) table atomically."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.register("_new_rows", df.to_arrow())
                con.execute(f"CREATE OR REPLACE TABLE {_ident(table)} AS SELECT * FROM _new_rows")
                con.unregister("_new_rows")
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise

    def append(self, table: str, df: pl.DataFrame) -> None:
        with self.connect() as con:
            _insert(con, table, df)


def _table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        _scalar(
            con,
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'",
            [table],
        )
    )


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
    """Run a query and return all rows as a polars frame (a relation's .pl() avoids an extra copy)."""
    return con.sql(sql, params=params or None).pl()


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """First value of a query; fetches the whole result so the connection is free afterwards."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def _insert(con: duckdb.DuckDBPyConnection, table: str, df: pl.DataFrame) -> None:
    """Create the table from the frame's schema if needed, then insert by column name."""
    con.register("_new_rows", df.to_arrow())
    try:
        if not _table_exists(con, table):
            con.execute(f"CREATE TABLE {_ident(table)} AS SELECT * FROM _new_rows")
            return
        existing = [r[0] for r in con.execute(f"DESCRIBE {_ident(table)}").fetchall()]
        missing = [c for c in df.columns if c not in existing]
        for col in missing:  # schema evolution: new columns are added as nullable
            sql_type = _scalar(con, f"SELECT typeof({_ident(col)}) FROM _new_rows LIMIT 1") or "VARCHAR"
            con.execute(f"ALTER TABLE {_ident(table)} ADD COLUMN {_ident(col)} {sql_type}")
        if len(df):
            cols = ", ".join(_ident(c) for c in df.columns)
            con.execute(f"INSERT INTO {_ident(table)} ({cols}) SELECT {cols} FROM _new_rows")
    finally:
        con.unregister("_new_rows")
