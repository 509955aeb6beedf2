"""The labelling page's answers: an append-only SQLite log at `$NEWSML_HOME/feedback/labels.sqlite`.

Why SQLite: several people (several `newsml label` processes, or threads of one) answer at the
same time and each answer must survive a crash the moment the page has said "recorded". So every
answer is one `BEGIN IMMEDIATE … COMMIT` transaction (WAL journal, `synchronous=FULL`, a busy
timeout so concurrent writers queue instead of failing), committed before the HTTP response.

Nothing is ever updated or deleted: a correction is a newer `label` answer, an undo is an `undo`
answer naming the answer it cancels (`undoes`). The current label of an article is its latest
`label` answer that is not undone. `answer_id` is chosen by the client and UNIQUE, so a double
submit (a retry, a double click) is stored once and answered "already recorded".
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import polars as pl

log = logging.getLogger(__name__)

STORE_FILE_NAME = "labels.sqlite"
Action = Literal["label", "skip", "undo"]
ACTIONS: tuple[str, ...] = ("label", "skip", "undo")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    answer_id   TEXT NOT NULL UNIQUE,
    article_id  TEXT,
    label       TEXT,
    labeller    TEXT NOT NULL,
    answered_at TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('label', 'skip', 'undo')),
    undoes      INTEGER REFERENCES answers(id),
    CHECK ((action = 'label') = (label IS NOT NULL)),
    CHECK ((action = 'undo') = (undoes IS NOT NULL)),
    CHECK (action = 'undo' OR article_id IS NOT NULL)
);
-- an answer is undone at most once, even when two undo requests race
CREATE UNIQUE INDEX IF NOT EXISTS answers_undoes ON answers(undoes) WHERE undoes IS NOT NULL;
CREATE INDEX IF NOT EXISTS answers_article ON answers(article_id);
"""

# What label_feedback reads from the store: the same columns as feedback.ACCEPTED_SCHEMA.
CURRENT_SCHEMA: dict[str, pl.DataType] = {
    "article_id": pl.String(),
    "label": pl.String(),
    "source_file": pl.String(),
    "line": pl.Int64(),
    "received_at": pl.Datetime("us", "UTC"),
}


class StoreError(Exception):
    """A request the store refuses; nothing was written."""


class NothingToUndo(StoreError):
    """The labeller has no answer left that is not already undone."""


class AnswerIdConflict(StoreError):
    """An answer_id that is already stored with different content (not a plain double submit)."""


@dataclass(frozen=True)
class Answer:
    id: int
    answer_id: str
    article_id: str | None
    label: str | None
    labeller: str
    answered_at: datetime
    action: str
    undoes: int | None


@dataclass(frozen=True)
class Recorded:
    """The stored answer; `already_recorded` is True when this answer_id was stored before."""

    answer: Answer
    already_recorded: bool
    undone: Answer | None = None  # for an undo: the answer it cancelled


def store_path(feedback_dir: Path) -> Path:
    return Path(feedback_dir) / STORE_FILE_NAME


def _require_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise StoreError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _row_answer(row: sqlite3.Row) -> Answer:
    return Answer(
        id=int(row["id"]),
        answer_id=row["answer_id"],
        article_id=row["article_id"],
        label=row["label"],
        labeller=row["labeller"],
        answered_at=datetime.fromisoformat(row["answered_at"]),
        action=row["action"],
        undoes=row["undoes"],
    )


