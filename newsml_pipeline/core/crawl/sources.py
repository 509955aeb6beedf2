"""Sources of articles (`rss`, `local`, `hf`) → frames in the raw_articles contract.

Each kind has one function returning `(frame, SourceReport)`. `collect_articles` runs all
configured sources; a source that fails outright is reported (error + count) and the others
still deliver. Bad records are never silently dropped: each one is named in the report
(file:line for local files, the URL for pages).
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from newsml_pipeline.core.crawl.crawler import PageRequest, crawl_pages
from newsml_pipeline.core.crawl.dates import to_utc
from newsml_pipeline.core.crawl.extract import ExtractorPool
from newsml_pipeline.core.crawl.feeds import FeedError, parse_feed
from newsml_pipeline.core.crawl.fetcher import Fetcher
from newsml_pipeline.core.crawl.state import PageCache
from newsml_pipeline.core.crawl.urls import article_id_for, canonicalize_url
from newsml_pipeline.core.data.articles import content_hash, with_partition_date
from newsml_pipeline.core.data.schema import RAW_ARTICLES, conform, empty
from newsml_pipeline.core.records import iter_records

log = logging.getLogger(__name__)

LOCAL_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet", ".csv")
IOB_SUFFIXES = (".iob2", ".conll")  # gold entity sentences (core/entities/gold.py reads them)
GOLD_ENTITIES = "gold_entities"  # batch column of gold spans (core/entities/trusted.py stores them)
STATE_FILE = "crawl_state.duckdb"


class SourceError(RuntimeError):
    """A whole source could not be read (feed unreachable, dataset missing, ...)."""


@dataclass
class SourceReport:
    source: str
    kind: str
    rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # each names the record/URL/file:line at fault
    notes: list[str] = field(default_factory=list)  # not errors: empty folder, lenient feed parse, ...
    failed: bool = False  # the whole source failed (its error is the first in `errors`)
    elapsed_s: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# ---------------------------------------------------------------- shared record → row


def _published(value: Any, *, where: str) -> datetime | None:
    """A record's `published` in UTC; a bad one names the record."""
    try:
        return to_utc(value)
    except ValueError as e:
        raise ValueError(f"{where}: 'published' {e}") from None


def _rows_to_frame(rows: list[dict], *, source: str, fetched_at: datetime) -> pl.DataFrame:
    """rows: url, title, text, published_at, gold_label, text_from_summary, record_id, and
    gold_entities (JSON spans) when a local source carries them: then the frame has that extra
    column, which the article store leaves out (core/entities/trusted.py records it)."""
    if not rows:
        return empty(RAW_ARTICLES)
    with_gold = any(r.get(GOLD_ENTITIES) is not None for r in rows)
    out = []
    for r in rows:
        h = content_hash(r["text"])
        url = r.get("url")
        canonical = None
        if url:
            try:
                canonical = canonicalize_url(url)
            except ValueError:
                canonical = None  # kept out of the url column; the id falls back to record id/content
        out.append(
            {
                "article_id": article_id_for(
                    url=r.get("id_url", url), source=source, record_id=r.get("record_id"), content_hash=h
                ),
                "url": canonical,
                "source": source,
                "title": r.get("title"),
                "text": r["text"],
                "published_at": r.get("published_at"),
                "fetched_at": fetched_at,
                "content_hash": h,
                "gold_label": r.get("gold_label"),
                "text_from_summary": bool(r.get("text_from_summary", False)),
                "near_duplicate_of": None,
                **({GOLD_ENTITIES: r.get(GOLD_ENTITIES)} if with_gold else {}),
            }
        )
    schema = {k: v for k, v in RAW_ARTICLES.items() if k != "partition_date"}
    if with_gold:
        schema[GOLD_ENTITIES] = pl.String()
    df = pl.DataFrame(out, schema=schema)
    return conform(with_partition_date(df), RAW_ARTICLES, table="raw_articles")


