"""The newsroom's article pages answer conditional GETs like real sites, so re-crawls cost a 304."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from newsml_pipeline.newsroom import NewsSite, Story


def test_an_unchanged_article_page_answers_304_to_its_etag() -> None:
    story = Story(
        id="a1", title="T", text="Some text.", published=datetime(2026, 10, 1, tzinfo=UTC), section="s"
    )
    with NewsSite([story]) as site:
        site.now = datetime(2026, 10, 2, tzinfo=UTC)
        first = httpx.get(site.article_url("a1"))
        assert first.status_code == 200 and first.headers["ETag"]
        again = httpx.get(site.article_url("a1"), headers={"If-None-Match": first.headers["ETag"]})
        assert again.status_code == 304 and again.content == b""
        other = httpx.get(site.article_url("a1"), headers={"If-None-Match": '"stale"'})
        assert other.status_code == 200 and site.not_modified == 1
