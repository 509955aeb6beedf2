"""Every feed format and quirk in the corpus, parsed directly and fetched over loopback."""

from __future__ import annotations

import pytest

from newsml_pipeline.core.crawl.feeds import FeedError, parse_feed
from newsml_pipeline_tests.core.crawl.conftest import fetch

# (file, feedparser/JSON format, entries) from corpora/feeds/SOURCE.md
EXPECTED = {
    "photojournalism__bbc.xml": ("rss20", 16),
    "rss-parser__rss-1.rss": ("rss10", 69),
    "rss-parser__uolNoticias.rss": ("rss", 15),  # RSS without version, undeclared cp1252
    "rss-parser__heise.atom": ("atom10", 15),
    "rss-parser__many-links.rss": ("atom10", 25),
    "feedjira__json_feed.json": ("json1", 20),
    "trafilatura__feed.json": ("json1", 25),
    "rss-parser__encoding-gb2312.xml": ("rss20", 20),
    "rss-parser__encoding.rss": ("rss20", 40),
    "rss-parser__physorg-daily-sci-tech-news.rss": ("rss20", 30),
    "feedjira__TechCrunch.xml": ("rss20", 20),
    "feedjira__DuplicateContentAtomFeed.xml": ("atom10", 10),
}


def test_every_corpus_feed_parses_with_links(corpora):
    files = sorted(p for p in (corpora / "feeds").iterdir() if p.name != "SOURCE.md")
    assert len(files) == 30
    for p in files:
        feed = parse_feed(p.read_bytes(), url=f"https://feeds.example.org/{p.name}")
        assert feed.entries, p.name
        assert all(e.url and e.url.startswith("http") for e in feed.entries), p.name
        assert all(e.title for e in feed.entries if "rss-1" not in p.name), p.name
        if p.name in EXPECTED:
            assert (feed.format, len(feed.entries)) == EXPECTED[p.name], p.name


def test_quirks_decoded_correctly(corpora):
    d = corpora / "feeds"
    gb = parse_feed((d / "rss-parser__encoding-gb2312.xml").read_bytes())
    assert gb.entries[0].title == "习近平为何如此强调崇尚英雄？"
    pt = parse_feed((d / "rss-parser__encoding.rss").read_bytes())
    assert any("ã" in (e.title or "") for e in pt.entries)
    uol = parse_feed((d / "rss-parser__uolNoticias.rss").read_bytes())
    assert any("ç" in (e.title or "") + (e.summary or "") for e in uol.entries)
    assert uol.warnings  # the encoding override is reported, not hidden
    # Leading whitespace before <?xml is not a parse problem once stripped.
    tc = parse_feed((d / "feedjira__TechCrunch.xml").read_bytes())
    assert tc.warnings == [] and tc.entries[0].published is not None
    # Several <link>s per entry: the alternate one is chosen.
    ml = parse_feed((d / "rss-parser__many-links.rss").read_bytes())
    assert all(e.url.startswith("http://feedproxy.google.com/~r/blogspot/") for e in ml.entries)
    # Relative links resolve against the feed URL.
    sr = parse_feed((d / "feedjira__SamRuby.xml").read_bytes(), url="http://intertwingly.net/blog/index.atom")
    assert sr.entries[0].url.startswith("http://intertwingly.net/blog/")
    js = parse_feed((d / "trafilatura__feed.json").read_bytes())
    assert "\\/" not in js.entries[0].url and js.entries[0].published.tzinfo is not None


def test_not_well_formed_feed_with_entries_yields_entries_and_a_warning(corpora):
    feed = parse_feed(
        (corpora / "feeds" / "rss-parser__physorg-daily-sci-tech-news.rss").read_bytes(), url="x"
    )
    assert len(feed.entries) == 30
    assert feed.warnings and "not well-formed" in feed.warnings[0]


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "empty"),
        (b"<html><body><p>hello</p></body></html>", "not RSS, Atom or JSON Feed"),
        (b"<rss><channel><item><title>x</ti", None),
        (b'{"items": []}', "not a JSON Feed"),
        (b"\x00\x01garbage & <<", "no entries"),
    ],
)
def test_unreadable_feeds_raise_feed_error(data, match):
    if match is None:  # a truncated feed that still has an entry is recovered, with a warning
        feed = parse_feed(data, url="u")
        assert feed.warnings
        return
    with pytest.raises(FeedError, match=match):
        parse_feed(data, url="http://h/f")


def test_feeds_over_loopback_keep_format_and_rewritten_links(server, crawl_cfg):
    for name in server.feeds:
        res, _ = fetch(crawl_cfg, server.url(f"/feeds/{name}"), kind="feed")
        assert res.ok, res.error
        feed = parse_feed(res.content, url=res.final_url, content_type=res.content_type)
        assert len(feed.entries) == len(parse_feed(server.raw_feeds[name]).entries), name
        if server.rewritten[name]:
            assert any(e.url.startswith(server.base + "/pages/") for e in feed.entries), name
    rewritten = sum(1 for n in server.rewritten.values() if n)
    assert rewritten >= 25


def test_malformed_feed_over_loopback(server, crawl_cfg):
    res, _ = fetch(crawl_cfg, server.url("/feeds/malformed.xml"), kind="feed")
    assert res.ok
    feed = parse_feed(res.content, url=res.final_url)
    assert feed.warnings  # one truncated item recovered leniently