# ---------------------------------------------------------------- rss


async def rss_articles_async(
    src,
    *,
    fetcher: Fetcher,
    extractor: ExtractorPool | None,
    cache: PageCache | None,
    fetched_at: datetime,
) -> tuple[pl.DataFrame, SourceReport]:
    """Feed → entries → pages fetched and extracted (unless `fetch_pages: false`)."""
    report = SourceReport(source=src.name, kind="rss")
    res = await fetcher.fetch(src.url, kind="feed")
    if not res.ok or res.content is None:
        raise SourceError(f"source {src.name!r}: feed {src.url} could not be fetched: {res.error}")
    try:
        feed = parse_feed(res.content, url=res.final_url or src.url, content_type=res.content_type)
    except FeedError as e:
        raise SourceError(f"source {src.name!r}: {e}") from e
    report.notes += feed.warnings
    entries = feed.entries[: src.max_items] if src.max_items else feed.entries
    report.counts["entries"] = len(entries)
    report.notes.append(f"feed format: {feed.format}, {len(feed.entries)} entries")
    rows: list[dict] = []
    by_url = [e for e in entries if e.url]
    without_url = [e for e in entries if not e.url]
    if src.fetch_pages and by_url:
        if extractor is None:
            raise SourceError(f"source {src.name!r}: fetch_pages is on but no extractor pool was given")
        reqs = [
            PageRequest(url=e.url, title=e.title, summary=e.summary, published=e.published) for e in by_url
        ]
        pages, stats = await crawl_pages(reqs, fetcher=fetcher, extractor=extractor, cache=cache)
        report.counts.update({f"pages_{k}": v for k, v in stats.as_dict().items() if k != "elapsed_s"})
        for entry, page in zip(by_url, pages, strict=True):
            if page.error:
                report.errors.append(page.error)
            if not page.text:
                continue
            rows.append(
                {
                    "id_url": entry.url,  # the feed's link is stable; final URLs can vary per fetch
                    "url": page.final_url or entry.url,
                    "title": page.title,
                    "text": page.text,
                    "published_at": page.published,
                    "text_from_summary": page.text_from_summary,
                    "record_id": entry.id,
                }
            )
    else:
        without_url = entries
    for e in without_url:
        if not e.summary:
            report.errors.append(f"feed {src.url}: entry {e.id or e.title!r} has no link and no summary text")
            continue
        rows.append(
            {
                "url": e.url,
                "title": e.title,
                "text": e.summary,
                "published_at": e.published,
                "text_from_summary": True,
                "record_id": e.id,
            }
        )
    df = _rows_to_frame(rows, source=src.name, fetched_at=fetched_at)
    report.rows = len(df)
    report.counts["rows"] = len(df)
    return df, report


# ---------------------------------------------------------------- local


def _local_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(
        p for p in path.rglob("*") if p.is_file() and p.name.endswith(LOCAL_SUFFIXES + IOB_SUFFIXES)
    )


def _gold_entities(raw: Any, text: str, *, where: str) -> str:
    """A record's gold spans, checked against its text, as JSON; ValueError names the bad span."""
    from newsml_pipeline.core.entities.gold import parse_char_spans

    if isinstance(raw, str):  # a CSV cell holds the list as JSON text
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: entities is not a JSON list of {{start, end, label}} ({e})") from None
    spans = parse_char_spans(raw, text, where=where)  # GoldFormatError is a ValueError
    return json.dumps([[s.start, s.end, s.label] for s in spans])


def _iob_rows(path: Path, src) -> list[dict]:
    """One article per sentence of an IOB2/CoNLL file: its text and gold spans (no title)."""
    from newsml_pipeline.core.entities.gold import read_iob2

    rows = []
    for s in read_iob2(path, token_col=src.iob_token_col, tag_col=src.iob_tag_col):
        rows.append(
            {
                "url": None,
                "title": None,
                "text": s.text,
                "published_at": None,
                "gold_label": None,
                "record_id": s.id,
                GOLD_ENTITIES: json.dumps([[e.start, e.end, e.label] for e in s.entities]),
            }
        )
    return rows


