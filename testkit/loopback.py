"""A loopback HTTP server that serves the real pages and feeds of ../shared/corpora.

Feeds are served with their item links rewritten to loopback pages (/pages/<k>, the k-th real
page), so a crawl of them exercises fetching and extraction on real HTML. Special routes
exercise each error path. Used by the crawl tests (in a thread) and by bench/crawl.py.
"""

from __future__ import annotations

import gzip
import html
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from newsml_pipeline.core.crawl.feeds import parse_feed


def send(
    h: BaseHTTPRequestHandler, status: int, body: bytes = b"", ctype: str = "text/html", **headers
) -> None:
    """One whole response: status, content type, length, extra headers (`x_foo` → `x-foo`), body."""
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    for k, v in headers.items():
        h.send_header(k.replace("_", "-"), v)
    h.end_headers()
    h.wfile.write(body)


def load_pages(corpora: Path) -> list[dict]:
    """The 80 real pages: index row + `html` bytes (decompressed)."""
    root = corpora / "web_pages"
    pages = []
    for line in (root / "index.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        data = (root / row["path"]).read_bytes()
        if row["compression"] == "gzip":
            data = gzip.decompress(data)
        row["html"] = data
        pages.append(row)
    return pages


def load_feeds(corpora: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((corpora / "feeds").iterdir()) if p.name != "SOURCE.md"}


def rewrite_feed(data: bytes, *, name: str, base: str, first_page: int, n_pages: int) -> tuple[bytes, int]:
    """Point each item link of a real feed at a loopback page; returns (bytes, links rewritten)."""
    entries = parse_feed(data, url=f"{base}/feeds/{name}").entries
    done = 0
    for i, e in enumerate(entries):
        if not e.url or e.url.startswith(base):
            continue
        target = f"{base}/pages/{(first_page + i) % n_pages}"
        variants = {e.url, html.escape(e.url, quote=False), e.url.replace("/", "\\/")}
        before = data
        for v in variants:
            data = data.replace(v.encode("ascii", "xmlcharrefreplace"), target.encode())
        done += data != before
    return data, done


ROBOTS = b"User-agent: *\nDisallow: /private/\n"
MALFORMED = b"<?xml version='1.0'?>\n<rss><channel><title>broken</title><item><title>x</ti"


class LoopbackServer:
    """ThreadingHTTPServer on 127.0.0.1:<random port>; `hits` counts requests per path."""

    def __init__(self, corpora: Path, *, slow_s: float = 3.0) -> None:
        self.pages = load_pages(corpora)
        self.raw_feeds = load_feeds(corpora)
        self.slow_s = slow_s
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                return

            def do_GET(self) -> None:
                with server._lock:
                    server.hits[self.path] += 1
                server.route(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.feeds: dict[str, bytes] = {}
        self.rewritten: dict[str, int] = {}
        for k, (name, data) in enumerate(self.raw_feeds.items()):
            self.feeds[name], self.rewritten[name] = rewrite_feed(
                data, name=name, base=self.base, first_page=k * 7, n_pages=len(self.pages)
            )
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return self.base + path

    # ------------------------------------------------------------ routes

    send = staticmethod(send)

    def route(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        parts = path.strip("/").split("/")
        if path == "/robots.txt":
            return self.send(h, 200, ROBOTS, "text/plain")
        if parts[0] == "pages" and len(parts) == 2 and parts[1].isdigit() and int(parts[1]) < len(self.pages):
            return self.send(h, 200, self.pages[int(parts[1])]["html"])
        if parts[0] == "p" and len(parts) == 2 and parts[1].isdigit():  # benchmark: distinct URLs
            i = int(parts[1])
            return self.send(h, 200, self.pages[i % len(self.pages)]["html"] + f"<!-- p{i} -->".encode())
        if parts[0] == "feeds" and len(parts) == 2 and parts[1] in self.feeds:
            ctype = "application/json" if parts[1].endswith(".json") else "application/xml"
            return self.send(h, 200, self.feeds[parts[1]], ctype)
        if path == "/feeds/malformed.xml":
            return self.send(h, 200, MALFORMED, "application/rss+xml")
        if parts[0] == "private":
            return self.send(h, 200, self.pages[0]["html"])
        if parts[0] == "flaky":  # 500 on the first request of each path, then the page
            if self.hits[h.path] == 1:
                return self.send(h, 500, b"try again")
            return self.send(h, 200, self.pages[1]["html"])
        if parts[0] == "always500":
            return self.send(h, 503, b"down")
        if path == "/slow":
            time.sleep(self.slow_s)
            return self.send(h, 200, self.pages[2]["html"])
        if path == "/binary":
            return self.send(h, 200, b"%PDF-1.4 not html", "application/pdf")
        if path == "/big":  # honest Content-Length above the cap
            return self.send(h, 200, b"<html>" + b"x" * 1_200_000 + b"</html>")
        if path == "/big-stream":  # no Content-Length: the cap must hold while streaming
            h.send_response(200)
            h.send_header("Content-Type", "text/html")
            h.send_header("Connection", "close")
            h.end_headers()
            for _ in range(150):
                h.wfile.write(b"<p>" + b"y" * 10_000 + b"</p>")
            h.close_connection = True
            return None
        if parts[0] == "redirect" and len(parts) == 2 and parts[1].isdigit():
            n = int(parts[1])
            target = "/pages/3" if n <= 1 else f"/redirect/{n - 1}"
            return self.send(h, 302, b"", Location=target)
        if path == "/etag":
            etag = '"v1"'
            if h.headers.get("If-None-Match") == etag:
                h.send_response(304)
                h.send_header("ETag", etag)
                h.send_header("Content-Length", "0")
                h.end_headers()
                return None
            return self.send(h, 200, self.pages[4]["html"], ETag=etag)
        if path == "/feeds/special.xml":
            return self.send(h, 200, self.special_feed(), "application/rss+xml")
        return self.send(h, 404, b"not found")

    def special_feed(self) -> bytes:
        """An RSS 2.0 feed whose items hit good pages and every error route."""
        items = [
            ("Good page", "/pages/5", "Mon, 02 Jan 2023 10:00:00 GMT", "Summary of the good page."),
            ("Missing", "/missing", "Mon, 02 Jan 2023 11:00:00 GMT", "Summary of a page that is gone."),
            (
                "Private",
                "/private/secret",
                "Mon, 02 Jan 2023 12:00:00 GMT",
                "Summary of a robots-blocked page.",
            ),
            ("Binary", "/binary", "Mon, 02 Jan 2023 13:00:00 GMT", ""),
            ("Redirected", "/redirect/2", "Mon, 02 Jan 2023 14:00:00 GMT", "Summary of a redirected page."),
        ]
        body = "".join(
            f"<item><title>{t}</title><link>{self.base}{p}</link><pubDate>{d}</pubDate>"
            f"<description>{s}</description><guid>{p}</guid></item>"
            for t, p, d, s in items
        )
        return (
            f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>special</title>'
            f"{body}</channel></rss>"
        ).encode()


def expected_texts(corpora: Path, pages: list[dict]) -> dict[int, tuple[str, str]]:
    """Page index -> (kind, expected article text) for the Zyte and Readability pages."""
    import lxml.html

    root = corpora / "web_pages"
    zyte = json.loads((root / "zyte_article_benchmark" / "ground-truth.json").read_text(encoding="utf-8"))
    out: dict[int, tuple[str, str]] = {}
    for i, p in enumerate(pages):
        if p["expected_file"].endswith("ground-truth.json"):
            out[i] = ("zyte", zyte[p["expected_key"]]["articleBody"])
        elif p["expected_file"].endswith("expected.html"):
            doc = lxml.html.fromstring((root / p["expected_file"]).read_bytes())
            out[i] = ("readability", " ".join(doc.text_content().split()))
    return out
