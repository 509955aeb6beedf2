"""Extraction quality on the real pages, against the expected texts, vs plain trafilatura."""

from __future__ import annotations

import asyncio

import trafilatura

from newsml_pipeline.core.crawl.extract import ExtractorPool, extract_html
from newsml_pipeline.core.crawl.extraction_quality import token_prf
from testkit.loopback import expected_texts


def _mean(xs):
    return sum(xs) / len(xs)


def test_extraction_f1_not_below_plain_trafilatura(server, corpora):
    expected = expected_texts(corpora, server.pages)
    zyte = [i for i, (kind, _) in expected.items() if kind == "zyte"]
    assert len(zyte) == 40
    ours = [token_prf(extract_html(server.pages[i]["html"]).text, expected[i][1])[2] for i in zyte]
    plain = [token_prf(trafilatura.extract(server.pages[i]["html"]), expected[i][1])[2] for i in zyte]
    assert _mean(ours) >= _mean(plain) - 0.01
    assert _mean(ours) > 0.9  # trafilatura scores ~0.95 on these pages; far below means a broken setup


def test_metadata_extraction_gives_title_and_date(server):
    page = next(p for p in server.pages if p["url"] and "nytimes.com/2019/11/19" in p["url"])
    got = extract_html(page["html"], with_metadata=True)
    assert got.text and "Republicans" in got.title
    assert got.published is not None and got.published.date().isoformat() == "2019-11-19"


def test_pool_extracts_the_same_as_in_process(server):
    htmls = [server.pages[i]["html"] for i in range(4)]

    async def go(pool):
        return await asyncio.gather(*(pool.extract(h) for h in htmls))

    with ExtractorPool(workers=1, small_crawl_pages=0) as pool:  # every page in the worker
        got = asyncio.run(go(pool))
        assert pool.started and pool.in_thread == 0
    assert [g.text for g in got] == [extract_html(h).text for h in htmls]


def test_page_without_article_text_yields_none():
    assert extract_html(b"<html><head><script>var a=1;</script></head><body></body></html>").text is None


def test_a_small_crawl_extracts_in_a_thread_and_a_big_one_starts_the_workers(server):
    """Starting a worker costs ~1 s; an hourly crawl with a few new pages must not pay it."""
    htmls = [server.pages[i]["html"] for i in range(4)]

    async def go(pool):
        return await asyncio.gather(*(pool.extract(h) for h in htmls))

    with ExtractorPool(workers=1, small_crawl_pages=8) as small:
        got = asyncio.run(go(small))
        assert not small.started and small.in_thread == 4
    assert [g.text for g in got] == [extract_html(h).text for h in htmls]
    with ExtractorPool(workers=1, small_crawl_pages=2) as big:
        got = asyncio.run(go(big))
        assert big.started and big.in_thread == 2  # the pages after the first two went to the worker
    assert not big.started  # closed with the crawl
    assert [g.text for g in got] == [extract_html(h).text for h in htmls]
