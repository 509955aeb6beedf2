"""Parse RSS 0.9x/1.0/2.0, Atom and JSON Feed documents into plain entries.

feedparser does the XML formats, including encodings (it decodes gb2312, cp1252, ...) and
lenient recovery from not-well-formed XML. feedparser 6.0 does not read JSON Feed, so that is
parsed here with `json`. Real feeds start with whitespace before `<?xml` surprisingly often;
that is stripped first so it does not turn a good feed into a "bozo" one.
"""

from __future__ import annotations

import calendar
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin

import feedparser
import lxml.html

from newsml_pipeline.core.crawl.dates import to_utc

log = logging.getLogger(__name__)


class FeedError(ValueError):
    """The document is not a feed we can read (no entries and a parse error, or not a feed)."""


@dataclass(frozen=True)
class FeedEntry:
    url: str | None  # absolute link to the article page (rel="alternate" for Atom)
    title: str | None
    summary: str | None  # plain text (HTML stripped): the fallback when the page yields nothing
    published: datetime | None  # UTC
    id: str | None  # guid / atom:id / JSON Feed id


@dataclass
class ParsedFeed:
    format: str  # feedparser's version ("rss20", "rss10", "atom10", ...) or "json1"
    title: str | None
    entries: list[FeedEntry]
    warnings: list[str] = field(default_factory=list)


def html_to_text(fragment: str | None) -> str | None:
    """Plain text of an HTML fragment (feed summaries), whitespace normalised; None if empty."""
    if not fragment or not fragment.strip():
        return None
    if "<" in fragment or "&" in fragment:
        try:
            text = lxml.html.fragment_fromstring(fragment, create_parent="div").text_content()
        except (ValueError, lxml.etree.ParserError):
            text = fragment  # not HTML after all (e.g. a lone "<" in plain text)
    else:
        text = fragment
    text = " ".join(text.split())
    return text or None


def _clean_title(title: str | None) -> str | None:
    return html_to_text(title)


def _struct_to_utc(st) -> datetime | None:
    if st is None:
        return None
    return datetime.fromtimestamp(calendar.timegm(st), tz=UTC)


def _absolute(link: str | None, base: str | None) -> str | None:
    if not link:
        return None
    link = link.strip()
    return urljoin(base, link) if base else link


def _looks_like_json(data: bytes) -> bool:
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return head in (b"{", b"[")


def _parse_json_feed(data: bytes, *, url: str | None) -> ParsedFeed:
    where = url or "<bytes>"
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FeedError(f"feed {where}: JSON is not valid ({e})") from e
    if not isinstance(doc, dict) or "jsonfeed.org" not in str(doc.get("version", "")):
        raise FeedError(f"feed {where}: JSON document is not a JSON Feed (no jsonfeed.org version)")
    items = doc.get("items")
    if not isinstance(items, list):
        raise FeedError(f"feed {where}: JSON Feed has no 'items' list")
    base = url or doc.get("home_page_url") or doc.get("feed_url")
    entries, warnings = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            warnings.append(f"item {i} is not an object; skipped")
            continue
        summary = item.get("content_text") or html_to_text(item.get("content_html") or item.get("summary"))
        entries.append(
            FeedEntry(
                url=_absolute(item.get("url") or item.get("external_url"), base),
                title=_clean_title(item.get("title")),
                summary=" ".join(summary.split()) if summary else None,
                published=to_utc(item.get("date_published") or item.get("date_modified"), lenient=True),
                id=str(item["id"]) if item.get("id") is not None else None,
            )
        )
    return ParsedFeed(format="json1", title=doc.get("title"), entries=entries, warnings=warnings)


def _entry_summary(entry) -> str | None:
    """The longest text the entry carries: content:encoded beats a teaser description."""
    candidates = [c.get("value") for c in entry.get("content", []) if c.get("value")]
    if entry.get("summary"):
        candidates.append(entry["summary"])
    texts = [t for t in (html_to_text(c) for c in candidates) if t]
    return max(texts, key=len) if texts else None


def _entry_link(entry) -> str | None:
    link = entry.get("link")
    if not link:
        for lk in entry.get("links", []):
            if lk.get("rel", "alternate") == "alternate" and lk.get("href"):
                return lk["href"]
        guid = entry.get("id")
        if guid and guid.startswith(("http://", "https://")) and entry.get("guidislink", True):
            return guid
    return link


def parse_feed(data: bytes, *, url: str | None = None, content_type: str | None = None) -> ParsedFeed:
    """Entries of an RSS/Atom/JSON feed; `url` (where it was fetched) resolves relative links.

    `content_type` is the HTTP header when there was one (its charset is a decoding hint).

    A recoverable parse problem (bozo) with entries gives the entries plus a warning; no
    entries together with a parse error raises FeedError saying where and why.
    """
    where = url or "<bytes>"
    if not data or not data.strip():
        raise FeedError(f"feed {where}: empty document")
    if _looks_like_json(data):
        return _parse_json_feed(data, url=url)
    data = data.lstrip(b" \t\r\n")
    if data.startswith(b"\xef\xbb\xbf"):
        data = b"\xef\xbb\xbf" + data[3:].lstrip(b" \t\r\n")
    headers = {"content-type": content_type or "application/xml"}
    if url:
        headers["content-location"] = url
    parsed = feedparser.parse(data, response_headers=headers)
    warnings: list[str] = []
    if parsed.bozo:
        exc = parsed.get("bozo_exception")
        msg = f"{type(exc).__name__}: {exc}" if exc else "unknown parse problem"
        if not parsed.entries:
            raise FeedError(f"feed {where}: not a readable feed, no entries ({msg})")
        warnings.append(f"feed {where} parsed leniently: {msg}")
        log.warning("feed %s parsed leniently (%d entries kept): %s", where, len(parsed.entries), msg)
    if not parsed.entries and not parsed.version:
        raise FeedError(f"feed {where}: document is not RSS, Atom or JSON Feed")
    entries = [
        FeedEntry(
            url=_absolute(_entry_link(e), url),
            title=_clean_title(e.get("title")),
            summary=_entry_summary(e),
            published=_struct_to_utc(e.get("published_parsed") or e.get("updated_parsed")),
            id=e.get("id"),
        )
        for e in parsed.entries
    ]
    return ParsedFeed(
        format=parsed.version or "unknown",
        title=_clean_title(parsed.feed.get("title")),
        entries=entries,
        warnings=warnings,
    )
