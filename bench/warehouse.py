"""Warehouse benchmark: the warehouse work the pipeline does, on DuckDB and on Postgres, in one run.

Per backend (a fresh DuckDB file; a fresh database on a throwaway local Postgres server started by
this script, fsync off like the tests' one):
(a) upsert a day of 10k new articles into `crawled_articles` (ArticleStore.record: the key
    lookups, the near-duplicate index and the ON CONFLICT upsert; MinHash signing is the same
    Python work on both), then write that day's `raw_articles` partition (replace_partition);
(b) dataset_splits over 100k and 1M labelled rows: the assets' join query (labeled_with_raw),
    the assignment (build_evaluated_splits, backend-independent, label-issue check off), and the
    table write (replace_table); on Postgres the join is also read row by row (`read_rowwise`,
    the path before results came back through COPY) to show what the COPY read saves;
(c) reading the scored stream from the drift cursor: the 10k rows after a cursor near the end of
    a 1M-row scored_articles table (read_new_scored_rows);
(d) one drift-sensor tick for 10k new rows (run_drift_tick: the read above + the detectors).

    flock /tmp/newsml_heavy.lock python bench/warehouse.py [--sizes 100000 1000000] [--repeat 3]

Timings are the median of --repeat runs (loading the tables is not timed). Postgres runs on the
same machine over loopback TCP; a networked server adds round trips but the same work.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from provenance import provenance  # noqa: E402

from newsml_pipeline.core.data.article_store import ArticleStore  # noqa: E402
from newsml_pipeline.core.data.articles import content_hash  # noqa: E402
from newsml_pipeline.core.data.schema import RAW_ARTICLES, conform  # noqa: E402
from newsml_pipeline.core.data.splits import build_evaluated_splits  # noqa: E402
from newsml_pipeline.core.data.warehouse import Warehouse  # noqa: E402
from newsml_pipeline.core.monitoring.drift import DriftStateStore  # noqa: E402
from newsml_pipeline.core.monitoring.sensor_logic import (  # noqa: E402
    ScoredCursor,
    read_new_scored_rows,
    run_drift_tick,
)
from newsml_pipeline.defs.training import SPLITS_TABLE, labeled_with_raw  # noqa: E402
from newsml_pipeline.settings import DriftConfig, GateConfig, SplitsConfig  # noqa: E402
from testkit.postgres_server import PostgresServer, find_bin_dir  # noqa: E402

log = logging.getLogger("bench.warehouse")
LABELS = ["business", "entertainment", "politics", "sport", "tech"]
TODAY = date(2026, 11, 30)
T0 = datetime(2026, 11, 1, tzinfo=UTC)
WORDS = (
    "markets rose sharply as the central bank held rates while the team won the final and a new phone".split()
)


def _text(i: int, n_words: int) -> str:
    # distinct enough that MinHash finds no near-duplicates among them
    return " ".join(f"{WORDS[(i * 7 + k * 3) % len(WORDS)]}{(i * 31 + k) % 9973}" for k in range(n_words))


def day_batch(n: int, *, day: date) -> pl.DataFrame:
    published = datetime(day.year, day.month, day.day, tzinfo=UTC)
    texts = [_text(i, 60) for i in range(n)]
    rows = pl.DataFrame(
        {
            "article_id": [f"{day:%Y%m%d}-{i:06d}" for i in range(n)],
            "url": [f"https://news.example/{day}/{i}" for i in range(n)],
            "source": ["bench"] * n,
            "title": [f"Story {i}" for i in range(n)],
            "text": texts,
            "published_at": [published + timedelta(seconds=i) for i in range(n)],
            "fetched_at": [published + timedelta(hours=1)] * n,
            "partition_date": [day] * n,
            "content_hash": [content_hash(t) for t in texts],
            "gold_label": [LABELS[i % 5] if i % 10 == 0 else None for i in range(n)],
            "text_from_summary": [False] * n,
            "near_duplicate_of": [None] * n,
        }
    )
    return conform(rows, RAW_ARTICLES, table="raw_articles")


def labelled_tables(n: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """raw_articles / labeled_articles with n rows over 30 days; 10% gold (from the source)."""
    idx = pl.int_range(n, eager=True)
    raw = pl.DataFrame({"i": idx}).select(
        article_id=pl.format("a{}", pl.col("i")),
        url=pl.format("https://news.example/{}", pl.col("i")),
        source=pl.lit("bench"),
        title=pl.format("Story {}", pl.col("i")),
        text=pl.format("short text of story {} for the benchmark", pl.col("i")),
        partition_date=pl.lit(TODAY) - pl.duration(days=pl.col("i") % 30),
        content_hash=pl.format("h{}", pl.col("i")),
        near_duplicate_of=pl.lit(None, pl.String()),
        gold_label=pl.when(pl.col("i") % 10 == 0)
        .then(pl.lit(pl.Series(LABELS)).get((pl.col("i") // 10) % 5))
        .otherwise(None),
        fetched_at=pl.lit(T0),
    )
    labeled = raw.select(
        "article_id",
        "partition_date",
        label=pl.when(pl.col("article_id").str.ends_with("7"))
        .then(None)
        .otherwise(pl.lit(pl.Series(LABELS)).get(pl.col("article_id").str.slice(1).cast(pl.Int64) % 5)),
        confidence=pl.lit(0.8),
        votes=pl.lit('{"keywords": null}'),
    )
    return raw, labeled


def scored_table(n: int) -> pl.DataFrame:
    return pl.DataFrame({"i": pl.int_range(n, eager=True)}).select(
        article_id=pl.format("a{}", pl.col("i")),
        partition_date=pl.lit(TODAY) - pl.duration(days=29 - pl.col("i") * 30 // n),
        model_version=pl.lit("7"),
        label=pl.lit(pl.Series(LABELS)).get(pl.col("i") % 5),
        confidence=(pl.col("i") % 100) / 100,
        auto_label=pl.lit(pl.Series(LABELS)).get((pl.col("i") // 3) % 5),
        scored_at=pl.lit(T0) + pl.duration(milliseconds=pl.col("i") * 100),
    )


def timed(fn: Callable[[], object], repeat: int, setup: Callable[[], None] | None = None) -> float:
    out = []
    for _ in range(repeat):
        if setup:
            setup()
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def bench_backend(make: Callable[[], Warehouse], *, sizes: list[int], repeat: int, tmp: Path) -> dict:
    res: dict[str, float] = {}
    # (a) a day of 10k new articles
    day = date(2026, 11, 20)
    batch = day_batch(10_000, day=day)
    stores: list[ArticleStore] = []

    def fresh_store() -> None:
        stores.append(ArticleStore(make()))
        stores[-1].ensure()

    res["upsert_day_10k_s"] = timed(lambda: stores[-1].record(batch), repeat, setup=fresh_store)
    res["reupsert_same_day_10k_s"] = timed(lambda: stores[-1].record(batch), repeat)
    store = stores[-1]
    res["write_raw_partition_10k_s"] = timed(
        lambda: store.wh.replace_partition(
            "raw_articles", store.day(day), partition_column="partition_date", partition_key=day
        ),
        repeat,
    )
    # (b) splits
    for n in sizes:
        wh = make()
        raw, labeled = labelled_tables(n)
        t = time.perf_counter()
        wh.replace_table("raw_articles", raw)
        wh.replace_table("labeled_articles", labeled)
        res[f"load_{n}_rows_s"] = time.perf_counter() - t
        holder: dict = {}
        res[f"splits_{n}_read_s"] = timed(
            lambda wh=wh, holder=holder: holder.update(frame=labeled_with_raw(wh)), repeat
        )
        if wh.dialect == "postgres":  # the same read row by row, as before the COPY read path
            from newsml_pipeline.core.data.dialect import PostgresSession

            copy_path = PostgresSession.query
            PostgresSession.query = PostgresSession._query_rows  # type: ignore[method-assign]
            try:
                res[f"splits_{n}_read_rowwise_s"] = timed(lambda wh=wh: labeled_with_raw(wh), repeat)
            finally:
                PostgresSession.query = copy_path  # type: ignore[method-assign]
        else:
            res[f"splits_{n}_read_rowwise_s"] = None
        t = time.perf_counter()
        splits, _ = build_evaluated_splits(
            holder["frame"],
            splits_cfg=SplitsConfig(drop_label_issues=False, window_days=None),
            gate_cfg=GateConfig(evaluation="gold"),
            labels=LABELS,
            today=TODAY,
        )
        res[f"splits_{n}_assign_s"] = time.perf_counter() - t
        res[f"splits_{n}_write_s"] = timed(lambda wh=wh, s=splits: wh.replace_table(SPLITS_TABLE, s), repeat)
        res[f"splits_{n}_rows"] = splits.height
    # (c) + (d) the drift cursor over a 1M-row scored table, 10k rows after the cursor
    n_scored = max(sizes)
    wh = make()
    scored = scored_table(n_scored)
    wh.append("scored_articles", scored)
    last_seen = scored.row(n_scored - 10_001, named=True)
    cursor = ScoredCursor(last_seen["scored_at"], last_seen["article_id"])
    res["cursor_read_10k_s"] = timed(lambda: read_new_scored_rows(wh, cursor=cursor, limit=10_001), repeat)
    got = read_new_scored_rows(wh, cursor=cursor, limit=10_001)
    assert got.height == 10_000, got.height
    cfg = DriftConfig(max_rows_per_tick=10_000)
    state_dir = tmp / f"drift-{wh.dialect}"

    def fresh_state() -> None:
        shutil.rmtree(state_dir, ignore_errors=True)
        state_dir.mkdir(parents=True)

    res["drift_tick_10k_s"] = timed(
        lambda: run_drift_tick(
            warehouse=wh,
            state_store=DriftStateStore.in_home(state_dir),
            drift_cfg=cfg,
            now=datetime.now(UTC),
            cursor=cursor.to_string(),
        ),
        repeat,
        setup=fresh_state,
    )
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "warehouse.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    bin_dir = find_bin_dir()
    if bin_dir is None:
        sys.exit("Postgres binaries not found (install Debian's postgresql, or set NEWSML_PG_BIN)")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp, PostgresServer(bin_dir) as pg:
        tmpd = Path(tmp)
        counter = iter(range(1000))
        backends = {
            "duckdb": lambda: Warehouse(tmpd / f"w{next(counter)}.duckdb"),
            "postgres": lambda: Warehouse(pg.create_database()),
        }
        for name, make in backends.items():
            print(f"running {name} ...", flush=True)
            results[name] = bench_backend(make, sizes=args.sizes, repeat=args.repeat, tmp=tmpd)
        pg_version = pg.version()
    keys = list(results["duckdb"])
    print(f"\nwarehouse work, median of {args.repeat} (seconds unless named rows)")
    print(f"{'step':34}{'duckdb':>12}{'postgres':>12}{'pg/duckdb':>11}")
    for k in keys:
        d, p = results["duckdb"][k], results["postgres"][k]
        ratio = f"{p / d:.2f}x" if isinstance(d, float) and d > 0 else ""
        print(f"{k:34}{'-' if d is None else d:>12}{p:>12}{ratio:>11}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                **provenance(),
                "sizes": args.sizes,
                "repeat": args.repeat,
                "machine": {"platform": platform.platform(), "python": platform.python_version()},
                "postgres": pg_version,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
