"""Sources end to end: rss over loopback (pages + every error path), local files, hf datasets."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime

import polars as pl
import pytest

from newsml_pipeline.core.crawl.sources import collect_articles, local_articles
from newsml_pipeline.core.data.schema import RAW_ARTICLES
from newsml_pipeline.settings import HfSource, LocalSource, RssSource

NOW = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)


def _contract(df: pl.DataFrame) -> None:
    assert df.columns[: len(RAW_ARTICLES)] == list(RAW_ARTICLES)
    assert df["article_id"].null_count() == 0 and df["text"].null_count() == 0


def test_rss_special_feed_pages_errors_and_summary_fallback(server, crawl_cfg, tmp_path):
    src = RssSource(name="special", kind="rss", url=server.url("/feeds/special.xml"))
    df, [rep] = collect_articles([src], crawl_cfg=crawl_cfg, state_dir=tmp_path, fetched_at=NOW)
    _contract(df)
    by_title = {r["title"]: r for r in df.iter_rows(named=True)}
    # good + redirected pages are extracted; 404 and robots-blocked fall back to the summary;
    # the binary one has no summary, so it is reported and has no row.
    assert set(by_title) == {"Good page", "Redirected", "Missing", "Private"}
    assert not by_title["Good page"]["text_from_summary"] and len(by_title["Good page"]["text"]) > 500
    assert by_title["Redirected"]["url"] == server.url("/pages/3")
    assert (
        by_title["Missing"]["text_from_summary"]
        and by_title["Missing"]["text"] == "Summary of a page that is gone."
    )
    assert by_title["Private"]["text_from_summary"]
    assert by_title["Good page"]["published_at"] == datetime(2023, 1, 2, 10, tzinfo=UTC)
    assert by_title["Good page"]["partition_date"] == date(2023, 1, 2)
    errors = "\n".join(rep.errors)
    assert "HTTP 404" in errors and "robots.txt" in errors and "application/pdf" in errors
    assert rep.counts["entries"] == 5 and rep.rows == 4 and not rep.failed
    assert rep.counts["pages_from_summary"] == 2 and rep.counts["pages_failed"] == 1


def test_one_failing_source_does_not_sink_the_others(server, crawl_cfg, tmp_path):
    sources = [
        RssSource(name="broken", kind="rss", url=server.url("/feeds/malformed-missing.xml")),
        RssSource(name="notfeed", kind="rss", url=server.url("/pages/0"), fetch_pages=False),
        RssSource(
            name="bbc", kind="rss", url=server.url("/feeds/photojournalism__bbc.xml"), fetch_pages=False
        ),
        LocalSource(name="inbox", kind="local", path=str(tmp_path / "nothing-here")),
    ]
    df, reports = collect_articles(sources, crawl_cfg=crawl_cfg, state_dir=None, fetched_at=NOW)
    rep = {r.source: r for r in reports}
    assert [r.source for r in reports] == ["broken", "notfeed", "bbc", "inbox"]
    assert rep["broken"].failed and "HTTP 404" in rep["broken"].errors[0]
    assert rep["notfeed"].failed and "no entries" in rep["notfeed"].errors[0]
    assert rep["bbc"].rows == 16 and df.filter(pl.col("source") == "bbc")["text_from_summary"].all()
    assert rep["inbox"].rows == 0 and "does not exist" in rep["inbox"].notes[0]
    assert len(df) == 16


def test_duplicates_across_feeds_share_article_id_and_hash(server, crawl_cfg, tmp_path):
    name = "photojournalism__npr.xml"
    sources = [
        RssSource(name="a", kind="rss", url=server.url(f"/feeds/{name}"), max_items=4),
        RssSource(name="b", kind="rss", url=server.url(f"/feeds/{name}?copy=1"), max_items=4),
    ]
    df, reports = collect_articles(sources, crawl_cfg=crawl_cfg, state_dir=tmp_path, fetched_at=NOW)
    assert all(not r.errors for r in reports), [r.errors for r in reports]
    a, b = (df.filter(pl.col("source") == s).sort("article_id") for s in "ab")
    assert len(a) == len(b) == 4
    assert a["article_id"].to_list() == b["article_id"].to_list()
    assert a["content_hash"].to_list() == b["content_hash"].to_list()
    assert not a["text_from_summary"].any()


def test_conditional_get_reuses_stored_extraction(server, crawl_cfg, tmp_path, monkeypatch):
    feed = (
        f'<rss version="2.0"><channel><title>t</title><item><title>E</title><link>{server.url("/etag")}</link>'
        "<pubDate>Tue, 03 Jan 2023 09:00:00 GMT</pubDate><description>s</description></item></channel></rss>"
    ).encode()
    monkeypatch.setitem(server.feeds, "etag.xml", feed)
    src = RssSource(name="e", kind="rss", url=server.url("/feeds/etag.xml"))
    first, [r1] = collect_articles([src], crawl_cfg=crawl_cfg, state_dir=tmp_path, fetched_at=NOW)
    second, [r2] = collect_articles([src], crawl_cfg=crawl_cfg, state_dir=tmp_path, fetched_at=NOW)
    assert r1.counts["pages_fetched"] == 1 and r1.counts["pages_not_modified"] == 0
    assert r2.counts["pages_fetched"] == 0 and r2.counts["pages_not_modified"] == 1
    assert second["text"].to_list() == first["text"].to_list() and len(first["text"][0]) > 300
    assert (tmp_path / "crawl_state.duckdb").exists()


def test_corpus_feeds_crawl_real_pages(server, crawl_cfg, tmp_path):
    """Three real feeds of different formats, pages fetched from loopback and extracted."""
    names = ["feedjira__json_feed.json", "rss-parser__heise.atom", "rss-parser__rss-1.rss"]
    sources = [RssSource(name=n, kind="rss", url=server.url(f"/feeds/{n}"), max_items=5) for n in names]
    df, reports = collect_articles(sources, crawl_cfg=crawl_cfg, state_dir=None, fetched_at=NOW)
    for r in reports:
        assert not r.failed and r.rows == 5, (r.source, r.errors)
    assert df.filter(~pl.col("text_from_summary"))["text"].str.len_chars().min() > 200
    assert df["url"].str.starts_with(server.base).all()


# ---------------------------------------------------------------- local


def _records():
    return [
        {
            "id": "1",
            "title": "Markets rally",
            "text": "Shares rose sharply.",
            "published": "2024-05-01",
            "label": "business",
        },
        {
            "title": "Cup final",
            "text": "The team won the cup.",
            "published": "2024-05-02T23:30:00+02:00",
            "url": "https://x.org/cup?utm_source=a",
        },
        {"title": "No date", "text": "Parliament voted today.", "label": "politics"},
    ]


def _write(path, fmt, records):
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    elif fmt == "jsonl.gz":
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write("\n".join(json.dumps(r) for r in records) + "\n")
    elif fmt == "csv":
        pl.DataFrame(records).write_csv(path)
    elif fmt == "parquet":
        pl.DataFrame(records).write_parquet(path)


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "csv", "parquet"])
def test_local_formats(tmp_path, fmt):
    f = tmp_path / f"articles.{fmt}"
    _write(f, fmt, _records())
    df, rep = local_articles(LocalSource(name="inbox", kind="local", path=str(f)), fetched_at=NOW)
    _contract(df)
    assert rep.rows == 3 and not rep.errors
    rows = df.to_dicts()
    assert [r["gold_label"] for r in rows] == ["business", None, "politics"]
    assert rows[0]["published_at"] == datetime(2024, 5, 1, tzinfo=UTC)
    assert rows[1]["published_at"] == datetime(2024, 5, 2, 21, 30, tzinfo=UTC)  # converted to UTC
    assert rows[1]["url"] == "https://x.org/cup"
    assert [r["partition_date"] for r in rows] == [date(2024, 5, 1), date(2024, 5, 2), NOW.date()]


def test_local_bad_lines_are_reported_with_file_and_line(tmp_path):
    f = tmp_path / "inbox" / "a.jsonl"
    f.parent.mkdir()
    good = json.dumps({"title": "ok", "text": "fine text"})
    lines = [
        good,
        "{not json",
        json.dumps({"title": "no text"}),
        json.dumps({"title": "t", "text": "x", "published": "yesterday"}),
        json.dumps([1, 2]),
    ]
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (f.parent / "notes.txt").write_text("ignored", encoding="utf-8")
    df, rep = local_articles(LocalSource(name="inbox", kind="local", path=str(f.parent)), fetched_at=NOW)
    assert len(df) == 1 and rep.counts["bad_records"] == 4 and rep.counts["files"] == 1
    assert [e.split(": ", 1)[0] for e in rep.errors] == [f"{f}:{n}" for n in (2, 3, 4, 5)]
    assert (
        "not valid JSON" in rep.errors[0]
        and "lacks ['text']" in rep.errors[1]
        and "yesterday" in rep.errors[2]
    )


def test_local_ids_are_stable_and_source_scoped(tmp_path):
    f = tmp_path / "a.jsonl"
    _write(f, "jsonl", _records())
    df1, _ = local_articles(LocalSource(name="inbox", kind="local", path=str(f)), fetched_at=NOW)
    df2, _ = local_articles(LocalSource(name="inbox", kind="local", path=str(f)), fetched_at=NOW)
    assert df1["article_id"].to_list() == df2["article_id"].to_list()
    assert df1["article_id"].n_unique() == 3


# ---------------------------------------------------------------- hf


def test_hf_source_from_local_dataset_maps_class_labels(tmp_path):
    import datasets

    feats = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["business", "sport"])}
    )
    ds = datasets.Dataset.from_dict(
        {"text": ["Shares fell.", "The team won.", ""], "label": [0, 1, 1]}, features=feats
    )
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "ds"))
    src = HfSource(name="hf", kind="hf", dataset=str(tmp_path / "ds"), split="train")
    df, [rep] = collect_articles([src], crawl_cfg=None, state_dir=None, fetched_at=NOW)
    _contract(df)
    assert df["gold_label"].to_list() == ["business", "sport"]
    assert rep.counts["bad_records"] == 1 and "row 2" in rep.errors[0]
    assert any("no 'title' column" in n for n in rep.notes)
    bad = HfSource(name="hf2", kind="hf", dataset=str(tmp_path / "ds"), split="test")
    _, [rep2] = collect_articles([bad], crawl_cfg=None, state_dir=None, fetched_at=NOW)
    assert rep2.failed and "splits ['train']" in rep2.errors[0]
