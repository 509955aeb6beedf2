"""The labelling page's entity mode: one sentence at a time, its proposed spans, people fix them.

Served by the same `newsml label` process and app as the topic page (page.py: `/entities`, the API
under `/api/entities/…`, the same labeller check). The queue is the warehouse table
`entity_review_queue` (core/entities/review.py: the sentences where the sources disagree most),
minus sentences that already have a span answer and those this labeller skipped. An answer is the
whole corrected span set of a sentence, checked against the sentence text and the configured types
(core/entities/gold.parse_char_spans) and committed to the feedback store (span_store.py) before
the response: it becomes a trusted sentence for the entity evaluation (core/entities/trusted.py).
"""

from __future__ import annotations

import getpass
import json
import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Literal

from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.entities.gold import GoldFormatError, parse_char_spans
from newsml_pipeline.core.entities.review import QUEUE_SCHEMA, QUEUE_TABLE
from newsml_pipeline.core.labeling.feedback_store import (
    StoreError,
    store_path,
)
from newsml_pipeline.core.labeling.page import PageError, store_refusals
from newsml_pipeline.core.labeling.span_store import SpanRecorded, SpanStore

log = logging.getLogger(__name__)

PAGE_HTML = Path(__file__).with_name("entity_page.html")


class SpanIO(BaseModel):
    start: int
    end: int
    label: str


class SentenceItem(BaseModel):
    article_id: str
    partition_date: date | None
    sentence: int
    text: str
    proposed: list[SpanIO]
    proposals: dict[str, list[SpanIO]]
    disagreement: float
    reason: str | None
    rank: int


class EntityState(BaseModel):
    labeller: str
    types: list[str]
    queue_ready: bool
    message: str | None = None
    item: SentenceItem | None
    remaining: int
    answered: int = Field(
        description="sentences with a span answer in the store (trusted sentences from the page)"
    )


class SpanAnswerIn(BaseModel):
    answer_id: str = Field(
        min_length=1, max_length=200, description="chosen by the client; a retry reuses it"
    )
    article_id: str = Field(min_length=1)
    sentence: int = Field(ge=0)
    action: Literal["spans", "skip"]
    text: str | None = Field(default=None, description="the sentence as shown: refused if it changed since")
    spans: list[dict] | None = Field(default=None, description="[{start, end, label}], offsets into text")


class SpanUndoIn(BaseModel):
    answer_id: str = Field(min_length=1, max_length=200)


class SpanAnswerOut(BaseModel):
    status: Literal["recorded", "already recorded"]
    id: int
    answer_id: str
    article_id: str
    sentence: int
    action: str
    spans: list[SpanIO] | None
    labeller: str
    answered_at: str
    undone_action: str | None = None
    undone_article_id: str | None = None
    undone_sentence: int | None = None


def _spans_io(raw: str) -> list[SpanIO]:
    return [SpanIO(start=a, end=b, label=lab) for a, b, lab in json.loads(raw)]


