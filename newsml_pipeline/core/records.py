"""Records read from files, in one place: JSON Lines, CSV and Parquet, one record per line or row.

Local sources, `newsml predict --file`, stdin and the feedback folder all read records here, so a
file that one of them accepts reads the same in the others. Readers never raise on a bad record:
they yield it with an error naming the line, and the caller decides whether that stops the read
(the CLI) or is reported beside the good ones (sources, feedback).
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import polars as pl

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson")
RECORD_SUFFIXES = (*JSONL_SUFFIXES, ".parquet", ".csv")


@dataclass(frozen=True)
class JsonlLine:
    """One non-blank line: the object it holds, or why it holds none."""

    line: int  # 1-based
    raw: str  # the line without its line break
    record: dict[str, Any] | None
    error: str | None  # "not valid JSON (...)" or "expected a JSON object, got list"


def jsonl_lines(lines: Iterable[str]) -> Iterator[JsonlLine]:
    """Parse JSON Lines; blank lines are skipped, a line that is not a JSON object carries an error."""
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        raw = raw.rstrip("\r\n")
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError as e:
            yield JsonlLine(n, raw, None, f"not valid JSON ({e.msg})")
            continue
        if not isinstance(rec, dict):
            yield JsonlLine(n, raw, None, f"expected a JSON object, got {type(rec).__name__}")
            continue
        yield JsonlLine(n, raw, rec, None)


def open_text(path: Path) -> IO[str]:
    """A text file, gunzipped on the fly when its name ends in .gz."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_jsonl(path: Path, *, limit: int | None = None) -> list[dict[str, Any]]:
    """The first `limit` records (all by default) of a .jsonl[.gz] file that must be well formed
    (bundled data, the shared corpora): a bad line raises ValueError naming it."""
    rows: list[dict[str, Any]] = []
    if limit is not None and limit <= 0:
        return rows
    with open_text(path) as fh:
        for item in jsonl_lines(fh):
            if item.record is None:
                raise ValueError(f"{path}:{item.line}: {item.error}")
            rows.append(item.record)
            if limit is not None and len(rows) >= limit:
                break
    return rows


def is_record_file(path: Path) -> bool:
    return path.name.lower().endswith(RECORD_SUFFIXES)


def iter_records(path: Path) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
    """(where, record, error) for every record of one file; `where` is file:line or file:row N.

    CSV cells that are empty read as None (a spreadsheet's blank, not an empty string)."""
    name = path.name.lower()
    if name.endswith(JSONL_SUFFIXES):
        with open_text(path) as fh:
            for item in jsonl_lines(fh):
                where = f"{path}:{item.line}"
                yield where, item.record, None if item.error is None else f"{where}: {item.error}"
    elif name.endswith(".csv"):
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            for rec in reader:
                where = f"{path}:{reader.line_num}"
                if None in rec:
                    yield where, None, f"{where}: more fields than the header has"
                    continue
                yield where, {k: (v if v != "" else None) for k, v in rec.items()}, None
    elif name.endswith(".parquet"):
        for n, rec in enumerate(pl.read_parquet(path).iter_rows(named=True), start=1):
            yield f"{path}:row {n}", rec, None
    else:
        raise ValueError(f"unsupported record file: {path} (use one of {RECORD_SUFFIXES})")
