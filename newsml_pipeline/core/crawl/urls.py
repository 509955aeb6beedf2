"""Canonical URLs and stable article ids.

The same story reaches us through several feeds with different tracking parameters
(`?at_medium=RSS`, `utm_source=...`) or fragments; canonicalising first makes those one
article, so re-crawls replace rows instead of duplicating them.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Exact parameter names that only track the click, never select the content.
_TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "ocid",
        "cmpid",
        "igshid",
        "yclid",
        "_ga",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "spm",
        "ref_src",
        "smid",
        "smtyp",
    }
)
_TRACKING_PREFIXES = ("utm_", "at_", "pk_", "mtm_", "ga_")
_ID_HEX_CHARS = 20


def _is_tracking(name: str) -> bool:
    lname = name.lower()
    return lname in _TRACKING_PARAMS or lname.startswith(_TRACKING_PREFIXES)


def _unwrap_redirector(parts) -> str | None:
    """Google Alerts wraps article links in google.com/url?url=<target>; return the target."""
    host = (parts.hostname or "").lower()
    if host in {"www.google.com", "google.com"} and parts.path == "/url":
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            if k in {"url", "q"} and v.startswith(("http://", "https://")):
                return v
    return None


def canonicalize_url(url: str) -> str:
    """Lowercase scheme/host, drop default port, fragment and tracking params, sort the query.

    Raises ValueError for something that is not an absolute http(s) URL, naming it.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"not a URL: {url!r}")
    parts = urlsplit(url.strip())
    target = _unwrap_redirector(parts)
    if target is not None:
        return canonicalize_url(target)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise ValueError(f"URL has no host: {url!r}")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError as e:
        raise ValueError(f"URL has an invalid port: {url!r}") from e
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if parts.username or parts.password:
        raise ValueError(f"URL carries credentials, refusing it: {url!r}")
    # Re-quote the path so %7E and ~ compare equal; keep reserved characters as they are.
    path = quote(unquote(parts.path), safe="/:@!$&'()*+,;=-._~") or "/"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)]
    query.sort()
    return urlunsplit((scheme, netloc, path, urlencode(query, doseq=True), ""))


def origin(url: str) -> str:
    """scheme://host[:port] of a URL: what robots.txt rules are per, and what a log may show of a
    URL whose path or query holds a secret (a webhook's token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()[:_ID_HEX_CHARS]


def _canonical_or_none(url: str | None) -> str | None:
    """The canonical URL, or None where `url` is empty or not http(s) (e.g. a `tag:` URI)."""
    if not url:
        return None
    try:
        return canonicalize_url(url)
    except ValueError:
        return None


def article_id_for(*, url: str | None, source: str, record_id: str | None, content_hash: str) -> str:
    """Stable article id: hash of the canonical URL, else of source+record id, else the content hash.

    A URL identifies the article wherever it came from; a record id only within its source;
    the content hash is the last resort for id-less local records.
    """
    canonical = _canonical_or_none(url)
    if canonical is not None:
        return _digest("url", canonical)
    if record_id is not None and str(record_id) != "":
        return _digest("rec", source, str(record_id))
    if not content_hash:
        raise ValueError(f"source {source!r}: cannot identify an article without url, id or content")
    return _digest("hash", content_hash)
