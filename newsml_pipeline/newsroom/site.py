"""A simulated newsroom on loopback: RSS feeds that roll, article pages, a clock you set.

Real feeds show only their latest N items, so what a crawler stores depends on when it reads
them. This site reproduces that with a simulated clock (`site.now`): each section's feed lists
its newest `feed_size` stories visible at `now`, each story has an HTML page, and the site can
be taken down (`site.down = True`: every request answers 503). The project's tests, the newsroom
benchmark and the demo drive the living system against it without any network.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

log = logging.getLogger(__name__)

_ARTICLE = re.compile(r"^/articles/([A-Za-z0-9_.-]+)\.html$")
_FEED = re.compile(r"^/feeds/([A-Za-z0-9_-]+)\.xml$")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Story:
    """One article of the newsroom. `appears_at` (default: `published`) is when it shows on its
    feed, for stories that surface later than their date; `dated=False` publishes it with no date
    in the feed or on the page."""

    id: str
    title: str
    text: str
    published: datetime
    section: str
    topic: str | None = None
    dated: bool = True
    appears_at: datetime | None = None

    @property
    def visible_from(self) -> datetime:
        return self.appears_at or self.published


class NewsSite:
    """The loopback site; use as a context manager or `start()` / `stop()`."""

    def __init__(
        self, stories: Iterable[Story], *, feed_size: int = 30, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.stories = sorted(stories, key=lambda s: (s.visible_from, s.id))
        ids = [s.id for s in self.stories]
        if len(set(ids)) != len(ids):
            raise ValueError("story ids must be unique")
        self._by_id = {s.id: s for s in self.stories}
        self.sections = sorted({s.section for s in self.stories})
        self.feed_size = feed_size
        self._lock = threading.Lock()
        self._now = self.stories[0].visible_from if self.stories else datetime.now(UTC)
        self.down = False
        self.requests = 0
        self.not_modified = 0
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ clock and content

    @property
    def now(self) -> datetime:
        with self._lock:
            return self._now

    @now.setter
    def now(self, value: datetime) -> None:
        if value.tzinfo is None:
            raise ValueError("the newsroom clock is timezone-aware (UTC)")
        with self._lock:
            self._now = value.astimezone(UTC)

    def visible(self, section: str) -> list[Story]:
        """The section's feed at `now`: its newest `feed_size` visible stories, newest first."""
        now = self.now
        shown = [s for s in self.stories if s.section == section and s.visible_from <= now]
        return sorted(shown, key=lambda s: (s.visible_from, s.id), reverse=True)[: self.feed_size]

    def published_by(self, when: datetime | None = None) -> list[Story]:
        """Every story that has appeared on a feed by `when` (default: now)."""
        when = when or self.now
        return [s for s in self.stories if s.visible_from <= when]

    # ------------------------------------------------------------ serving

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def feed_url(self, section: str) -> str:
        return self.url(f"/feeds/{section}.xml")

    def article_url(self, story_id: str) -> str:
        return self.url(f"/articles/{story_id}.html")

    def start(self) -> NewsSite:
        self._thread = threading.Thread(target=self._server.serve_forever, name="newsroom", daemon=True)
        self._thread.start()
        log.info(
            "newsroom serving %d stories in %d sections at %s",
            len(self.stories),
            len(self.sections),
            self.base_url,
        )
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> NewsSite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rss(self, section: str) -> bytes:
        items = []
        for s in self.visible(section):
            lead = _SENTENCE.split(s.text.strip(), maxsplit=1)[0]
            date = f"<pubDate>{format_datetime(s.published)}</pubDate>" if s.dated else ""
            items.append(
                f"<item><title>{escape(s.title)}</title><link>{escape(self.article_url(s.id))}</link>"
                f'<guid isPermaLink="false">{escape(s.id)}</guid>{date}'
                f"<description>{escape(lead)}</description></item>"
            )
        body = (
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
            f"<title>Newsroom: {escape(section)}</title><link>{escape(self.base_url)}</link>"
            f"<description>Simulated newsroom section {escape(section)}</description>"
            + "".join(items)
            + "</channel></rss>"
        )
        return body.encode("utf-8")

    def page(self, story: Story) -> bytes:
        paragraphs = [p for p in re.split(r"\n\s*\n|\n", story.text) if p.strip()]
        if len(paragraphs) == 1:
            sentences = _SENTENCE.split(paragraphs[0])
            paragraphs = [" ".join(sentences[i : i + 3]) for i in range(0, len(sentences), 3)]
        meta = (
            f'<meta property="article:published_time" content="{story.published.isoformat()}">'
            if story.dated
            else ""
        )
        body = "".join(f"<p>{escape(p.strip())}</p>" for p in paragraphs)
        html = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(story.title)}</title>{meta}</head>"
            f"<body><header><nav><a href='/'>Newsroom</a> | <a href='/feeds/{escape(story.section)}.xml'>"
            f"{escape(story.section)}</a></nav></header><main><article><h1>{escape(story.title)}</h1>{body}"
            "</article></main><footer>© Simulated Newsroom</footer></body></html>"
        )
        return html.encode("utf-8")

    def story(self, story_id: str) -> Story | None:
        s = self._by_id.get(story_id)
        return s if s is not None and s.visible_from <= self.now else None


def _handler_for(site: NewsSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            log.debug("newsroom %s", format % args)

        def _send(self, status: int, body: bytes, ctype: str, etag: str | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if etag is not None:
                self.send_header("ETag", etag)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            site.requests += 1
            if site.down:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"down for maintenance", "text/plain")
                return
            path = self.path.split("?", 1)[0]
            if path == "/robots.txt":
                self._send(HTTPStatus.OK, b"User-agent: *\nAllow: /\n", "text/plain")
            elif m := _FEED.match(path):
                if m.group(1) not in site.sections:
                    self._send(HTTPStatus.NOT_FOUND, b"no such feed", "text/plain")
                else:
                    self._send(HTTPStatus.OK, site.rss(m.group(1)), "application/rss+xml; charset=utf-8")
            elif m := _ARTICLE.match(path):
                story = site.story(m.group(1))
                if story is None:
                    self._send(HTTPStatus.NOT_FOUND, b"no such article", "text/plain")
                else:
                    # Article pages carry an ETag, as real sites' do: a crawler that read the page
                    # before gets 304 Not Modified and nothing to extract again.
                    body = site.page(story)
                    etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
                    if self.headers.get("If-None-Match") == etag:
                        site.not_modified += 1
                        self._send(HTTPStatus.NOT_MODIFIED, b"", "text/html; charset=utf-8", etag)
                    else:
                        self._send(HTTPStatus.OK, body, "text/html; charset=utf-8", etag)
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

    return Handler
