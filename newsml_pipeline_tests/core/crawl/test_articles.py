"""raw_articles partition logic: boundaries, duplicates, near-duplicates, idempotent re-runs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from newsml_pipeline.core.crawl.urls import article_id_for
from newsml_pipeline.core.data.articles import (
    collapse_exact_duplicates,
    content_hash,
    filter_partition,
    near_duplicate_pairs,
    prepare_partition,
)
from newsml_pipeline.core.data.schema import RAW_ARTICLES, conform
from newsml_pipeline.core.data.warehouse import Warehouse

FETCHED = datetime(2024, 3, 10, 8, 0, tzinfo=UTC)


def _frame(rows: list[dict]) -> pl.DataFrame:
    out = []
    for r in rows:
        h = content_hash(r["text"])
        out.append(
            {
                "article_id": r.get("id")
                or article_id_for(
                    url=r.get("url"), source=r.get("source", "s"), record_id=None, content_hash=h
                ),
                "url": r.get("url"),
                "source": r.get("source", "s"),
                "title": r.get("title", "t"),
                "text": r["text"],
                "published_at": r.get("published"),
                "fetched_at": FETCHED,
                "partition_date": None,
                "content_hash": h,
                "gold_label": None,
                "text_from_summary": False,
                "near_duplicate_of": None,
            }
        )
    return conform(pl.DataFrame(out, schema=RAW_ARTICLES), RAW_ARTICLES, table="raw_articles").drop(
        "partition_date"
    )


def test_content_hash_normalises_case_and_whitespace():
    assert content_hash("Hello   World\n") == content_hash("hello world")
    assert content_hash("hello world") != content_hash("hello worlds")


def test_partition_boundaries_are_utc_midnight():
    df = _frame(
        [
            {"text": "late", "published": datetime(2024, 3, 9, 23, 59, 59, tzinfo=UTC)},
            {"text": "midnight", "published": datetime(2024, 3, 10, 0, 0, tzinfo=UTC)},
            # 00:30 in Berlin (UTC+1) is still the 9th in UTC
            {"text": "berlin", "published": datetime(2024, 3, 10, 0, 30, tzinfo=UTC) - timedelta(hours=1)},
            {"text": "undated"},
        ]
    )
    assert filter_partition(df, date(2024, 3, 9))["text"].to_list() == ["late", "berlin"]
    assert filter_partition(df, date(2024, 3, 10))["text"].to_list() == [
        "midnight",
        "undated",
    ]  # undated -> fetch date


def test_exact_duplicates_keep_earliest_published_deterministically():
    early, late = datetime(2024, 3, 10, 7, tzinfo=UTC), datetime(2024, 3, 10, 9, tzinfo=UTC)
    df = _frame(
        [
            {"text": "Same story", "url": "https://a.org/1", "source": "a", "published": late},
            {"text": "same   STORY", "url": "https://b.org/9", "source": "b", "published": early},
            {"text": "Other story", "url": "https://c.org/1?utm_source=x", "source": "c", "published": None},
            {"text": "Other story, updated", "url": "https://c.org/1", "source": "d", "published": None},
            {"text": "unique", "url": "https://e.org/2", "source": "e", "published": late},
        ]
    )
    out, dropped = collapse_exact_duplicates(df)
    # same text: the earlier-published b wins; same canonical URL, both undated: first seen (c) wins
    assert dropped == 2
    assert out["source"].to_list() == ["b", "c", "e"]  # batch order is kept
    again, _ = collapse_exact_duplicates(df.reverse())
    assert sorted(again["source"].to_list()) == ["b", "d", "e"]  # undated tie -> first seen in that order


def test_near_duplicates_flagged_not_dropped(bbc_rows):
    base = [r["text"] for r in bbc_rows[:60]]
    edited = base[5].replace(".", ";", 2) + " Additional reporting by a staff writer."
    texts = base + [edited]
    pairs = near_duplicate_pairs(texts, threshold=0.8)
    assert pairs == {60: 5}
    df = _frame([{"text": t, "url": f"https://n.org/{i}", "published": FETCHED} for i, t in enumerate(texts)])
    rows, stats = prepare_partition(
        df,
        existing_elsewhere=pl.DataFrame(
            {"article_id": [], "content_hash": []},
            schema={"article_id": pl.String, "content_hash": pl.String},
        ),
        near_duplicate_threshold=0.8,
    )
    assert stats.near_duplicates_flagged == 1 and len(rows) == 61
    flagged = rows.filter(pl.col("near_duplicate_of").is_not_null())
    assert flagged["url"].to_list() == ["https://n.org/60"]
    assert flagged["near_duplicate_of"][0] == rows["article_id"][5]


def test_bbc_known_duplicates_collapse(bbc_rows):
    df = _frame([{"text": r["text"], "id": f"bbc-{r['id']}", "published": FETCHED} for r in bbc_rows])
    out, dropped = collapse_exact_duplicates(df)
    # The corpus marks 98 rows as copies (title + text); 39 more repeat a text under another title.
    distinct_texts = len({" ".join(r["text"].lower().split()) for r in bbc_rows})
    assert dropped == len(bbc_rows) - distinct_texts and dropped >= 98
    kept = set(out["article_id"].to_list())
    assert not any(f"bbc-{r['id']}" in kept for r in bbc_rows if r.get("duplicate_of"))


def _empty_elsewhere():
    return pl.DataFrame(schema={"article_id": pl.String, "content_hash": pl.String})


def test_prepare_partition_idempotent_over_reruns(tmp_path):
    """Re-materialize days in any order, with overlapping re-crawls: 0 duplicate ids, stable rows."""
    wh = Warehouse(tmp_path / "wh.duckdb")
    d1, d2 = date(2024, 3, 9), date(2024, 3, 10)
    day1 = datetime(2024, 3, 9, 12, tzinfo=UTC)
    day2 = datetime(2024, 3, 10, 12, tzinfo=UTC)
    crawl_a = _frame(
        [
            {"text": "story one", "url": "https://x.org/1", "published": day1},
            {"text": "story two", "url": "https://x.org/2", "published": day2},
            {"text": "story one", "url": "https://mirror.org/1", "published": day2},  # same text, other day
        ]
    )
    # A re-crawl where the feed re-dated story 1 to day 2 and story 3 appeared.
    crawl_b = _frame(
        [
            {"text": "story one", "url": "https://x.org/1", "published": day2},
            {"text": "story two", "url": "https://x.org/2", "published": day2},
            {"text": "story three", "url": "https://x.org/3", "published": day1},
        ]
    )

    def materialize(batch, day):
        if wh.table_exists("raw_articles"):
            elsewhere = wh.query(
                "SELECT article_id, content_hash FROM raw_articles WHERE partition_date <> ?", [day]
            )
        else:
            elsewhere = _empty_elsewhere()
        rows, stats = prepare_partition(batch, existing_elsewhere=elsewhere, partition_date=day)
        wh.replace_partition("raw_articles", rows, partition_column="partition_date", partition_key=day)
        return stats

    snapshots = []
    for batch, day in [
        (crawl_a, d1),
        (crawl_a, d2),
        (crawl_a, d2),
        (crawl_b, d2),
        (crawl_b, d1),
        (crawl_b, d1),
        (crawl_a, d1),
    ]:
        materialize(batch, day)
        table = wh.read("raw_articles")
        assert table["article_id"].n_unique() == len(table), (day, table)
        assert table["content_hash"].n_unique() == len(table)
        snapshots.append(table.sort("article_id")["article_id"].to_list())
    assert snapshots[1] == snapshots[2]  # same input twice: nothing changes
    assert snapshots[4] == snapshots[5]
    stats = materialize(crawl_a, d2)
    assert stats.already_in_other_partitions >= 1 and stats.outside_partition == 1


def test_prepare_partition_stats_and_contract():
    df = _frame(
        [
            {"text": "a text", "url": "https://x.org/a", "source": "s1", "published": FETCHED},
            {"text": "a text", "url": "https://y.org/a", "source": "s2", "published": FETCHED},
            {"text": "b text", "url": "https://x.org/b", "source": "s1", "published": FETCHED},
            {
                "text": "c text",
                "url": "https://x.org/c",
                "source": "s2",
                "published": FETCHED - timedelta(days=3),
            },
        ]
    )
    elsewhere = pl.DataFrame({"article_id": ["zzz"], "content_hash": [content_hash("b text")]})
    rows, stats = prepare_partition(df, existing_elsewhere=elsewhere, partition_date=FETCHED.date())
    assert list(rows.columns[: len(RAW_ARTICLES)]) == list(RAW_ARTICLES)
    assert stats.as_dict() | {"per_source": None} == {
        "input_rows": 4,
        "outside_partition": 1,
        "exact_duplicates_in_batch": 1,
        "already_in_other_partitions": 1,
        "near_duplicates_flagged": 0,
        "rows_written": 1,
        "per_source": None,
    }
    assert stats.per_source == {"s1": 1}