class EntityLabellingService:
    """Queue, validation and storage of span answers; raises page.PageError for refused requests."""

    def __init__(self, *, warehouse: Warehouse, store: SpanStore, types: list[str], labeller: str) -> None:
        if not labeller.strip():
            raise ValueError("labeller must be a non-empty name")
        if not types:
            raise ValueError("the entity mode needs at least one entity type")
        self.wh = warehouse
        self.store = store
        self.types = list(types)
        self.labeller = labeller

    @classmethod
    def from_settings(cls, settings, *, labeller: str | None = None) -> EntityLabellingService:  # noqa: ANN001
        cfg = settings.config.entities
        if cfg is None:
            raise ValueError("the config has no `entities:` section: the entity mode is off")
        return cls(
            warehouse=Warehouse(settings.warehouse_target),
            store=SpanStore(store_path(settings.feedback_dir)),
            types=cfg.names,
            labeller=labeller or getpass.getuser(),
        )

    # ------------------------------------------------------------ queue

    def state(self, labeller: str | None = None) -> EntityState:
        """The next sentence for `labeller`, how many remain, how many sentences people answered."""
        labeller = labeller or self.labeller
        answered = {(a.article_id, a.sentence) for a in self.store.current_spans()}
        excluded = answered | self.store.spans_skipped_by(labeller)
        base = dict(labeller=labeller, types=self.types, answered=len(answered))
        with self.wh.session(read_only=True) as con:
            tables = con.tables()
            if QUEUE_TABLE not in tables:
                return EntityState(
                    **base,
                    queue_ready=False,
                    item=None,
                    remaining=0,
                    message=(
                        f"The table {QUEUE_TABLE!r} does not exist yet in {self.wh.location}: materialize "
                        "entity_review_queue (it runs in entity_ingest_job), then reload this page."
                    ),
                )
            missing = [c for c in QUEUE_SCHEMA if c not in set(con.columns(QUEUE_TABLE))]
            if missing:
                return EntityState(
                    **base,
                    queue_ready=False,
                    item=None,
                    remaining=0,
                    message=f"{QUEUE_TABLE!r} lacks the columns {missing}: re-materialize entity_review_queue.",
                )
            rows = con.query(
                f"SELECT {', '.join(QUEUE_SCHEMA)} FROM {QUEUE_TABLE}"
                " ORDER BY rank, partition_date DESC, article_id, sentence"
            )
        todo, seen = [], set(excluded)  # a sentence queued on two days is shown once
        for r in rows.iter_rows(named=True):
            key = (r["article_id"], r["sentence"])
            if key not in seen:
                seen.add(key)
                todo.append(r)
        item = None
        if todo:
            r = todo[0]
            item = SentenceItem(
                article_id=r["article_id"],
                partition_date=r["partition_date"],
                sentence=r["sentence"],
                text=r["text"],
                proposed=_spans_io(r["proposed"]),
                proposals={
                    k: [SpanIO(start=a, end=b, label=lab) for a, b, lab in v]
                    for k, v in json.loads(r["proposals"]).items()
                },
                disagreement=r["disagreement"],
                reason=r["reason"],
                rank=r["rank"],
            )
        message = (
            None
            if item
            else "Nothing left to correct in the entity review queue: every sentence is answered or skipped."
        )
        return EntityState(**base, queue_ready=True, item=item, remaining=len(todo), message=message)

    # ------------------------------------------------------------ answers

    def _queued_text(self, article_id: str, sentence: int) -> str:
        with self.wh.session(read_only=True) as con:
            if QUEUE_TABLE not in con.tables():
                raise PageError(503, f"no {QUEUE_TABLE} yet: nothing can be answered; nothing was stored")
            rows = con.query(
                f"SELECT text FROM {QUEUE_TABLE} WHERE article_id = ? AND sentence = ? LIMIT 1",
                [article_id, sentence],
            )
        if not len(rows):
            raise PageError(
                404,
                f"sentence {sentence} of article {article_id!r} is not in the entity review queue; nothing was stored",
            )
        return rows["text"][0]

    def answer(self, req: SpanAnswerIn, labeller: str | None = None) -> SpanAnswerOut:
        """Check and store one answer under `labeller` (a verified name; default: the process's)."""
        queued = self._queued_text(req.article_id, req.sentence)
        spans = None
        if req.action == "spans":
            if req.text is None or req.spans is None:
                raise PageError(
                    422, "a spans answer carries the sentence text and its spans; nothing was stored"
                )
            if req.text != queued:
                raise PageError(
                    409,
                    f"sentence {req.sentence} of {req.article_id!r} changed since it was shown (the queue was "
                    "rebuilt): reload the page; nothing was stored",
                )
            try:
                spans = parse_char_spans(
                    req.spans,
                    queued,
                    where=f"sentence {req.sentence} of {req.article_id}",
                    types=self.types,
                    allow_overlap=False,
                )
            except GoldFormatError as e:
                raise PageError(422, f"{e}; nothing was stored") from None
        elif req.spans is not None:
            raise PageError(422, "a skip carries no spans; nothing was stored")
        try:
            with store_refusals():
                rec = self.store.record_spans(
                    answer_id=req.answer_id,
                    article_id=req.article_id,
                    sentence=req.sentence,
                    action=req.action,
                    labeller=labeller or self.labeller,
                    text=queued if req.action == "spans" else None,
                    spans=spans,
                )
        except StoreError as e:  # a span set the store refuses (PageError is not a StoreError)
            raise PageError(422, f"{e}; nothing was stored") from None
        return _out(rec)

    def undo(self, req: SpanUndoIn, labeller: str | None = None) -> SpanAnswerOut:
        with store_refusals():
            rec = self.store.undo_last_spans(answer_id=req.answer_id, labeller=labeller or self.labeller)
        return _out(rec)


def _out(rec: SpanRecorded) -> SpanAnswerOut:
    a, u = rec.answer, rec.undone
    return SpanAnswerOut(
        status="already recorded" if rec.already_recorded else "recorded",
        id=a.id,
        answer_id=a.answer_id,
        article_id=a.article_id,
        sentence=a.sentence,
        action=a.action,
        spans=None if a.spans is None else [SpanIO(start=s.start, end=s.end, label=s.label) for s in a.spans],
        labeller=a.labeller,
        answered_at=a.answered_at.isoformat(),
        undone_action=u.action if u else None,
        undone_article_id=u.article_id if u else None,
        undone_sentence=u.sentence if u else None,
    )


def add_entity_routes(app: FastAPI, service: EntityLabellingService, labeller: Callable[..., str]) -> None:
    """/entities and /api/entities/{state,answers,undo} on the topic page's app, behind the same
    labeller dependency (loopback user, or a verified token)."""
    html = PAGE_HTML.read_text(encoding="utf-8")

    @app.get("/entities", response_class=HTMLResponse)
    def entity_page(_who: str = Depends(labeller)) -> HTMLResponse:
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    @app.get("/api/entities/state", response_model=EntityState)
    def entity_state(who: str = Depends(labeller)) -> EntityState:
        return service.state(who)

    @app.post("/api/entities/answers", response_model=SpanAnswerOut)
    def entity_answer(req: SpanAnswerIn, who: str = Depends(labeller)) -> SpanAnswerOut:
        return service.answer(req, who)

    @app.post("/api/entities/undo", response_model=SpanAnswerOut)
    def entity_undo(req: SpanUndoIn, who: str = Depends(labeller)) -> SpanAnswerOut:
        return service.undo(req, who)
