"""The warehouse interface, the same on both backends: a DuckDB file and a real Postgres database."""

from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, date, datetime

import polars as pl
import pytest

from newsml_pipeline.core.data.dialect import _pg_params_sql, redact, sql_type
from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.settings import ConfigError, Settings
from newsml_pipeline_tests.defs.conftest import write_config

D1, D2 = date(2026, 11, 20), date(2026, 11, 21)
T = datetime(2026, 11, 20, 9, 30, 15, 123456, tzinfo=UTC)


def day_rows(day: date, ids: list[str], *, text: str = "t") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "article_id": ids,
            "partition_date": [day] * len(ids),
            "text": [f"{text} {i}" for i in ids],
            "confidence": [0.5] * len(ids),
            "fetched_at": [T] * len(ids),
            "flag": [i.endswith("0") for i in ids],
        }
    )


def test_replace_partition_replaces_one_day_and_never_duplicates(warehouse_target: str) -> None:
    wh = Warehouse(warehouse_target)
    assert (
        wh.replace_partition(
            "t", day_rows(D1, ["a0", "a1"]), partition_column="partition_date", partition_key=D1
        )
        == 0
    )
    wh.replace_partition("t", day_rows(D2, ["b0"]), partition_column="partition_date", partition_key=D2)
    deleted = wh.replace_partition(
        "t", day_rows(D1, ["a0", "a2"], text="v2"), partition_column="partition_date", partition_key=D1
    )
    assert deleted == 2
    got = wh.read("t").sort("article_id")
    assert got["article_id"].to_list() == ["a0", "a2", "b0"]
    assert got.filter(pl.col("article_id") == "a0")["text"].item() == "v2 a0"
    # types round-trip on both backends
    assert got.schema["partition_date"] == pl.Date()
    assert got.schema["fetched_at"].time_zone in ("UTC", "Etc/UTC")  # DuckDB names its session zone
    assert got["fetched_at"].to_list() == [T] * 3
    assert got.schema["flag"] == pl.Boolean() and got["flag"].to_list() == [True, False, True]
    day2 = wh.read("t", where="partition_date = ?", params=[D2])
    assert day2["article_id"].to_list() == ["b0"]


def test_a_failed_write_leaves_the_old_rows(warehouse_target: str) -> None:
    wh = Warehouse(warehouse_target)
    wh.replace_partition("t", day_rows(D1, ["a0"]), partition_column="partition_date", partition_key=D1)
    bad = day_rows(D1, ["x"]).with_columns(pl.lit("not a number").alias("confidence"))
    with pytest.raises(Exception):  # noqa: B017 - the driver's own conversion error, either backend
        wh.replace_partition("t", bad, partition_column="partition_date", partition_key=D1)
    assert wh.read("t")["article_id"].to_list() == ["a0"]


def test_upsert_replace_table_append_and_new_columns(warehouse_target: str) -> None:
    wh = Warehouse(warehouse_target)
    assert not wh.table_exists("u")
    wh.upsert("u", pl.DataFrame({"k": ["a", "b"], "v": [1, 2]}), key="k")
    wh.upsert("u", pl.DataFrame({"k": ["b", "c"], "v": [20, 30], "note": ["x", None]}), key="k")
    got = wh.read("u").sort("k")
    assert got.rows() == [("a", 1, None), ("b", 20, "x"), ("c", 30, None)]
    assert wh.columns("u") == ["k", "v", "note"]
    wh.append("u", pl.DataFrame({"k": ["d"], "v": [4], "note": [""]}))
    assert wh.query("SELECT note FROM u WHERE k = ?", ["d"]).item() == ""  # empty string is not NULL
    wh.replace_table("u", pl.DataFrame({"only": [1.5, None]}))
    assert wh.read("u").to_dict(as_series=False) == {"only": [1.5, None]}
    wh.replace_table("empty", pl.DataFrame(schema={"a": pl.String(), "d": pl.Date()}))
    assert wh.read("empty").schema == pl.Schema({"a": pl.String(), "d": pl.Date()})


def test_frames_lists_binary_and_odd_text(warehouse_target: str) -> None:
    wh = Warehouse(warehouse_target)
    odd = ['comma, "quoted"', "line\nbreak", "100% ?", "", None]
    wh.append(
        "o",
        pl.DataFrame({"id": ["1", "2", "3", "4", "5"], "s": odd, "b": [b"\x00\x01", None, b"", b"x", b"y"]}),
    )
    got = wh.query(
        "SELECT o.id, o.s, o.b FROM o WHERE o.id IN (SELECT id FROM keys) AND o.id = ANY(?) ORDER BY o.id",
        [["1", "2", "3", "4"]],
        frames={"keys": pl.DataFrame({"id": ["1", "2", "3", "4", "5"]})},
    )
    assert got["s"].to_list() == odd[:4]
    assert got["b"].to_list() == [b"\x00\x01", None, b"", b"x"]
    assert wh.query("SELECT count(*) AS n FROM o WHERE s LIKE '100%'")["n"].item() == 1
    empty = wh.query("SELECT id, b FROM o WHERE id = ?", ["none"])
    assert empty.height == 0 and empty.schema["b"] == pl.Binary()


