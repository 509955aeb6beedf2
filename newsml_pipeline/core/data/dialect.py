"""Everything that differs between the two warehouse backends, DuckDB and Postgres, in one place.

A `Session` is one open connection with the same small vocabulary on both: run SQL with `?`
parameters (bound by the driver: DuckDB natively, psycopg 3 as `%s`), read a result into polars,
name a polars frame as a table for the next statements (`register`), create / insert / list
tables, and `lock` the tables a write transaction is about to change. The warehouse and its
callers speak only this vocabulary; the SQL they write is the common subset of both dialects
(`INSERT ... ON CONFLICT`, `greatest`, `coalesce`, `timezone('UTC', ts)`, `= ANY(?)`).

What differs and where it is handled:
- parameters: `?` is rewritten to psycopg's `%s` outside quoted text (and `%` doubled);
- frames as tables: DuckDB scans the Arrow data in place; Postgres gets a temporary table filled
  by COPY (CSV written by polars; rows through psycopg where a column has no CSV form, e.g. bytes);
- results: DuckDB hands polars its Arrow result; on Postgres a SELECT comes back through
  `COPY (...) TO STDOUT` as CSV that polars parses, each column typed from the statement's
  column types (so an empty result still has its schema), or, where a column has no CSV form,
  as rows built into typed columns;
- types: one table maps polars types to each dialect's column types;
- concurrency: DuckDB lets one process write the file at a time, so `lock` does nothing there;
  on Postgres several processes write at once, so `lock` takes a transaction-scoped advisory lock
  per table (writers of one table queue, like DuckDB's, readers never wait);
- errors: a broken key constraint is `ConstraintViolation` on both.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import duckdb
import polars as pl

log = logging.getLogger(__name__)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class ConstraintViolation(Exception):
    """A statement broke a key or NOT NULL constraint (on either backend)."""


def ident(name: str) -> str:
    """Quote a table/column name after checking it is a plain identifier (no SQL injection)."""
    if not _IDENT.match(name):
        raise ValueError(f"not a valid table/column name: {name!r}")
    return f'"{name}"'


def is_postgres_url(target: str) -> bool:
    return str(target).startswith(POSTGRES_SCHEMES)


def redact(url: str) -> str:
    """The URL with any password replaced, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


# ---------------------------------------------------------------- types


def sql_type(dtype: pl.DataType, *, dialect: str) -> str:
    """Column type for a polars dtype in `dialect` ("duckdb" or "postgres")."""
    pg = dialect == "postgres"
    if dtype == pl.String() or dtype == pl.Null():
        return "TEXT" if pg else "VARCHAR"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    simple = {
        pl.Boolean(): "BOOLEAN",
        pl.Date(): "DATE",
        pl.Int8(): "SMALLINT",
        pl.Int16(): "SMALLINT",
        pl.Int32(): "INTEGER",
        pl.Int64(): "BIGINT",
        pl.UInt8(): "SMALLINT",
        pl.UInt16(): "INTEGER",
        pl.UInt32(): "BIGINT",
        pl.UInt64(): "NUMERIC(20)" if pg else "UBIGINT",
        pl.Float32(): "REAL",
        pl.Float64(): "DOUBLE PRECISION" if pg else "DOUBLE",
        pl.Binary(): "BYTEA" if pg else "BLOB",
    }
    for k, v in simple.items():
        if dtype == k:
            return v
    if isinstance(dtype, pl.Decimal):
        return "NUMERIC"
    raise TypeError(f"no {dialect} column type for polars dtype {dtype} (store it as a string column)")


# Postgres type OIDs -> polars dtypes for results (anything else is left to polars to infer).
_PG_OIDS: dict[int, pl.DataType] = {
    16: pl.Boolean(),
    17: pl.Binary(),
    18: pl.String(),
    19: pl.String(),
    20: pl.Int64(),
    21: pl.Int16(),
    23: pl.Int32(),
    25: pl.String(),
    700: pl.Float32(),
    701: pl.Float64(),
    1042: pl.String(),
    1043: pl.String(),
    1082: pl.Date(),
    1114: pl.Datetime("us"),
    1184: pl.Datetime("us", "UTC"),
    1700: pl.Float64(),
    2950: pl.String(),
}


