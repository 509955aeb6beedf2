"""raw_articles partition logic: boundaries, duplicates, near-duplicates, idempotent re-runs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from newsml_pipeline.core.crawl.urls import article_id_for
from newsml_pipeline.core.data.article_store import ArticleStore
from newsml_pipeline.core.data.articles import content_hash, with_partition_date
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
    days = with_partition_date(df)
    assert days.filter(pl.col("partition_date") == date(2024, 3, 9))["text"].to_list() == ["late", "berlin"]
    assert days.filter(pl.col("partition_date") == date(2024, 3, 10))["text"].to_list() == [
        "midnight",
        "undated",
    ]  # undated -> fetch date


def test_exact_duplicates_keep_earliest_published_deterministically(tmp_path):
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
    store = _store(tmp_path)
    stats = store.record(_with_day(df))
    # same text: the earlier-published b is the original; same canonical URL (one article_id),
    # both undated: the first seen (c) is stored
    assert stats.exact_duplicates == 1 and stats.new == 4
    assert sorted(store.day(FETCHED.date())["source"].to_list()) == ["b", "c", "e"]
    other = _store(tmp_path / "other")
    other.record(_with_day(df.reverse()))
    assert sorted(other.day(FETCHED.date())["source"].to_list()) == [
        "b",
        "d",
        "e",
    ]  # first seen in that order


def _store(tmp_path, threshold: float = 0.9) -> ArticleStore:
    return ArticleStore(Warehouse(tmp_path / "wh.duckdb"), near_duplicate_threshold=threshold)


def _with_day(df: pl.DataFrame) -> pl.DataFrame:
    return conform(with_partition_date(df), RAW_ARTICLES, table="raw_articles")


def test_near_duplicates_flagged_not_dropped(bbc_rows, tmp_path):
    base = [r["text"] for r in bbc_rows[:60]]
    edited = base[5].replace(".", ";", 2) + " Additional reporting by a staff writer."
    texts = base + [edited]
    df = _frame([{"text": t, "url": f"https://n.org/{i}", "published": FETCHED} for i, t in enumerate(texts)])
    store = _store(tmp_path, threshold=0.8)
    stats = store.record(_with_day(df))
    rows = store.day(FETCHED.date())
    assert stats.near_duplicates == 1 and len(rows) == 61
    flagged = rows.filter(pl.col("near_duplicate_of").is_not_null())
    assert flagged["url"].to_list() == ["https://n.org/60"]
    assert flagged["near_duplicate_of"][0] == df["article_id"][5]


def test_bbc_known_duplicates_are_kept_out_of_the_day(bbc_rows, tmp_path):
    df = _frame([{"text": r["text"], "id": f"bbc-{r['id']}", "published": FETCHED} for r in bbc_rows])
    store = _store(tmp_path)
    stats = store.record(_with_day(df))
    # The corpus marks 98 rows as copies (title + text); 39 more repeat a text under another title.
    distinct_texts = len({" ".join(r["text"].lower().split()) for r in bbc_rows})
    assert stats.exact_duplicates == len(bbc_rows) - distinct_texts and stats.exact_duplicates >= 98
    kept = set(store.day(FETCHED.date())["article_id"].to_list())
    assert len(kept) == distinct_texts
    assert not any(f"bbc-{r['id']}" in kept for r in bbc_rows if r.get("duplicate_of"))


def test_overlapping_recrawls_in_any_order_never_duplicate_or_shrink(tmp_path):
    """Re-crawls that re-date stories and add new ones: 0 duplicate ids, days only grow."""
    store = _store(tmp_path)
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
    sizes: list[tuple[int, int]] = []
    for batch in [crawl_a, crawl_a, crawl_b, crawl_b, crawl_a]:
        store.record(_with_day(batch))
        days = [store.day(d) for d in (d1, d2)]
        both = pl.concat(days)
        assert both["article_id"].n_unique() == len(both)
        assert both["content_hash"].n_unique() == len(both)
        sizes.append((len(days[0]), len(days[1])))
    assert sizes == sorted(sizes)  # never shrinks
    assert sizes[-1] == (2, 1)  # story one stays on the day it was first stored; its mirror is a duplicate
    assert store.day(d1)["url"].to_list() == ["https://x.org/1", "https://x.org/3"]


def test_record_stats_and_contract(tmp_path):
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
    store = _store(tmp_path)
    stats = store.record(_with_day(df))
    assert stats.as_dict() == {
        "batch_rows": 4,
        "new": 4,
        "updated": 0,
        "seen_again": 0,
        "exact_duplicates": 1,
        "near_duplicates": 0,
        "new_per_day": {"2024-03-07": 1, "2024-03-10": 3},
    }
    rows = store.day(FETCHED.date())
    assert list(rows.columns[: len(RAW_ARTICLES)]) == list(RAW_ARTICLES)
    assert sorted(rows["url"].to_list()) == ["https://x.org/a", "https://x.org/b"]