def test_every_column_type_reads_back_as_written(warehouse_target: str, monkeypatch) -> None:
    """On Postgres these come back through COPY ... TO STDOUT (CSV) and polars' reader: every type,
    NULL vs "", a one-column result whose rows are NULL, and `?` parameters must read back exactly."""
    from newsml_pipeline.core.data.dialect import PostgresSession

    def no_rows_path(*a, **k):
        raise AssertionError("a result of CSV-able columns was read row by row")

    monkeypatch.setattr(PostgresSession, "_query_rows", no_rows_path)
    wh = Warehouse(warehouse_target)
    df = pl.DataFrame(
        {
            "k": ["a", "b", "c", "d"],
            "s": ['x, "y"\nz', "", None, "100% ?"],
            "b": [True, False, None, True],
            "i16": pl.Series([1, -2, None, 3], dtype=pl.Int16()),
            "i32": pl.Series([2**31 - 1, 0, None, -5], dtype=pl.Int32()),
            "i64": [2**62, -1, None, 0],
            "f32": pl.Series([0.5, -1.25, None, 3.0], dtype=pl.Float32()),
            "f64": [1e-300, float("inf"), None, -0.1],
            "d": [D1, D2, None, D1],
            "ts": [
                datetime(2026, 1, 2, 3, 4, 5),
                datetime(2026, 1, 2, 3, 4, 5, 600),
                None,
                datetime(2026, 1, 1),
            ],
            "tz": [T, T.replace(microsecond=0), None, T.replace(hour=0, minute=0, second=0, microsecond=0)],
        }
    )
    wh.append("types", df)
    got = wh.query("SELECT * FROM types ORDER BY k")
    got = got.with_columns(pl.col("tz").dt.convert_time_zone("UTC"))  # DuckDB names it Etc/UTC
    assert got.schema == df.schema
    assert got.equals(df)
    nulls = wh.query("SELECT s FROM types WHERE k <> ? ORDER BY k", ["a"])
    assert nulls["s"].to_list() == ["", None, "100% ?"]
    only_null = wh.query("SELECT s FROM types WHERE s IS NULL OR s LIKE '100%' ORDER BY k DESC")
    assert only_null["s"].to_list() == ["100% ?", None]
    empty = wh.query("SELECT k, tz FROM types WHERE k = ?", ["none"])
    assert empty.height == 0 and empty.schema["k"] == pl.String()
    assert isinstance(empty.schema["tz"], pl.Datetime) and empty.schema["tz"].time_zone in ("UTC", "Etc/UTC")


def test_missing_table_is_a_clear_error(warehouse_target: str) -> None:
    with pytest.raises(LookupError, match="materialize the asset"):
        Warehouse(warehouse_target).read("nope")


def _writer(target: str, day: str, n: int) -> None:
    wh = Warehouse(target)
    d = date.fromisoformat(day)
    for rnd in range(n):
        ids = [f"{day}-{i}" for i in range(50)]
        wh.replace_partition(
            "c", day_rows(d, ids, text=f"r{rnd}"), partition_column="partition_date", partition_key=d
        )


def test_concurrent_writers_of_one_table_lose_and_duplicate_nothing(warehouse_target: str) -> None:
    """Four processes rewrite two partitions of one table at once (Postgres: at the same time;
    DuckDB: one after the other through its file lock): each day ends with exactly its rows."""
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_writer, args=(warehouse_target, day, 5))
        for day in ("2026-11-20", "2026-11-21") * 2
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    got = Warehouse(warehouse_target).query(
        "SELECT partition_date, count(*) AS n, count(DISTINCT article_id) AS u FROM c GROUP BY 1 ORDER BY 1"
    )
    assert got.rows() == [(D1, 50, 50), (D2, 50, 50)]


def test_dialect_details() -> None:
    assert _pg_params_sql("SELECT '?', \"a?\" FROM t WHERE x = ? AND s LIKE 'a%'") == (
        "SELECT '?', \"a?\" FROM t WHERE x = %s AND s LIKE 'a%%'"
    )
    assert redact("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert sql_type(pl.Datetime("us", "UTC"), dialect="postgres") == "TIMESTAMPTZ"
    assert sql_type(pl.Binary(), dialect="duckdb") == "BLOB"
    with pytest.raises(TypeError, match="no postgres column type"):
        sql_type(pl.List(pl.Int64()), dialect="postgres")


def test_the_warehouse_is_chosen_by_configuration(tmp_path, monkeypatch, newsml_home) -> None:
    def make_settings(**overrides) -> Settings:
        return Settings(home=newsml_home, config_file=write_config(tmp_path / "config.yaml", **overrides))

    settings = make_settings()
    assert settings.warehouse_target == str(settings.home / "warehouse.duckdb")  # the default
    url = "postgresql://newsml@db.internal:5432/newsml"
    assert make_settings(warehouse={"url": url}).warehouse_target == url
    monkeypatch.setenv("NEWSML_WAREHOUSE_URL", "postgresql://other/db")
    assert make_settings(warehouse={"url": url}).warehouse_target == "postgresql://other/db"
    monkeypatch.setenv("NEWSML_WAREHOUSE_URL", "mysql://x")
    with pytest.raises(ConfigError, match="postgresql://"):
        _ = make_settings().warehouse_target
    monkeypatch.delenv("NEWSML_WAREHOUSE_URL")
    with pytest.raises(ConfigError, match="warehouse.url"):
        _ = make_settings(warehouse={"url": "/tmp/x.duckdb"}).config
