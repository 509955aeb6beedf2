import hashlib

import pytest

from newsml_pipeline.core.crawl.urls import article_id_for, canonicalize_url


def test_canonicalize_drops_tracking_fragment_default_port_and_sorts_query():
    url = "HTTPS://WWW.BBC.co.uk:443/news/uk-43532916?b=2&at_medium=RSS&utm_source=x&a=1&fbclid=z#comments"
    assert canonicalize_url(url) == "https://www.bbc.co.uk/news/uk-43532916?a=1&b=2"


def test_canonicalize_keeps_content_params_and_non_default_port():
    assert canonicalize_url("http://example.com:8080/a?id=7&gclid=1") == "http://example.com:8080/a?id=7"
    assert canonicalize_url("http://example.com") == "http://example.com/"


def test_canonicalize_unwraps_google_alert_redirects():
    wrapped = "https://www.google.com/url?rct=j&sa=t&url=https://news.example.com/story%3Fid%3D3&ct=ga"
    assert canonicalize_url(wrapped) == "https://news.example.com/story?id=3"


@pytest.mark.parametrize("bad", ["", "ftp://x.org/a", "not a url", "http:///nohost"])
def test_canonicalize_rejects_non_http(bad):
    with pytest.raises(ValueError, match="URL"):
        canonicalize_url(bad)


def test_article_id_is_stable_and_prefers_url_then_record_id_then_hash():
    a = article_id_for(url="https://x.org/a?utm_source=rss", source="s1", record_id="1", content_hash="h")
    b = article_id_for(url="https://X.org/a#top", source="s2", record_id="2", content_hash="other")
    assert a == b
    # Ids are stored keys: the value for a known URL must never change between versions, and it is
    # the first 20 hex chars of sha256("url" US canonical-URL US).
    assert a == "062df0e1c3b387ccab00"
    assert a == hashlib.sha256(b"url\x1fhttps://x.org/a\x1f").hexdigest()[:20]
    assert len(a) == 20 and set(a) <= set("0123456789abcdef")
    assert a != article_id_for(url="https://x.org/b", source="s1", record_id="1", content_hash="h")
    r1 = article_id_for(url=None, source="inbox", record_id="42", content_hash="h")
    assert r1 == article_id_for(url=None, source="inbox", record_id="42", content_hash="zzz")
    assert r1 != article_id_for(url=None, source="other", record_id="42", content_hash="h")
    h = article_id_for(url="tag:blog,2020:1", source="s", record_id=None, content_hash="abc")
    assert h == article_id_for(url=None, source="t", record_id=None, content_hash="abc")
