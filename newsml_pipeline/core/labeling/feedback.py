"""Human feedback: label corrections dropped as files in `$NEWSML_HOME/feedback/`.

A person (or a review tool) writes `.csv` or `.jsonl` files naming an article, by `article_id`
or by `url`, and its correct `label`. Parsing is pure: it reads every file, keeps what is valid
and reports everything else with `file:line` and the offending content, so one bad file or line
never hides or destroys the feedback of the others.

Order: files are read sorted by modification time, then by name; a later file overrides an
earlier one for the same article, and within a file a later line overrides an earlier line.
So re-labelling an article means dropping a newer file; every override is listed in
`FeedbackResult.overridden`.

`merge_gold` then combines the accepted feedback with the gold labels carried by sources
(feedback wins) into the trusted labels that evaluation uses.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from newsml_pipeline.core.crawl.urls import canonicalize_url
from newsml_pipeline.core.labeling.feedback_store import STORE_FILE_NAME
from newsml_pipeline.core.records import jsonl_lines

log = logging.getLogger(__name__)

FEEDBACK_SUFFIXES = (".csv", ".jsonl")
ACCEPTED_SCHEMA: dict[str, pl.DataType] = {
    "article_id": pl.String(),
    "label": pl.String(),
    "source_file": pl.String(),
    "line": pl.Int64(),
    "received_at": pl.Datetime("us", "UTC"),
}
GOLD_SCHEMA: dict[str, pl.DataType] = {
    "article_id": pl.String(),
    "label": pl.String(),
    "label_origin": pl.String(),  # feedback / source
}
_SHOW_CHARS = 200


@dataclass(frozen=True)
class FeedbackResult:
    """What a feedback folder holds.

    accepted: one row per article (the winning entry): article_id, label, source_file, line,
        received_at (the file's modification time, UTC).
    problems: one human-readable line per rejected file or line (`file:line: why: content`).
    overridden: one line per entry that a later entry for the same article replaced.
    files: the files read, in the order they were applied.
    """

    accepted: pl.DataFrame
    problems: list[str] = field(default_factory=list)
    overridden: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


@dataclass
class _Entry:
    article_id: str
    label: str
    source_file: str
    line: int
    received_at: datetime


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = text.rstrip("\r\n")
    return text if len(text) <= _SHOW_CHARS else text[:_SHOW_CHARS] + "…"


def feedback_files(folder: Path) -> tuple[list[Path], list[str]]:
    """Feedback files in the order they are applied (mtime, then name) and the unsupported ones."""
    if not folder.exists():
        return [], []
    if not folder.is_dir():
        raise NotADirectoryError(f"feedback folder {folder} is not a directory")
    files, problems = [], []
    for p in folder.iterdir():
        if p.name.startswith(STORE_FILE_NAME):
            continue  # the labelling page's SQLite store (+ -wal/-shm): read by feedback_store
        if p.is_dir():
            problems.append(f"{p.name}: is a folder; feedback files go directly in {folder}")
        elif p.suffix.lower() in FEEDBACK_SUFFIXES:
            files.append(p)
        else:
            problems.append(
                f"{p.name}: unsupported file type (expected {', '.join(FEEDBACK_SUFFIXES)}); not read"
            )
    files.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
    return files, sorted(problems)


class _Resolver:
    """Maps an `article_id` or a URL (canonicalized) to a known article_id."""

    def __init__(self, known_articles: pl.DataFrame) -> None:
        missing = [c for c in ("article_id", "url") if c not in known_articles.columns]
        if missing:
            raise ValueError(f"known_articles lacks columns {missing} (has {known_articles.columns})")
        self.ids = set(known_articles["article_id"].drop_nulls().to_list())
        self.by_url: dict[str, set[str]] = {}
        for aid, url in known_articles.select("article_id", "url").drop_nulls().iter_rows():
            try:
                key = canonicalize_url(url)
            except ValueError:
                key = url.strip()  # a stored URL that is not http(s): match it verbatim
            self.by_url.setdefault(key, set()).add(aid)

    def resolve(self, article_id: Any, url: Any) -> tuple[str | None, str | None]:
        """(article_id, None) or (None, why it could not be matched)."""
        aid = article_id.strip() if isinstance(article_id, str) else article_id
        if aid not in (None, ""):
            if not isinstance(aid, str):
                return None, f"article_id must be a string, got {type(aid).__name__}"
            if aid not in self.ids:
                return None, f"unknown article_id {aid!r}"
            return aid, None
        if url in (None, "") or (isinstance(url, str) and not url.strip()):
            return None, "neither article_id nor url is given"
        if not isinstance(url, str):
            return None, f"url must be a string, got {type(url).__name__}"
        try:
            key = canonicalize_url(url)
        except ValueError as e:
            return None, f"bad url: {e}"
        found = self.by_url.get(key, set())
        if not found:
            return None, f"unknown article: no raw article has url {key!r}"
        if len(found) > 1:
            return None, f"url {key!r} matches several articles {sorted(found)}; give article_id instead"
        return next(iter(found)), None


def _normalise_label(label: Any) -> str | None:
    if not isinstance(label, str):
        return None
    return label.strip().lower() or None


def _read_text(path: Path) -> str:
    # utf-8-sig: spreadsheet exports often start with a byte-order mark.
    return path.read_text(encoding="utf-8-sig")


def _csv_records(path: Path, text: str) -> tuple[list[tuple[int, dict[str, Any], str]], list[str]]:
    """(line, record, raw content) per data row, or file-level problems."""
    name = path.name
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
    except csv.Error as e:
        return [], [f"{name}:1: unreadable CSV header: {e}"]
    if not header:
        return [], [f"{name}: empty file (expected a header with article_id or url, and label)"]
    if "label" not in header or not ({"article_id", "url"} & set(header)):
        return [], [
            f"{name}:1: header must have a 'label' column and an 'article_id' or 'url' column; "
            f"got {reader.fieldnames}; file not read"
        ]
    reader.fieldnames = header
    lines = text.splitlines()
    out, problems = [], []
    try:
        start = reader.line_num + 1
        for row in reader:
            line = start
            start = reader.line_num + 1
            while line < reader.line_num and not lines[line - 1].strip():
                line += 1  # the reader skips blank lines before a row
            raw = "\n".join(lines[line - 1 : reader.line_num])
            if None in row:  # more fields than the header
                problems.append(f"{name}:{line}: more fields than the header has columns: {_show(raw)}")
                continue
            if all(v in (None, "") for v in row.values()):
                continue  # a blank spreadsheet row carries nothing
            out.append((line, row, raw))
    except csv.Error as e:
        problems.append(f"{name}:{reader.line_num}: unparsable CSV ({e}); rest of the file not read")
    if not out and not problems:
        problems.append(f"{name}: no feedback rows below the header")
    return out, problems


def _jsonl_records(path: Path, text: str) -> tuple[list[tuple[int, dict[str, Any], str]], list[str]]:
    name = path.name
    out, problems = [], []
    for item in jsonl_lines(text.splitlines()):
        if item.record is None:
            problems.append(f"{name}:{item.line}: {item.error}: {_show(item.raw)}")
            continue
        out.append((item.line, {str(k).lower(): v for k, v in item.record.items()}, item.raw))
    if not out and not problems:
        problems.append(f"{name}: empty file")
    return out, problems


def parse_feedback_dir(folder: Path, *, labels: list[str], known_articles: pl.DataFrame) -> FeedbackResult:
    """Read every feedback file in `folder` into one label per article, reporting what is rejected.

    `labels` is the label schema (category names); labels are compared after stripping and
    lowercasing. `known_articles` has `article_id` and `url` of raw_articles: an entry must name
    one of them (a URL is matched after `canonicalize_url`). A missing folder means no feedback.
    """
    folder = Path(folder)
    label_set = set(labels)
    resolver = _Resolver(known_articles)
    files, problems = feedback_files(folder)
    winners: dict[str, _Entry] = {}
    overridden: list[str] = []
    for path in files:
        try:
            text = _read_text(path)
            received = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"{path.name}: cannot read the file ({e}); file not read")
            continue
        reader = _csv_records if path.suffix.lower() == ".csv" else _jsonl_records
        records, file_problems = reader(path, text)
        problems.extend(file_problems)
        for line, rec, raw in records:
            where = f"{path.name}:{line}"
            label = _normalise_label(rec.get("label"))
            if label is None:
                problems.append(f"{where}: missing label: {_show(raw)}")
                continue
            if label not in label_set:
                problems.append(
                    f"{where}: unknown label {label!r} (known: {sorted(label_set)}): {_show(raw)}"
                )
                continue
            aid, why = resolver.resolve(rec.get("article_id"), rec.get("url"))
            if aid is None:
                problems.append(f"{where}: {why}: {_show(raw)}")
                continue
            prev = winners.get(aid)
            if prev is not None:
                overridden.append(
                    f"{prev.source_file}:{prev.line} ({aid} → {prev.label}) overridden by {where} (→ {label})"
                )
            winners[aid] = _Entry(aid, label, path.name, line, received)
    accepted = pl.DataFrame(
        [vars(e) for e in winners.values()] if winners else None, schema=ACCEPTED_SCHEMA
    ).sort("article_id")
    log.info(
        "feedback: %d files, %d articles labelled, %d problems, %d overridden entries",
        len(files),
        accepted.height,
        len(problems),
        len(overridden),
    )
    return FeedbackResult(
        accepted=accepted, problems=problems, overridden=overridden, files=[p.name for p in files]
    )


def merge_gold(raw_gold: pl.DataFrame, feedback: pl.DataFrame) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Trusted labels per article: human feedback wins over a source's gold label.

    raw_gold: article_id, gold_label (nullable) — from raw_articles.
    feedback: article_id, label (+ optional source_file, line) — `FeedbackResult.accepted`.
    Returns (gold[article_id, label, label_origin 'feedback'|'source'], conflicts) where each
    conflict is a dict: article_id, feedback_label, source_label (+ source_file, line when known).
    """
    for frame, cols, what in (
        (raw_gold, ("article_id", "gold_label"), "raw_gold"),
        (feedback, ("article_id", "label"), "feedback"),
    ):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"{what} lacks columns {missing} (has {frame.columns})")
    src = raw_gold.select("article_id", pl.col("gold_label").cast(pl.String)).drop_nulls()
    for frame, what in ((src, "raw_gold"), (feedback, "feedback")):
        dupes = frame.filter(pl.col("article_id").is_duplicated())["article_id"].unique().sort().to_list()
        if dupes:
            raise ValueError(f"{what} has several rows for articles {dupes[:10]}; expected one per article")
    extra = [c for c in ("source_file", "line") if c in feedback.columns]
    fb = feedback.select("article_id", pl.col("label").cast(pl.String).alias("feedback_label"), *extra)
    joined = src.join(fb, on="article_id", how="inner")
    conflicts = (
        joined.filter(pl.col("gold_label") != pl.col("feedback_label"))
        .rename({"gold_label": "source_label"})
        .select("article_id", "feedback_label", "source_label", *extra)
        .sort("article_id")
        .to_dicts()
    )
    gold = (
        pl.concat(
            [
                fb.select(
                    "article_id",
                    pl.col("feedback_label").alias("label"),
                    pl.lit("feedback").alias("label_origin"),
                ),
                src.join(fb, on="article_id", how="anti").select(
                    "article_id", pl.col("gold_label").alias("label"), pl.lit("source").alias("label_origin")
                ),
            ]
        )
        .cast(GOLD_SCHEMA)
        .sort("article_id")
    )
    if conflicts:
        log.warning("feedback overrides the source's gold label for %d articles", len(conflicts))
    return gold, conflicts
