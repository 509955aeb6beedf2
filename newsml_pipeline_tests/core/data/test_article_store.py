"""crawled_articles: an append-only record keyed by article_id; days are views that never shrink."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from newsml_pipeline.core.data.article_store import STORE_TABLE, ArticleStore, StoreError, check_no_loss
from newsml_pipeline.core.data.articles import content_hash, with_partition_date
from newsml_pipeline.core.data.schema import RAW_ARTICLES, conform
from newsml_pipeline.core.data.warehouse import ConstraintViolation, Warehouse

T1 = datetime(2026, 11, 20, 9, tzinfo=UTC)
T2 = datetime(2026, 11, 21, 9, tzinfo=UTC)
STORY = (
    "The central bank raised interest rates by half a point on Thursday, its third rise this year, "
    "saying inflation had proved more stubborn than expected and that wage growth remained strong. "
    "Markets had priced in a smaller move and the currency jumped against the dollar."
)


def batch(rows: list[dict], *, fetched_at: datetime) -> pl.DataFrame:
    out = []
    for r in rows:
        text = r["text"]
        out.append(
            {
                "article_id": r["id"],
                "url": f"https://news.example/{r['id']}",
                "source": r.get("source", "feed"),
                "title": r.get("title", r["id"]),
                "text": text,
                "published_at": r.get("published"),
                "fetched_at": fetched_at,
                "content_hash": content_hash(text),
                "gold_label": r.get("label"),
                "text_from_summary": r.get("summary", False),
                "near_duplicate_of": None,
            }
        )
    schema = {k: v for k, v in RAW_ARTICLES.items() if k != "partition_date"}
    return conform(with_partition_date(pl.DataFrame(out, schema=schema)), RAW_ARTICLES, table="t")


@pytest.fixture
def store(warehouse_target: str) -> ArticleStore:
    """The store on each backend (DuckDB file, Postgres database)."""
    return ArticleStore(Warehouse(warehouse_target), near_duplicate_threshold=0.8)


def test_rolling_feed_accumulates_and_rereading_changes_nothing(store: ArticleStore) -> None:
    morning = batch(
        [{"id": f"a{i}", "text": f"story {i} " * 30, "published": T1} for i in range(3)], fetched_at=T1
    )
    evening = batch(
        [{"id": f"a{i}", "text": f"story {i} " * 30, "published": T1} for i in range(3, 6)], fetched_at=T1
    )
    assert store.record(morning).new == 3
    assert store.record(evening).new == 3  # the morning items left the feed: they stay stored
    again = store.record(morning)
    assert (again.new, again.updated, again.seen_again) == (0, 0, 3)
    day = store.day(T1.date())
    assert sorted(day["article_id"].to_list()) == [f"a{i}" for i in range(6)]
    assert day["revisions"].to_list() == [0] * 6


def test_changed_text_updates_in_place_and_says_so(store: ArticleStore) -> None:
    store.record(
        batch([{"id": "a", "text": "first version of the story " * 10, "published": T1}], fetched_at=T1)
    )
    stats = store.record(
        batch([{"id": "a", "text": "corrected version " * 10, "published": T1}], fetched_at=T2)
    )
    assert stats.updated == 1
    row = store.day(T1.date()).row(0, named=True)
    assert row["text"].startswith("corrected version")
    assert row["revisions"] == 1 and row["updated_at"] == T2
    assert row["fetched_at"] == T1  # first fetch kept
    # a page that failed and fell back to the feed summary never replaces the extracted text
    store.record(
        batch([{"id": "a", "text": "short summary", "published": T1, "summary": True}], fetched_at=T2)
    )
    assert store.day(T1.date())["text"].item().startswith("corrected version")


def test_partition_date_is_fixed_at_first_store(store: ArticleStore) -> None:
    store.record(batch([{"id": "u", "text": "undated story " * 20}], fetched_at=T1))  # no date: fetch day
    store.record(batch([{"id": "u", "text": "undated story " * 20, "published": T2}], fetched_at=T2))
    assert store.day(T1.date())["article_id"].to_list() == ["u"]
    assert store.day(T2.date()).is_empty()


def test_exact_duplicate_under_another_id_is_stored_but_left_out_of_the_day(store: ArticleStore) -> None:
    store.record(batch([{"id": "orig", "text": STORY, "published": T1}], fetched_at=T1))
    stats = store.record(batch([{"id": "copy", "text": STORY, "published": T2}], fetched_at=T2))
    assert stats.exact_duplicates == 1
    dup = store.wh.query(f"SELECT duplicate_of FROM {STORE_TABLE} WHERE article_id = 'copy'").item()
    assert dup == "orig"
    assert store.day(T2.date()).is_empty()
    # in one batch: the earlier published one is the original
    stats = store.record(
        batch(
            [
                {"id": "late", "text": STORY + " x", "published": T2},
                {"id": "early", "text": STORY + " x", "published": T1},
            ],
            fetched_at=T2,
        )
    )
    assert stats.exact_duplicates == 1
    assert (
        store.wh.query(f"SELECT duplicate_of FROM {STORE_TABLE} WHERE article_id = 'late'").item() == "early"
    )


def test_a_story_repeated_on_another_day_is_flagged_near_duplicate(store: ArticleStore) -> None:
    store.record(batch([{"id": "day1", "text": STORY, "published": T1}], fetched_at=T1))
    rerun = STORY.replace("Thursday", "Thursday evening")
    stats = store.record(
        batch(
            [
                {"id": "day2", "text": rerun, "published": T2},
                {"id": "other", "text": "football match report " * 20, "published": T2},
            ],
            fetched_at=T2,
        )
    )
    assert stats.near_duplicates == 1
    day2 = store.day(T2.date())
    flags = dict(zip(day2["article_id"].to_list(), day2["near_duplicate_of"].to_list(), strict=True))
    assert flags == {"day2": "day1", "other": None}


def test_article_id_is_a_real_key_constraint(store: ArticleStore) -> None:
    store.record(batch([{"id": "a", "text": "x " * 50, "published": T1}], fetched_at=T1))
    with store.wh.session() as s, pytest.raises(ConstraintViolation):
        s.execute(f"INSERT INTO {STORE_TABLE} (article_id) VALUES ('a')")


def test_a_warehouse_from_before_the_store_is_seeded_from_raw_articles(warehouse_target: str) -> None:
    wh = Warehouse(warehouse_target)
    legacy = batch([{"id": "old", "text": "kept " * 30, "published": T1}], fetched_at=T1)
    wh.replace_table("raw_articles", legacy)
    store = ArticleStore(wh)
    store.record(batch([{"id": "new", "text": "fresh " * 30, "published": T1}], fetched_at=T2))
    assert sorted(store.day(T1.date())["article_id"].to_list()) == ["new", "old"]


def test_check_no_loss_refuses_a_shrinking_rewrite() -> None:
    check_no_loss({"a"}, {"a", "b"}, where="raw_articles 2026-11-20")
    with pytest.raises(StoreError, match="1 stored article"):
        check_no_loss({"a", "b"}, {"b"}, where="raw_articles 2026-11-20")


def test_empty_batch_is_a_no_op(store: ArticleStore) -> None:
    assert store.record(batch([], fetched_at=T1)).new == 0
    assert store.day(date(2026, 11, 20)).is_empty()


def test_a_cross_day_near_duplicate_lands_in_its_storys_split_group(store: ArticleStore) -> None:
    """dataset_splits assigns whole groups (roots of near_duplicate_of chains) to one split, so
    the re-run of yesterday's story can never sit in test while the original trains."""
    from newsml_pipeline.core.data.splits import group_keys

    store.record(batch([{"id": "day1", "text": STORY, "published": T1}], fetched_at=T1))
    store.record(
        batch([{"id": "day2", "text": STORY + " Updated at 10:00.", "published": T2}], fetched_at=T2)
    )
    rows = pl.concat([store.day(T1.date()), store.day(T2.date())])
    keys = group_keys(
        rows["article_id"].to_list(), rows["near_duplicate_of"].to_list(), rows["content_hash"].to_list()
    )
    assert rows["near_duplicate_of"].to_list() == [None, "day1"]
    assert keys[0] == keys[1]