_TS = "%Y-%m-%d %H:%M:%S%.f"  # Postgres' ISO output; the fraction is absent when zero
_TEXT = lambda c: c  # noqa: E731
# Postgres type OIDs -> how a COPY CSV text field becomes that column's polars type (the session's
# TimeZone is UTC, so timestamptz ends in "+00"); a result with any other type is read as rows.
_CSV_CASTS: dict[int, Any] = {
    16: lambda c: c == "t",
    18: _TEXT,
    19: _TEXT,
    20: lambda c: c.cast(pl.Int64()),
    21: lambda c: c.cast(pl.Int16()),
    23: lambda c: c.cast(pl.Int32()),
    25: _TEXT,
    700: lambda c: c.cast(pl.Float32()),
    701: lambda c: c.cast(pl.Float64()),
    1042: _TEXT,
    1043: _TEXT,
    1082: lambda c: c.str.to_date("%Y-%m-%d"),
    1114: lambda c: c.str.to_datetime(_TS, time_unit="us"),
    1184: lambda c: c.str.replace(r"\+00(:00)?$", "").str.to_datetime(_TS, time_unit="us", time_zone="UTC"),
    1700: lambda c: c.cast(pl.Float64()),
}
_SELECT = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)


def _pg_params_sql(sql: str) -> str:
    """`?` placeholders -> `%s` (psycopg), `%` -> `%%`; text inside quotes is left alone."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = None
            continue
        if ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


# ---------------------------------------------------------------- sessions


class Session:
    """One connection to the warehouse, dialect-aware; see the module docstring."""

    dialect: str = ""

    # -- implemented per dialect
    def execute(self, sql: str, params: list[Any] | None = None) -> None:
        raise NotImplementedError

    def query(self, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
        raise NotImplementedError

    def fetchall(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        raise NotImplementedError

    def register(self, name: str, df: pl.DataFrame) -> None:
        """Make `df` readable as table `name` by this session's next statements."""
        raise NotImplementedError

    def unregister(self, name: str) -> None:
        raise NotImplementedError

    def lock(self, *tables: str) -> None:
        """Inside a transaction: queue behind other writers of these tables until it ends."""
        raise NotImplementedError

    def begin(self) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _schema_filter(self) -> str:
        raise NotImplementedError

    def _copy_in(self, table: str, df: pl.DataFrame) -> None:
        raise NotImplementedError

    # -- shared
    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        rows = self.fetchall(sql, params)
        return rows[0][0] if rows else None

    def tables(self) -> set[str]:
        return {
            r[0]
            for r in self.fetchall(
                f"SELECT table_name FROM information_schema.tables WHERE {self._schema_filter()}"
            )
        }

    def table_exists(self, table: str) -> bool:
        return bool(
            self.scalar(
                "SELECT count(*) FROM information_schema.tables "
                f"WHERE table_name = ? AND {self._schema_filter()}",
                [table],
            )
        )

    def column_types(self, table: str) -> dict[str, str]:
        """Column name -> the backend's type name (upper case), in table order."""
        rows = self.fetchall(
            "SELECT column_name, data_type FROM information_schema.columns "
            f"WHERE table_name = ? AND {self._schema_filter()} ORDER BY ordinal_position",
            [table],
        )
        return {name: str(t).upper() for name, t in rows}

    def columns(self, table: str) -> list[str]:
        return list(self.column_types(table))

    def create_table(
        self, table: str, schema: dict[str, pl.DataType], *, primary_key: str | None = None
    ) -> None:
        """CREATE TABLE IF NOT EXISTS with each column's type mapped for this dialect."""
        cols = ", ".join(
            f"{ident(c)} {sql_type(t, dialect=self.dialect)}" + (" PRIMARY KEY" if c == primary_key else "")
            for c, t in schema.items()
        )
        self.execute(f"CREATE TABLE IF NOT EXISTS {ident(table)} ({cols})")

    def insert(self, table: str, df: pl.DataFrame) -> None:
        """Create the table from the frame's schema if needed, then insert by column name.

        Columns the table lacks are added as nullable (schema evolution)."""
        if not self.table_exists(table):
            self._create_from(table, df)
            return
        existing = set(self.columns(table))
        for col in [c for c in df.columns if c not in existing]:
            self.execute(f"ALTER TABLE {ident(table)} ADD COLUMN {ident(col)} {self._column_type(df, col)}")
        if len(df):
            self._copy_in(table, df)

    def replace_with(self, table: str, df: pl.DataFrame) -> None:
        """Drop `table` (if any) and create it from `df` (inside the caller's transaction)."""
        self.execute(f"DROP TABLE IF EXISTS {ident(table)}")
        self._create_from(table, df)

    def _create_from(self, table: str, df: pl.DataFrame) -> None:
        self.create_table(table, dict(df.schema))
        if len(df):
            self._copy_in(table, df)

    def _column_type(self, df: pl.DataFrame, col: str) -> str:
        return sql_type(df.schema[col], dialect=self.dialect)