def _local_row(rec: dict, *, where: str, label_field: str, entities_field: str = "entities") -> dict:
    missing = [k for k in ("title", "text") if k not in rec]
    if missing:
        raise ValueError(f"{where}: record lacks {missing} (a record needs title and text)")
    text, title = rec["text"], rec["title"]
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: 'text' must be a non-empty string")
    if title is not None and not isinstance(title, str):
        raise ValueError(f"{where}: 'title' must be a string")
    label = rec.get(label_field)
    if label is not None and not isinstance(label, str):
        raise ValueError(f"{where}: '{label_field}' must be a string label, got {label!r}")
    url = rec.get("url")
    if url is not None and not isinstance(url, str):
        raise ValueError(f"{where}: 'url' must be a string")
    return {
        "url": url or None,
        "title": title,
        "text": text,
        "published_at": _published(rec.get("published"), where=where),
        "gold_label": (label.strip() or None) if label else None,
        "record_id": str(rec["id"]) if rec.get("id") is not None else None,
        GOLD_ENTITIES: (
            _gold_entities(rec[entities_field], text, where=where)
            if rec.get(entities_field) is not None
            else None
        ),
    }


def local_articles(src, *, fetched_at: datetime) -> tuple[pl.DataFrame, SourceReport]:
    """A file or folder of .jsonl/.jsonl.gz/.parquet/.csv records; `label` becomes `gold_label`,
    `entities` gold spans; each sentence of an .iob2/.conll file is an article with gold spans.
    A record or a file with a malformed span is refused whole and named in the report (kept without
    its gold, its text would be trained on as if unlabelled)."""
    report = SourceReport(source=src.name, kind="local")
    path = Path(src.path).expanduser()
    if not path.exists():
        report.notes.append(f"{path} does not exist (yet): no articles from {src.name!r}")
        return empty(RAW_ARTICLES), report
    files = _local_files(path)
    if path.is_dir() and not files:
        report.notes.append(f"{path} holds no {'/'.join(LOCAL_SUFFIXES + IOB_SUFFIXES)} files")
    rows: list[dict] = []
    bad = 0
    for f in files:
        if f.name.endswith(IOB_SUFFIXES):
            try:
                rows.extend(_iob_rows(f, src))
            except (OSError, UnicodeDecodeError, ValueError) as e:
                bad += 1
                report.errors.append(f"{f}: gold file not read: {e}")
            continue
        try:
            for where, rec, err in iter_records(f):
                if err is None:
                    try:
                        rows.append(
                            _local_row(
                                rec,
                                where=where,
                                label_field=src.label_field,
                                entities_field=src.entities_field,
                            )
                        )
                        continue
                    except ValueError as e:
                        err = str(e)
                bad += 1
                report.errors.append(err)
        except (OSError, UnicodeDecodeError, EOFError, pl.exceptions.PolarsError, csv.Error) as e:
            bad += 1
            report.errors.append(f"{f}: cannot read file: {type(e).__name__}: {e}")
    df = _rows_to_frame(rows, source=src.name, fetched_at=fetched_at)
    report.rows = len(df)
    report.counts.update(files=len(files), rows=len(df), bad_records=bad)
    return df, report


# ---------------------------------------------------------------- hf


def _load_hf(src):
    import datasets  # imported here: slow to import and only needed by this source kind

    local = Path(src.dataset).expanduser()
    if local.exists():
        ds = datasets.load_from_disk(str(local))
        if isinstance(ds, datasets.DatasetDict):
            if src.split not in ds:
                raise SourceError(f"source {src.name!r}: {local} has splits {list(ds)}, not {src.split!r}")
            ds = ds[src.split]
        return ds
    return datasets.load_dataset(src.dataset, src.subset, split=src.split)