class FeedbackStore:
    """One SQLite file; safe to use from several threads and processes at once.

    Each call opens its own short-lived connection, so there is no shared connection state to
    guard and a crashed process leaves nothing half-written (SQLite rolls back an open transaction).
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = int(busy_timeout_s * 1000)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")  # persistent: readers never block the writer
            con.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (BEGIN IMMEDIATE takes the write
        # lock up front, so a read-then-write such as undo cannot interleave with another writer).
        con = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None)
        try:
            con.row_factory = sqlite3.Row
            con.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
            con.execute("PRAGMA synchronous=FULL")  # a commit is on disk before we answer "recorded"
            yield con
        finally:
            con.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # ------------------------------------------------------------ writes

    def record(
        self,
        *,
        answer_id: str,
        article_id: str,
        action: Literal["label", "skip"],
        labeller: str,
        label: str | None = None,
        now: datetime | None = None,
    ) -> Recorded:
        """Append a `label` or `skip` answer (one transaction, committed before returning)."""
        _require_text(answer_id, "answer_id")
        _require_text(article_id, "article_id")
        _require_text(labeller, "labeller")
        if action == "label":
            _require_text(label, "label")
        elif action == "skip":
            if label is not None:
                raise StoreError(f"a skip carries no label, got {label!r}")
        else:
            raise StoreError(f"action must be 'label' or 'skip' here, got {action!r} (use undo_last)")
        at = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
        with self._write() as con:
            prev = con.execute("SELECT * FROM answers WHERE answer_id = ?", [answer_id]).fetchone()
            if prev is not None:
                old = _row_answer(prev)
                if (old.action, old.article_id, old.label) != (action, article_id, label):
                    raise AnswerIdConflict(
                        f"answer_id {answer_id!r} is already stored as {old.action} of {old.article_id!r}"
                        f"{f' as {old.label!r}' if old.label else ''}; send a new answer_id for a new answer"
                    )
                return Recorded(old, already_recorded=True)
            cur = con.execute(
                "INSERT INTO answers (answer_id, article_id, label, labeller, answered_at, action)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [answer_id, article_id, label, labeller, at, action],
            )
            row = con.execute("SELECT * FROM answers WHERE id = ?", [cur.lastrowid]).fetchone()
        answer = _row_answer(row)
        log.info("recorded %s of %s by %s (answer %d)", action, article_id, labeller, answer.id)
        return Recorded(answer, already_recorded=False)

    def undo_last(self, *, answer_id: str, labeller: str, now: datetime | None = None) -> Recorded:
        """Cancel this labeller's latest label/skip that is not undone yet; repeated undos walk back.

        Raises NothingToUndo when there is none (nothing is written).
        """
        _require_text(answer_id, "answer_id")
        _require_text(labeller, "labeller")
        at = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
        with self._write() as con:
            prev = con.execute("SELECT * FROM answers WHERE answer_id = ?", [answer_id]).fetchone()
            if prev is not None:
                old = _row_answer(prev)
                if old.action != "undo":
                    raise AnswerIdConflict(
                        f"answer_id {answer_id!r} is already stored as {old.action} of {old.article_id!r}"
                    )
                target = con.execute("SELECT * FROM answers WHERE id = ?", [old.undoes]).fetchone()
                return Recorded(old, already_recorded=True, undone=_row_answer(target))
            target = con.execute(
                """
                SELECT a.* FROM answers a
                WHERE a.labeller = ? AND a.action IN ('label', 'skip')
                  AND NOT EXISTS (SELECT 1 FROM answers u WHERE u.undoes = a.id)
                ORDER BY a.id DESC LIMIT 1
                """,
                [labeller],
            ).fetchone()
            if target is None:
                raise NothingToUndo(f"{labeller} has no answer left to undo")
            undone = _row_answer(target)
            cur = con.execute(
                "INSERT INTO answers (answer_id, article_id, label, labeller, answered_at, action, undoes)"
                " VALUES (?, ?, NULL, ?, ?, 'undo', ?)",
                [answer_id, undone.article_id, labeller, at, undone.id],
            )
            row = con.execute("SELECT * FROM answers WHERE id = ?", [cur.lastrowid]).fetchone()
        log.info("undid answer %d (%s of %s) for %s", undone.id, undone.action, undone.article_id, labeller)
        return Recorded(_row_answer(row), already_recorded=False, undone=undone)

    # ------------------------------------------------------------ reads

    def answers(self) -> list[Answer]:
        """Every answer ever stored, oldest first."""
        with self._connect() as con:
            return [_row_answer(r) for r in con.execute("SELECT * FROM answers ORDER BY id")]

    def current_labels(self) -> pl.DataFrame:
        """One row per labelled article: its latest `label` answer not undone (CURRENT_SCHEMA + labeller).

        `source_file` is the store's file name and `line` the answer's row id, so problems and
        overrides can name the answer like a feedback file line.
        """
        with self._connect() as con:
            rows = con.execute(
                """
                SELECT a.article_id, a.label, a.id, a.answered_at, a.labeller FROM answers a
                WHERE a.action = 'label'
                  AND NOT EXISTS (SELECT 1 FROM answers u WHERE u.undoes = a.id)
                  AND a.id = (
                      SELECT max(b.id) FROM answers b
                      WHERE b.article_id = a.article_id AND b.action = 'label'
                        AND NOT EXISTS (SELECT 1 FROM answers v WHERE v.undoes = b.id)
                  )
                ORDER BY a.article_id
                """
            ).fetchall()
        return pl.DataFrame(
            {
                "article_id": [r[0] for r in rows],
                "label": [r[1] for r in rows],
                "source_file": [self.path.name] * len(rows),
                "line": [int(r[2]) for r in rows],
                "received_at": [datetime.fromisoformat(r[3]) for r in rows],
                "labeller": [r[4] for r in rows],
            },
            schema={**CURRENT_SCHEMA, "labeller": pl.String()},
        )

    def skipped_by(self, labeller: str) -> set[str]:
        """Articles this labeller skipped (skips not undone): the page does not show them again."""
        with self._connect() as con:
            rows = con.execute(
                """
                SELECT DISTINCT a.article_id FROM answers a
                WHERE a.action = 'skip' AND a.labeller = ?
                  AND NOT EXISTS (SELECT 1 FROM answers u WHERE u.undoes = a.id)
                """,
                [labeller],
            ).fetchall()
        return {r[0] for r in rows}


def read_current_labels(path: Path) -> pl.DataFrame:
    """The store's current labels, or an empty frame when no one has answered yet (no file)."""
    if not Path(path).exists():
        return pl.DataFrame(schema={**CURRENT_SCHEMA, "labeller": pl.String()})
    return FeedbackStore(path).current_labels()


def page_feedback(
    current: pl.DataFrame, *, labels: list[str], known_ids: set[str]
) -> tuple[pl.DataFrame, list[str]]:
    """Keep the store's labels that `label_feedback` can trust; report the others.

    A label outside the schema (the config changed since) or for an article that is no longer in
    raw_articles is reported as a problem line and left out. Returns (CURRENT_SCHEMA frame, problems).
    """
    problems = []
    keep = []
    label_set = set(labels)
    for row in current.iter_rows(named=True):
        where = f"{row['source_file']}:{row['line']}"
        if row["label"] not in label_set:
            problems.append(
                f"{where}: label {row['label']!r} of {row['article_id']} by {row['labeller']} is not in the "
                f"label schema (known: {sorted(label_set)}); not used"
            )
        elif row["article_id"] not in known_ids:
            problems.append(
                f"{where}: article {row['article_id']} (labelled {row['label']!r} by {row['labeller']}) is no "
                "longer in raw_articles; not used"
            )
        else:
            keep.append(row)
    frame = pl.DataFrame(keep or None, schema={**CURRENT_SCHEMA, "labeller": pl.String()})
    return frame.select(list(CURRENT_SCHEMA)), problems