class DuckDBSession(Session):
    dialect = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def execute(self, sql: str, params: list[Any] | None = None) -> None:
        try:
            self.con.execute(sql, params or [])
        except duckdb.ConstraintException as e:
            raise ConstraintViolation(str(e)) from e

    def query(self, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
        # a relation's .pl() (DuckDBPyConnection.pl() is gone in duckdb 2.0)
        return self.con.sql(sql, params=params or None).pl()

    def fetchall(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    def register(self, name: str, df: pl.DataFrame) -> None:
        self.con.register(name, df.to_arrow())

    def unregister(self, name: str) -> None:
        self.con.unregister(name)

    def lock(self, *tables: str) -> None:
        return None  # the open read-write connection already excludes every other writer

    def begin(self) -> None:
        self.con.execute("BEGIN TRANSACTION")

    def commit(self) -> None:
        self.con.execute("COMMIT")

    def rollback(self) -> None:
        self.con.execute("ROLLBACK")

    def close(self) -> None:
        self.con.close()

    def _schema_filter(self) -> str:
        return "table_schema = 'main'"

    def _create_from(self, table: str, df: pl.DataFrame) -> None:
        # DuckDB types the table from the Arrow schema itself (any polars type, lists included)
        self.con.register("_newsml_rows", df.to_arrow())
        try:
            self.execute(f"CREATE TABLE {ident(table)} AS SELECT * FROM _newsml_rows")
        finally:
            self.con.unregister("_newsml_rows")

    def _column_type(self, df: pl.DataFrame, col: str) -> str:
        self.con.register("_newsml_rows", df.select(col).to_arrow())
        try:
            return self.scalar(f"SELECT typeof({ident(col)}) FROM _newsml_rows LIMIT 1") or "VARCHAR"
        finally:
            self.con.unregister("_newsml_rows")

    def _copy_in(self, table: str, df: pl.DataFrame) -> None:
        self.con.register("_newsml_rows", df.to_arrow())
        try:
            cols = ", ".join(ident(c) for c in df.columns)
            self.execute(f"INSERT INTO {ident(table)} ({cols}) SELECT {cols} FROM _newsml_rows")
        finally:
            self.con.unregister("_newsml_rows")


class PostgresSession(Session):
    dialect = "postgres"

    def __init__(self, con: Any) -> None:  # psycopg.Connection (autocommit off)
        self.con = con

    def _run(self, cur: Any, sql: str, params: list[Any] | None) -> None:
        import psycopg

        try:
            if params:
                cur.execute(_pg_params_sql(sql), list(params))
            else:
                cur.execute(sql)
        except psycopg.errors.IntegrityError as e:
            raise ConstraintViolation(str(e)) from e

    def execute(self, sql: str, params: list[Any] | None = None) -> None:
        with self.con.cursor() as cur:
            self._run(cur, sql, params)

    def fetchall(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        with self.con.cursor() as cur:
            self._run(cur, sql, params)
            return cur.fetchall()

    def query(self, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
        """A SELECT whose columns all have a CSV form comes back through `COPY ... TO STDOUT` and
        polars' CSV reader (rows built one Python tuple at a time made a 1M-row read ~7x slower
        than DuckDB's); anything else through the cursor's rows."""
        if _SELECT.match(sql):
            with self.con.cursor() as cur:
                self._run(cur, f"SELECT * FROM ({sql}) AS _newsml_q LIMIT 0", params)
                desc = list(cur.description or [])
            names = [d.name for d in desc]
            if desc and len(set(names)) == len(names) and all(d.type_code in _CSV_CASTS for d in desc):
                return self._query_copy(sql, params, desc)
        return self._query_rows(sql, params)

    def _query_copy(self, sql: str, params: list[Any] | None, desc: list[Any]) -> pl.DataFrame:
        buf = io.BytesIO()
        statement = f"COPY ({_pg_params_sql(sql) if params else sql}) TO STDOUT WITH (FORMAT csv)"
        with self.con.cursor() as cur, cur.copy(statement, list(params) if params else None) as copy:
            for block in copy:
                buf.write(block)
        names = [d.name for d in desc]
        if buf.tell() == 0:
            return pl.DataFrame({n: [] for n in names}, schema={d.name: _PG_OIDS[d.type_code] for d in desc})
        # every field as text first: COPY writes NULL as an empty field and "" as a quoted one
        raw = pl.read_csv(buf.getvalue(), has_header=False, schema=dict.fromkeys(names, pl.String()))
        return raw.select(_CSV_CASTS[d.type_code](pl.col(d.name)) for d in desc)

    def _query_rows(self, sql: str, params: list[Any] | None) -> pl.DataFrame:
        with self.con.cursor() as cur:
            self._run(cur, sql, params)
            desc = cur.description or []
            rows = cur.fetchall()
        cols = list(zip(*rows, strict=True)) if rows else [()] * len(desc)
        series = []
        for d, values in zip(desc, cols, strict=True):
            dtype = _PG_OIDS.get(d.type_code)
            if d.type_code == 1700:  # numeric arrives as Decimal
                values = [None if v is None else float(v) for v in values]
            series.append(pl.Series(d.name, list(values), dtype=dtype, strict=False))
        return pl.DataFrame(series)

    def register(self, name: str, df: pl.DataFrame) -> None:
        cols = ", ".join(f"{ident(c)} {sql_type(t, dialect=self.dialect)}" for c, t in df.schema.items())
        self.execute(f"DROP TABLE IF EXISTS pg_temp.{ident(name)}")
        self.execute(f"CREATE TEMPORARY TABLE {ident(name)} ({cols})")
        if len(df):
            self._copy_in(name, df)
        self.execute(f"ANALYZE {ident(name)}")  # the planner knows the key list's size

    def unregister(self, name: str) -> None:
        self.execute(f"DROP TABLE IF EXISTS pg_temp.{ident(name)}")

    def lock(self, *tables: str) -> None:
        for t in sorted(set(tables)):  # one order for everyone: no lock-order deadlock
            self.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", [f"newsml:{t}"])

    def begin(self) -> None:
        return None  # psycopg opens a transaction with the first statement (autocommit off)

    def commit(self) -> None:
        self.con.commit()

    def rollback(self) -> None:
        self.con.rollback()

    def close(self) -> None:
        self.con.close()

    def _schema_filter(self) -> str:
        return "table_schema = current_schema()"

    def _copy_in(self, table: str, df: pl.DataFrame) -> None:
        cols = ", ".join(ident(c) for c in df.columns)
        with self.con.cursor() as cur:
            if all(_csv_safe(t) for t in df.schema.values()):
                # polars writes NULL as an empty field and "" as a quoted one, as COPY CSV reads them
                with cur.copy(f"COPY {ident(table)} ({cols}) FROM STDIN WITH (FORMAT csv)") as copy:
                    buf = io.BytesIO()
                    df.write_csv(buf, include_header=False)
                    copy.write(buf.getvalue())
            else:
                with cur.copy(f"COPY {ident(table)} ({cols}) FROM STDIN") as copy:
                    for row in _rows(df):
                        copy.write_row(row)


def _csv_safe(dtype: pl.DataType) -> bool:
    return not (dtype == pl.Binary() or isinstance(dtype, pl.List | pl.Array | pl.Struct | pl.Object))


def _rows(df: pl.DataFrame) -> Iterable[tuple]:
    return df.iter_rows()


def connect_postgres(url: str) -> Any:
    """A psycopg 3 connection in UTC (timestamps come back aware, in UTC)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(url)
    params["options"] = f"{params.get('options', '')} -c TimeZone=UTC".strip()
    return psycopg.connect(**params, autocommit=False)