def hf_articles(src, *, fetched_at: datetime) -> tuple[pl.DataFrame, SourceReport]:
    """A `datasets` dataset (local path via load_from_disk, else a hub name); ClassLabel → names."""
    import datasets

    report = SourceReport(source=src.name, kind="hf")
    ds = _load_hf(src)
    if src.max_rows:
        ds = ds.select(range(min(src.max_rows, len(ds))))
    cols = ds.column_names
    if src.text_field not in cols:
        raise SourceError(f"source {src.name!r}: no text field {src.text_field!r}; columns are {cols}")
    title_field = src.title_field if src.title_field in cols else None
    if src.title_field and title_field is None:
        report.notes.append(f"no {src.title_field!r} column; titles left empty")
    label_names = None
    label_field = src.label_field if src.label_field in cols else None
    if src.label_field and label_field is None:
        report.notes.append(f"no {src.label_field!r} column; no gold labels")
    if label_field:
        feat = ds.features[label_field]
        if isinstance(feat, datasets.ClassLabel):
            label_names = feat.names
        elif feat.dtype.startswith("int"):
            if f"{label_field}_text" in cols:
                report.notes.append(f"integer {label_field!r} without names: using {label_field + '_text'!r}")
                label_field = f"{label_field}_text"
            else:
                raise SourceError(
                    f"source {src.name!r}: {label_field!r} holds integers without ClassLabel names; "
                    "set label_field to a column of label names"
                )
    rows, bad = [], 0
    id_field = "id" if "id" in cols else None
    for n, rec in enumerate(ds):
        where = f"{src.dataset}[{src.split}] row {n}"
        text = rec[src.text_field]
        if not isinstance(text, str) or not text.strip():
            bad += 1
            report.errors.append(f"{where}: empty or non-string text")
            continue
        label = rec[label_field] if label_field else None
        if label is not None and label_names is not None:
            label = label_names[label] if label >= 0 else None  # -1 = unlabelled in ClassLabel
        rows.append(
            {
                "url": rec.get("url") if isinstance(rec.get("url"), str) else None,
                "title": rec[title_field] if title_field else None,
                "text": text,
                "published_at": _published(rec.get("published"), where=where)
                if "published" in cols
                else None,
                "gold_label": str(label) if label is not None else None,
                "record_id": str(rec[id_field]) if id_field and rec[id_field] is not None else None,
            }
        )
    df = _rows_to_frame(rows, source=src.name, fetched_at=fetched_at)
    report.rows = len(df)
    report.counts.update(rows=len(df), bad_records=bad)
    return df, report


# ---------------------------------------------------------------- all sources


async def _collect_async(
    sources: list,
    *,
    crawl_cfg,
    state_dir: Path | None,
    fetched_at: datetime,
    allow_private: bool | None,
    polite: bool,
) -> tuple[list[pl.DataFrame], list[SourceReport]]:
    frames: list[pl.DataFrame] = []
    reports: list[SourceReport] = []
    rss = [s for s in sources if s.kind == "rss"]
    cache = PageCache(Path(state_dir) / STATE_FILE) if state_dir is not None else None
    needs_pool = any(s.fetch_pages for s in rss)
    with ExtractorPool(workers=crawl_cfg.extract_workers if needs_pool else 0) as pool:
        async with Fetcher.from_config(crawl_cfg, allow_private=allow_private, polite=polite) as fetcher:
            outcomes = await asyncio.gather(
                *(
                    _timed_async(
                        s,
                        rss_articles_async(
                            s, fetcher=fetcher, extractor=pool, cache=cache, fetched_at=fetched_at
                        ),
                    )
                    for s in rss
                )
            )
            for origin, note in fetcher.robots.notes.items():
                log.info("robots %s: %s", origin, note)
    for df, rep in outcomes:
        frames.append(df)
        reports.append(rep)
    return frames, reports


