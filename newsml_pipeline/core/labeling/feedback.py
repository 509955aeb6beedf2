"""Human feedback files + gold labels carried by sources → one table of trusted labels.

Files in `$NEWSML_HOME/feedback/` (`*.csv`, `*.jsonl`; read in name order, so a later file
corrects an earlier one) hold rows with `label` and either `article_id` or `url`. Parsing is pure
and line by line: a bad line is reported as `file:line: problem` and skipped, a bad file is
reported and skipped, and neither affects rows accepted from other lines or files. Source gold
labels (`raw_articles.gold_label`) are merged in; feedback wins over them and every disagreement
is reported.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

log = logging.getLogger(__name__)

FEEDBACK_SUFFIXES = (".csv", ".jsonl")
FEEDBACK_COLUMNS: dict[str, pl.DataType] = {
    "article_id": pl.String(),
    "label": pl.String(),
    "label_source": pl.String(),  # feedback / source
    "origin": pl.String(),  # file:line of the feedback row, or source:<name>
}


@dataclass(frozen=True)
class FeedbackProblem:
    """One rejected line or file, with where it is and what is wrong."""

    where: str  # "file.csv:12", or "file.csv" for file-level problems, or "source:bbc" for gold
    problem: str
    kind: str  # unparsable / unknown_label / unknown_article / missing_field / unreadable_file / conflict / superseded

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


@dataclass
class FeedbackResult:
    """Accepted trusted labels (one row per article, FEEDBACK_COLUMNS) and the problems found."""

    labels: pl.DataFrame
    problems: list[FeedbackProblem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        """JSON-able counts for asset metadata."""
        by_kind: dict[str, int] = {}
        for p in self.problems:
            by_kind[p.kind] = by_kind.get(p.kind, 0) + 1
        src = self.labels["label_source"].value_counts() if self.labels.height else None
        return {
            "files": self.files,
            "accepted": self.labels.height,
            "by_source": {r["label_source"]: r["count"] for r in src.to_dicts()} if src is not None else {},
            "problems": len(self.problems),
            "problems_by_kind": by_kind,
            "first_problems": [str(p) for p in self.problems[:20]],
        }


@dataclass(frozen=True)
class _Row:
    where: str
    article_id: str | None
    url: str | None
    label: str | None


def _clean(v: object) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def _read_csv(name: str, text: str, problems: list[FeedbackProblem]) -> Iterator[_Row]:
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "label" not in fields or not ({"article_id", "url"} & set(fields)):
        problems.append(
            FeedbackProblem(
                name, f"header must have `label` and `article_id` or `url`, got {fields}", "missing_field"
            )
        )
        return
    reader.fieldnames = fields
    for rec in reader:
        line = reader.line_num
        if None in rec:  # more cells than header columns
            problems.append(
                FeedbackProblem(f"{name}:{line}", "more values than header columns", "unparsable")
            )
            continue
        yield _Row(
            f"{name}:{line}", _clean(rec.get("article_id")), _clean(rec.get("url")), _clean(rec.get("label"))
        )


def _read_jsonl(name: str, text: str, problems: list[FeedbackProblem]) -> Iterator[_Row]:
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}:{line_no}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(FeedbackProblem(where, f"not valid JSON ({e.msg})", "unparsable"))
            continue
        if not isinstance(rec, dict):
            problems.append(
                FeedbackProblem(where, f"expected a JSON object, got {type(rec).__name__}", "unparsable")
            )
            continue
        yield _Row(where, _clean(rec.get("article_id")), _clean(rec.get("url")), _clean(rec.get("label")))


def feedback_files(folder: Path) -> list[Path]:
    """Feedback files in `folder` in the order they apply (by name); [] if it does not exist."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FEEDBACK_SUFFIXES)


