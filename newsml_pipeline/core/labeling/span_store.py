"""Span answers of the labelling page's entity mode, in the same append-only SQLite store.

Same file (`$NEWSML_HOME/feedback/labels.sqlite`), same rules as the topic answers
(feedback_store.py): one `BEGIN IMMEDIATE … COMMIT` per answer, committed before the page says
"recorded"; nothing updated or deleted; a client-chosen UNIQUE `answer_id` so a retry is stored
once. A new record kind in its own table `span_answers`, because a span answer carries what a topic
answer cannot (the sentence, its text, character spans) and the topic table's CHECKs cannot be
widened in place by SQLite.

A `spans` answer is the complete, corrected set of spans of one sentence (character offsets into
the stored `text`; an empty list says "no entity here"). The current answer of a sentence is its
latest `spans` answer that is not undone. `undo` cancels the labeller's latest span answer (spans
or skip), never a topic answer: each mode undoes its own.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from newsml_pipeline.core.entities.spans import CharSpan
from newsml_pipeline.core.labeling.feedback_store import (
    AnswerIdConflict,
    FeedbackStore,
    NothingToUndo,
    StoreError,
    _require_text,
)

log = logging.getLogger(__name__)

_SPAN_SCHEMA = """
CREATE TABLE IF NOT EXISTS span_answers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    answer_id   TEXT NOT NULL UNIQUE,
    article_id  TEXT NOT NULL,
    sentence    INTEGER NOT NULL,
    text        TEXT,
    spans       TEXT,
    labeller    TEXT NOT NULL,
    answered_at TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('spans', 'skip', 'undo')),
    undoes      INTEGER REFERENCES span_answers(id),
    CHECK ((action = 'spans') = (spans IS NOT NULL AND text IS NOT NULL)),
    CHECK ((action = 'undo') = (undoes IS NOT NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS span_answers_undoes ON span_answers(undoes) WHERE undoes IS NOT NULL;
CREATE INDEX IF NOT EXISTS span_answers_sentence ON span_answers(article_id, sentence);
"""


@dataclass(frozen=True)
class SpanAnswer:
    id: int
    answer_id: str
    article_id: str
    sentence: int
    text: str | None
    spans: list[CharSpan] | None
    labeller: str
    answered_at: datetime
    action: str
    undoes: int | None


@dataclass(frozen=True)
class SpanRecorded:
    answer: SpanAnswer
    already_recorded: bool
    undone: SpanAnswer | None = None


def _spans_json(spans: list[CharSpan]) -> str:
    return json.dumps([[s.start, s.end, s.label] for s in sorted(spans)])


def _row(row) -> SpanAnswer:  # noqa: ANN001 - sqlite3.Row
    spans = None if row["spans"] is None else [CharSpan(a, b, lab) for a, b, lab in json.loads(row["spans"])]
    return SpanAnswer(
        id=int(row["id"]),
        answer_id=row["answer_id"],
        article_id=row["article_id"],
        sentence=int(row["sentence"]),
        text=row["text"],
        spans=spans,
        labeller=row["labeller"],
        answered_at=datetime.fromisoformat(row["answered_at"]),
        action=row["action"],
        undoes=row["undoes"],
    )


class SpanStore(FeedbackStore):
    """The feedback store with the span table; safe across threads and processes like its base."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        super().__init__(path, busy_timeout_s=busy_timeout_s)
        with self._connect() as con:
            con.executescript(_SPAN_SCHEMA)

    def record_spans(
        self,
        *,
        answer_id: str,
        article_id: str,
        sentence: int,
        action: Literal["spans", "skip"],
        labeller: str,
        text: str | None = None,
        spans: list[CharSpan] | None = None,
        now: datetime | None = None,
    ) -> SpanRecorded:
        """Append a `spans` answer (text + the sentence's full span set) or a `skip`.

        The caller validates spans against the text and the types (gold.parse_char_spans); the
        store re-checks the offsets so no caller can write spans that point outside the text."""
        _require_text(answer_id, "answer_id")
        _require_text(article_id, "article_id")
        _require_text(labeller, "labeller")
        if not isinstance(sentence, int) or sentence < 0:
            raise StoreError(f"sentence must be a non-negative integer, got {sentence!r}")
        if action == "spans":
            if not isinstance(text, str) or spans is None:
                raise StoreError("a spans answer needs the sentence text and a (possibly empty) span list")
            bad = [s for s in spans if not 0 <= s.start < s.end <= len(text)]
            if bad:
                raise StoreError(f"spans {bad} are outside the sentence text (length {len(text)})")
            stored_spans, stored_text = _spans_json(spans), text
        elif action == "skip":
            if spans is not None:
                raise StoreError("a skip carries no spans")
            stored_spans, stored_text = None, None
        else:
            raise StoreError(f"action must be 'spans' or 'skip' here, got {action!r} (use undo_last_spans)")
        at = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
        with self._write() as con:
            prev = con.execute("SELECT * FROM span_answers WHERE answer_id = ?", [answer_id]).fetchone()
            if prev is not None:
                old = _row(prev)
                same = (old.action, old.article_id, old.sentence, old.text, old.spans) == (
                    action,
                    article_id,
                    sentence,
                    stored_text,
                    None if spans is None else sorted(spans),
                )
                if not same:
                    raise AnswerIdConflict(
                        f"answer_id {answer_id!r} is already stored as {old.action} of sentence "
                        f"{old.sentence} of {old.article_id!r}; send a new answer_id for a new answer"
                    )
                return SpanRecorded(old, already_recorded=True)
            cur = con.execute(
                "INSERT INTO span_answers (answer_id, article_id, sentence, text, spans, labeller,"
                " answered_at, action) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [answer_id, article_id, sentence, stored_text, stored_spans, labeller, at, action],
            )
            row = con.execute("SELECT * FROM span_answers WHERE id = ?", [cur.lastrowid]).fetchone()
        answer = _row(row)
        log.info(
            "recorded %s of %s#%d by %s (span answer %d)", action, article_id, sentence, labeller, answer.id
        )
        return SpanRecorded(answer, already_recorded=False)

    def undo_last_spans(self, *, answer_id: str, labeller: str, now: datetime | None = None) -> SpanRecorded:
        """Cancel this labeller's latest span answer not undone yet; NothingToUndo when none."""
        _require_text(answer_id, "answer_id")
        _require_text(labeller, "labeller")
        at = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
        with self._write() as con:
            prev = con.execute("SELECT * FROM span_answers WHERE answer_id = ?", [answer_id]).fetchone()
            if prev is not None:
                old = _row(prev)
                if old.action != "undo":
                    raise AnswerIdConflict(f"answer_id {answer_id!r} is already stored as {old.action}")
                target = con.execute("SELECT * FROM span_answers WHERE id = ?", [old.undoes]).fetchone()
                return SpanRecorded(old, already_recorded=True, undone=_row(target))
            target = con.execute(
                """
                SELECT a.* FROM span_answers a
                WHERE a.labeller = ? AND a.action IN ('spans', 'skip')
                  AND NOT EXISTS (SELECT 1 FROM span_answers u WHERE u.undoes = a.id)
                ORDER BY a.id DESC LIMIT 1
                """,
                [labeller],
            ).fetchone()
            if target is None:
                raise NothingToUndo(f"{labeller} has no span answer left to undo")
            undone = _row(target)
            cur = con.execute(
                "INSERT INTO span_answers (answer_id, article_id, sentence, labeller, answered_at, action,"
                " undoes) VALUES (?, ?, ?, ?, ?, 'undo', ?)",
                [answer_id, undone.article_id, undone.sentence, labeller, at, undone.id],
            )
            row = con.execute("SELECT * FROM span_answers WHERE id = ?", [cur.lastrowid]).fetchone()
        log.info("undid span answer %d for %s", undone.id, labeller)
        return SpanRecorded(_row(row), already_recorded=False, undone=undone)

    def span_answers(self) -> list[SpanAnswer]:
        """Every span answer ever stored, oldest first."""
        with self._connect() as con:
            return [_row(r) for r in con.execute("SELECT * FROM span_answers ORDER BY id")]

    def current_spans(self) -> list[SpanAnswer]:
        """Per sentence (article_id, sentence): its latest `spans` answer that is not undone."""
        with self._connect() as con:
            rows = con.execute(
                """
                SELECT a.* FROM span_answers a
                WHERE a.action = 'spans'
                  AND NOT EXISTS (SELECT 1 FROM span_answers u WHERE u.undoes = a.id)
                  AND a.id = (
                      SELECT max(b.id) FROM span_answers b
                      WHERE b.article_id = a.article_id AND b.sentence = a.sentence AND b.action = 'spans'
                        AND NOT EXISTS (SELECT 1 FROM span_answers v WHERE v.undoes = b.id)
                  )
                ORDER BY a.article_id, a.sentence
                """
            ).fetchall()
        return [_row(r) for r in rows]

    def spans_skipped_by(self, labeller: str) -> set[tuple[str, int]]:
        """Sentences this labeller skipped (skips not undone): not shown to them again."""
        with self._connect() as con:
            rows = con.execute(
                """
                SELECT DISTINCT a.article_id, a.sentence FROM span_answers a
                WHERE a.action = 'skip' AND a.labeller = ?
                  AND NOT EXISTS (SELECT 1 FROM span_answers u WHERE u.undoes = a.id)
                """,
                [labeller],
            ).fetchall()
        return {(r[0], int(r[1])) for r in rows}


def read_current_spans(path: Path) -> list[SpanAnswer]:
    """The store's current span answers, [] when no one has answered yet (no file)."""
    if not Path(path).exists():
        return []
    return SpanStore(path).current_spans()