async def _timed_async(src, coro) -> tuple[pl.DataFrame, SourceReport]:
    start = time.monotonic()
    try:
        df, rep = await coro
    except Exception as e:  # noqa: BLE001 - one failing source never sinks the others; reported below
        log.error("source %s failed: %s", src.name, e)
        df, rep = (
            empty(RAW_ARTICLES),
            SourceReport(source=src.name, kind=src.kind, failed=True, errors=[str(e)]),
        )
    rep.elapsed_s = time.monotonic() - start
    return df, rep


def _timed(src, fn, **kw) -> tuple[pl.DataFrame, SourceReport]:
    start = time.monotonic()
    try:
        df, rep = fn(src, **kw)
    except Exception as e:  # noqa: BLE001 - one failing source never sinks the others; reported below
        log.error("source %s failed: %s", src.name, e)
        df, rep = (
            empty(RAW_ARTICLES),
            SourceReport(source=src.name, kind=src.kind, failed=True, errors=[f"{e}"]),
        )
    rep.elapsed_s = time.monotonic() - start
    return df, rep


def every_source_failed(reports: list[SourceReport]) -> str | None:
    """A message naming every source's error when all configured sources failed, else None.

    Such a run must fail and change nothing: storing "nothing" for a day is not the same as
    having nothing to store. No sources at all, or sources that are merely empty, are not failures.
    """
    if not reports or not all(r.failed for r in reports):
        return None
    errors = "; ".join(f"{r.source}: {r.errors[0] if r.errors else 'failed'}" for r in reports)
    return f"every source failed ({len(reports)} of {len(reports)}), nothing was stored: {errors}"


def collect_articles(
    sources: list,
    *,
    crawl_cfg,
    state_dir: str | Path | None,
    fetched_at: datetime,
    allow_private: bool | None = None,
    polite: bool = True,
) -> tuple[pl.DataFrame, list[SourceReport]]:
    """Run every configured source; returns all their rows (raw_articles contract) and one report each.

    `state_dir` (normally NEWSML_HOME) holds `crawl_state.duckdb` for conditional GETs; None
    disables it. `allow_private` overrides `crawl.allow_private_hosts` (tests: loopback);
    `polite=False` drops per-host rate limiting (loopback benchmarks only).
    Not deduplicated yet: `core.data.article_store.ArticleStore.record` stores them.
    """
    if fetched_at.tzinfo is None:
        raise ValueError("fetched_at must be timezone-aware (UTC)")
    fetched_at = fetched_at.astimezone(UTC)
    reports: list[SourceReport] = []
    frames: list[pl.DataFrame] = []
    if any(s.kind == "rss" for s in sources):
        f, r = asyncio.run(
            _collect_async(
                sources,
                crawl_cfg=crawl_cfg,
                state_dir=Path(state_dir) if state_dir is not None else None,
                fetched_at=fetched_at,
                allow_private=allow_private,
                polite=polite,
            )
        )
        frames += f
        reports += r
    for s in sources:
        if s.kind == "local":
            df, rep = _timed(s, local_articles, fetched_at=fetched_at)
        elif s.kind == "hf":
            df, rep = _timed(s, hf_articles, fetched_at=fetched_at)
        elif s.kind == "rss":
            continue
        else:
            df, rep = (
                empty(RAW_ARTICLES),
                SourceReport(
                    source=s.name, kind=str(s.kind), failed=True, errors=[f"unknown source kind {s.kind!r}"]
                ),
            )
        frames.append(df)
        reports.append(rep)
    order = {s.name: i for i, s in enumerate(sources)}
    reports.sort(key=lambda r: order.get(r.source, len(order)))
    df = (
        pl.concat([f for f in frames if len(f)], how="diagonal_relaxed")  # gold_entities: local only
        if any(len(f) for f in frames)
        else empty(RAW_ARTICLES)
    )
    log.info(
        "collected %d articles from %d sources (%d failed)",
        len(df),
        len(sources),
        sum(r.failed for r in reports),
    )
    return df, reports
