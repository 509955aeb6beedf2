"""robots.txt decided the way Google does (wildcards, longest match), through the real fetcher."""

from __future__ import annotations

import asyncio

from newsml_pipeline.core.crawl.fetcher import Fetcher
from newsml_pipeline_tests.core.crawl.scripted import ScriptedServer, page, send

# urllib.robotparser gets three of these wrong: it takes `*` and `$` literally (so /report.pdf
# would be allowed) and lets the first matching line win (so /files/public/ would be blocked).
ROBOTS = """\
User-agent: *
Disallow: /files/
Allow: /files/public/
Disallow: /*.pdf$
"""
EXPECTED = {
    "/files/public/note.html": True,  # Allow /files/public/ is longer than Disallow /files/
    "/files/secret.html": False,
    "/report.pdf": False,  # /*.pdf$
    "/report.pdf?download=1": True,  # `$` anchors the end: the query string is part of the URL
    "/files/public/deck.pdf": True,  # Allow /files/public/ (14 chars) beats /*.pdf$ (7)
    "/news/today": True,
}


def _decide(crawl_cfg, robots: str, paths) -> dict[str, bool]:
    def robots_route(h, n):
        send(h, 200, robots.encode(), "text/plain")

    with ScriptedServer({"/robots.txt": robots_route}, default=page) as srv:

        async def go():
            async with Fetcher.from_config(crawl_cfg, allow_private=True) as f:
                return await asyncio.gather(*(f.fetch(srv.url(p)) for p in paths))

        results = asyncio.run(go())
        fetched = {a.path for a in srv.arrivals}
    out = {}
    for p, r in zip(paths, results, strict=True):
        assert r.ok or "robots.txt" in r.error, r.error
        assert (p in fetched) == r.ok  # a disallowed page is never requested
        out[p] = r.ok
    return out


def test_wildcards_and_longest_match_as_google(crawl_cfg):
    assert _decide(crawl_cfg, ROBOTS, list(EXPECTED)) == EXPECTED


def test_a_group_naming_our_agent_replaces_the_star_group(crawl_cfg):
    robots = "User-agent: *\nDisallow: /\n\nUser-agent: newsml-pipeline\nDisallow: /drafts/\n"
    got = _decide(crawl_cfg, robots, ["/news/a", "/drafts/b"])
    assert got == {"/news/a": True, "/drafts/b": False}


def test_robots_4xx_allows_all_and_5xx_disallows_all_with_notes(crawl_cfg):
    cfg = crawl_cfg.model_copy(update={"retries": 0})
    routes = {"/robots.txt": lambda h, n: send(h, 404, b"none")}
    with (
        ScriptedServer(routes, default=page) as srv404,
        ScriptedServer({"/robots.txt": lambda h, n: send(h, 500, b"oops")}, default=page) as srv500,
    ):

        async def go():
            async with Fetcher.from_config(cfg, allow_private=True) as f:
                res = await asyncio.gather(f.fetch(srv404.url("/a")), f.fetch(srv500.url("/a")))
                return res, dict(f.robots.notes)

        (ok, blocked), notes = asyncio.run(go())
        assert srv500.hits("/a") == 0
    assert ok.ok and not blocked.ok and "robots.txt" in blocked.error
    assert "no rules, all allowed" in notes[srv404.base]
    assert "host disallowed for this run" in notes[srv500.base]