def parse_feedback(
    files: Iterable[Path],
    *,
    labels: Sequence[str],
    articles: pl.DataFrame,
) -> FeedbackResult:
    """Parse feedback files against the label schema and the known articles.

    `articles` needs `article_id` and may have `url` (to resolve url-only rows). Returns only
    feedback rows (label_source = "feedback"); later lines/files override earlier ones for the
    same article (reported as `superseded`).
    """
    if "article_id" not in articles.columns:
        raise ValueError(f"parse_feedback: articles frame lacks `article_id` (has {articles.columns})")
    known_ids = set(articles["article_id"].to_list())
    by_url: dict[str, str] = {}
    if "url" in articles.columns:
        for aid, url in zip(articles["article_id"].to_list(), articles["url"].to_list(), strict=True):
            if url:
                by_url.setdefault(url, aid)
    valid = set(labels)
    problems: list[FeedbackProblem] = []
    accepted: dict[str, tuple[str, str]] = {}
    names = []
    for path in files:
        names.append(path.name)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            problems.append(FeedbackProblem(path.name, f"cannot read file ({e})", "unreadable_file"))
            continue
        reader = _read_csv if path.suffix.lower() == ".csv" else _read_jsonl
        try:
            rows = list(reader(path.name, text, problems))
        except csv.Error as e:
            problems.append(FeedbackProblem(path.name, f"not valid CSV ({e})", "unparsable"))
            continue
        for row in rows:
            if row.label is None:
                problems.append(FeedbackProblem(row.where, "no label", "missing_field"))
                continue
            label = row.label.lower()
            if label not in valid:
                problems.append(
                    FeedbackProblem(
                        row.where, f"unknown label {row.label!r}; valid: {sorted(valid)}", "unknown_label"
                    )
                )
                continue
            aid = row.article_id if row.article_id in known_ids else None
            if aid is None and row.url:
                aid = by_url.get(row.url)
            if aid is None:
                ref = row.article_id or row.url
                kind = "unknown_article" if ref else "missing_field"
                msg = f"unknown article {ref!r}" if ref else "neither article_id nor url given"
                problems.append(FeedbackProblem(row.where, msg, kind))
                continue
            if aid in accepted and accepted[aid][0] != label:
                problems.append(
                    FeedbackProblem(
                        row.where,
                        f"overrides {accepted[aid][1]} ({accepted[aid][0]!r} -> {label!r}) for {aid}",
                        "superseded",
                    )
                )
            accepted[aid] = (label, row.where)
    frame = pl.DataFrame(
        {
            "article_id": list(accepted),
            "label": [v[0] for v in accepted.values()],
            "label_source": ["feedback"] * len(accepted),
            "origin": [v[1] for v in accepted.values()],
        },
        schema=FEEDBACK_COLUMNS,
    )
    log.info(
        "feedback: %d labels accepted from %d files, %d problems", frame.height, len(names), len(problems)
    )
    return FeedbackResult(frame, problems, names)


def merge_gold(feedback: FeedbackResult, articles: pl.DataFrame, *, labels: Sequence[str]) -> FeedbackResult:
    """Add source gold labels (articles.gold_label) under the feedback: feedback wins; each
    article where they disagree, and each gold label outside the schema, becomes a problem."""
    for col in ("article_id", "gold_label"):
        if col not in articles.columns:
            raise ValueError(f"merge_gold: articles frame lacks {col!r} (has {articles.columns})")
    valid = set(labels)
    fb = dict(zip(feedback.labels["article_id"].to_list(), feedback.labels["label"].to_list(), strict=True))
    problems = list(feedback.problems)
    sources = articles["source"].to_list() if "source" in articles.columns else [None] * articles.height
    ids, labs, origins = [], [], []
    for aid, gold, src in zip(
        articles["article_id"].to_list(), articles["gold_label"].to_list(), sources, strict=True
    ):
        if gold is None or aid in fb:
            if gold is not None and fb.get(aid) != gold:
                problems.append(
                    FeedbackProblem(
                        f"source:{src}",
                        f"gold label {gold!r} of {aid} overridden by feedback {fb[aid]!r}",
                        "conflict",
                    )
                )
            continue
        if gold not in valid:
            problems.append(
                FeedbackProblem(
                    f"source:{src}",
                    f"gold label {gold!r} of {aid} is not in the schema {sorted(valid)}",
                    "unknown_label",
                )
            )
            continue
        ids.append(aid)
        labs.append(gold)
        origins.append(f"source:{src}")
    gold_frame = pl.DataFrame(
        {"article_id": ids, "label": labs, "label_source": ["source"] * len(ids), "origin": origins},
        schema=FEEDBACK_COLUMNS,
    )
    merged = pl.concat([feedback.labels, gold_frame]).unique(
        subset="article_id", keep="first", maintain_order=True
    )
    return FeedbackResult(merged, problems, feedback.files)


def load_feedback(folder: Path, *, labels: Sequence[str], articles: pl.DataFrame) -> FeedbackResult:
    """Everything the `label_feedback` asset needs: parse `folder`'s files, then merge source gold
    (when `articles` has `gold_label`)."""
    result = parse_feedback(feedback_files(folder), labels=labels, articles=articles)
    if "gold_label" in articles.columns:
        result = merge_gold(result, articles, labels=labels)
    return result
