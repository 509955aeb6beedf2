"""The labelling page: the review queue one article at a time, one click or key per answer.

`LabellingService` holds the logic (which article is next, is an answer valid, progress per
class); `create_app` puts a small FastAPI app over it (an HTML page, a JSON API with pydantic
models); `serve` runs it with uvicorn for `newsml label`. Each answer is committed to the
feedback store before the response is sent, so a crash never loses an answer the page confirmed.

The queue is the warehouse table `review_queue` in rank order, minus articles already labelled in
the store, articles this labeller skipped, and articles no longer in raw_articles. One process
serves one labeller (`--user`); two people run one `newsml label` each on the same NEWSML_HOME.
"""

from __future__ import annotations

import getpass
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import polars as pl
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.labeling.feedback_store import (
    AnswerIdConflict,
    FeedbackStore,
    NothingToUndo,
    store_path,
)
from newsml_pipeline.core.labeling.needs import trusted_labels_needed
from newsml_pipeline.core.labeling.trusted import collect_trusted_labels

log = logging.getLogger(__name__)

QUEUE_TABLE = "review_queue"
QUEUE_COLUMNS = [
    "article_id",
    "partition_date",
    "title",
    "lead",
    "url",
    "suggested_label",
    "confidence",
    "uncertainty",
    "cluster",
    "reason",
    "rank",
]
PAGE_HTML = Path(__file__).with_name("page.html")


# ---------------------------------------------------------------- API models


class QueueItem(BaseModel):
    article_id: str
    partition_date: date | None
    title: str
    lead: str
    url: str | None
    suggested_label: str | None
    confidence: float | None
    uncertainty: float | None
    cluster: int | None
    reason: str | None
    rank: int


class ClassProgress(BaseModel):
    label: str
    have: int = Field(description="trusted labels of this class so far (page, feedback files, source gold)")
    needed: int = Field(description="how many more the splits and the gate need (0 = enough)")


class State(BaseModel):
    labeller: str
    labels: list[str]
    queue_ready: bool
    message: str | None = Field(default=None, description="why there is nothing to show, when there is not")
    item: QueueItem | None
    remaining: int
    progress: list[ClassProgress]


class AnswerIn(BaseModel):
    answer_id: str = Field(
        min_length=1, max_length=200, description="chosen by the client; a retry reuses it"
    )
    article_id: str = Field(min_length=1)
    action: Literal["label", "skip"]
    label: str | None = None


class UndoIn(BaseModel):
    answer_id: str = Field(min_length=1, max_length=200)


class AnswerOut(BaseModel):
    status: Literal["recorded", "already recorded"]
    id: int
    answer_id: str
    article_id: str | None
    action: str
    label: str | None
    labeller: str
    answered_at: str
    undone_article_id: str | None = None
    undone_action: str | None = None
    undone_label: str | None = None


# ---------------------------------------------------------------- logic


class PageError(Exception):
    """A refused answer: HTTP status + a message a person can act on. Nothing was stored."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Needs:
    """The config values trusted_labels_needed works from (splits.* and gate.min_test_rows)."""

    val_fraction: float
    test_fraction: float
    min_per_class_eval: int
    min_test_rows: int


class LabellingService:
    def __init__(
        self,
        *,
        warehouse: Warehouse,
        store: FeedbackStore,
        feedback_dir: Path,
        labels: list[str],
        labeller: str,
        needs: Needs,
    ) -> None:
        if not labeller.strip():
            raise ValueError("labeller must be a non-empty name")
        self.wh = warehouse
        self.store = store
        self.feedback_dir = Path(feedback_dir)
        self.labels = list(labels)
        self.labeller = labeller
        self.needs = needs

    @classmethod
    def from_settings(cls, settings, *, labeller: str | None = None) -> LabellingService:  # noqa: ANN001
        cfg = settings.config
        return cls(
            warehouse=Warehouse(settings.warehouse_path),
            store=FeedbackStore(store_path(settings.feedback_dir)),
            feedback_dir=settings.feedback_dir,
            labels=cfg.labels.names,
            labeller=labeller or getpass.getuser(),
            needs=Needs(
                val_fraction=cfg.splits.val_fraction,
                test_fraction=cfg.splits.test_fraction,
                min_per_class_eval=cfg.splits.min_per_class_eval,
                min_test_rows=cfg.gate.min_test_rows,
            ),
        )

    # ------------------------------------------------------------ queue

    def _queue_problem(self) -> str | None:
        if not self.wh.table_exists(QUEUE_TABLE):
            return (
                f"The table {QUEUE_TABLE!r} does not exist yet in {self.wh.path}: materialize review_queue "
                "first (Dagster UI, or `dagster asset materialize -m newsml_pipeline.definitions "
                "--select review_queue --partition <day>`), then reload this page."
            )
        missing = [c for c in QUEUE_COLUMNS if c not in self.wh.columns(QUEUE_TABLE)]
        if missing:
            return f"The table {QUEUE_TABLE!r} lacks the columns {missing}: re-materialize review_queue."
        return None

    def _excluded(self) -> pl.DataFrame:
        done = set(self.store.current_labels()["article_id"].to_list()) | self.store.skipped_by(self.labeller)
        return pl.DataFrame({"article_id": sorted(done)}, schema={"article_id": pl.String()})

    def queue(self, *, limit: int | None = 1) -> tuple[list[QueueItem], int]:
        """(next items in rank order, how many remain); raises PageError(503) without a queue."""
        problem = self._queue_problem()
        if problem:
            raise PageError(503, problem)
        in_raw = (
            "AND q.article_id IN (SELECT article_id FROM raw_articles)"
            if self.wh.table_exists("raw_articles")
            else ""
        )
        base = f"""
            FROM {QUEUE_TABLE} q
            WHERE q.article_id NOT IN (SELECT article_id FROM _excluded) {in_raw}
        """
        frames = {"_excluded": self._excluded()}
        rows = self.wh.query(
            f"SELECT {', '.join('q.' + c for c in QUEUE_COLUMNS)} {base}"
            " ORDER BY q.rank, q.partition_date DESC, q.article_id"
            + (f" LIMIT {int(limit)}" if limit else ""),
            frames=frames,
        )
        remaining = int(
            self.wh.query(f"SELECT count(DISTINCT q.article_id) AS n {base}", frames=frames)["n"][0]
        )
        return [QueueItem.model_validate(r) for r in rows.to_dicts()], remaining

    # ------------------------------------------------------------ progress

    def _known_articles(self) -> pl.DataFrame:
        if not self.wh.table_exists("raw_articles"):
            return pl.DataFrame(
                schema={"article_id": pl.String(), "url": pl.String(), "gold_label": pl.String()}
            )
        return self.wh.query("SELECT article_id, url, gold_label FROM raw_articles")

    def progress(self) -> list[ClassProgress]:
        """Trusted labels per class as the next label_feedback will count them, and what is still needed."""
        gold = collect_trusted_labels(
            known=self._known_articles(), feedback_dir=self.feedback_dir, labels=self.labels
        ).gold
        have = dict(gold.group_by("label").len().iter_rows()) if len(gold) else {}
        needed = trusted_labels_needed(
            have,
            labels=self.labels,
            val_fraction=self.needs.val_fraction,
            test_fraction=self.needs.test_fraction,
            min_per_class_eval=self.needs.min_per_class_eval,
            min_test_rows=self.needs.min_test_rows,
        )
        return [ClassProgress(label=c, have=int(have.get(c, 0)), needed=needed[c]) for c in self.labels]

    def state(self) -> State:
        try:
            items, remaining = self.queue()
            ready, message = True, None
            if not items:
                message = "Nothing left to label in the review queue: every article is labelled or skipped."
        except PageError as e:
            items, remaining, ready, message = [], 0, False, e.message
        return State(
            labeller=self.labeller,
            labels=self.labels,
            queue_ready=ready,
            message=message,
            item=items[0] if items else None,
            remaining=remaining,
            progress=self.progress(),
        )

    # ------------------------------------------------------------ answers

    def _check_article(self, article_id: str) -> None:
        in_raw = self.wh.table_exists("raw_articles") and bool(
            len(self.wh.query("SELECT 1 FROM raw_articles WHERE article_id = ? LIMIT 1", [article_id]))
        )
        if in_raw:
            return
        in_queue = self.wh.table_exists(QUEUE_TABLE) and bool(
            len(self.wh.query(f"SELECT 1 FROM {QUEUE_TABLE} WHERE article_id = ? LIMIT 1", [article_id]))
        )
        if in_queue:
            raise PageError(
                410,
                f"article {article_id!r} is in the review queue but no longer in raw_articles (removed since "
                "the queue was built); nothing was stored. Re-materialize review_queue.",
            )
        raise PageError(
            404, f"unknown article {article_id!r}: it is neither in raw_articles nor in the review queue"
        )

    def answer(self, req: AnswerIn) -> AnswerOut:
        if req.action == "label":
            if req.label is None or req.label not in self.labels:
                raise PageError(
                    422, f"unknown label {req.label!r}; valid labels are {self.labels}; nothing was stored"
                )
        elif req.label is not None:
            raise PageError(422, f"a skip carries no label (got {req.label!r}); nothing was stored")
        self._check_article(req.article_id)
        try:
            rec = self.store.record(
                answer_id=req.answer_id,
                article_id=req.article_id,
                action=req.action,
                label=req.label,
                labeller=self.labeller,
            )
        except AnswerIdConflict as e:
            raise PageError(409, str(e)) from None
        return _out(rec)

    def undo(self, req: UndoIn) -> AnswerOut:
        try:
            rec = self.store.undo_last(answer_id=req.answer_id, labeller=self.labeller)
        except NothingToUndo as e:
            raise PageError(409, f"nothing to undo: {e}") from None
        except AnswerIdConflict as e:
            raise PageError(409, str(e)) from None
        return _out(rec)


def _out(rec) -> AnswerOut:  # noqa: ANN001 - feedback_store.Recorded
    a = rec.answer
    return AnswerOut(
        status="already recorded" if rec.already_recorded else "recorded",
        id=a.id,
        answer_id=a.answer_id,
        article_id=a.article_id,
        action=a.action,
        label=a.label,
        labeller=a.labeller,
        answered_at=a.answered_at.isoformat(),
        undone_article_id=rec.undone.article_id if rec.undone else None,
        undone_action=rec.undone.action if rec.undone else None,
        undone_label=rec.undone.label if rec.undone else None,
    )


# ---------------------------------------------------------------- HTTP


def create_app(service: LabellingService) -> FastAPI:
    app = FastAPI(
        title="newsml labelling page", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json"
    )
    html = PAGE_HTML.read_text(encoding="utf-8")

    @app.exception_handler(PageError)
    async def _page_error(_request, exc: PageError) -> JSONResponse:  # noqa: ANN001
        return JSONResponse(status_code=exc.status, content={"detail": exc.message})

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "labeller": service.labeller}

    # Plain `def` endpoints run in a thread pool: the store and the warehouse block on I/O.
    @app.get("/api/state", response_model=State)
    def state() -> State:
        return service.state()

    @app.post("/api/answers", response_model=AnswerOut)
    def answer(req: AnswerIn) -> AnswerOut:
        return service.answer(req)

    @app.post("/api/undo", response_model=AnswerOut)
    def undo(req: UndoIn) -> AnswerOut:
        return service.undo(req)

    return app


def serve(service: LabellingService, *, host: str, port: int) -> None:
    """Run the page with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(service), host=host, port=port, log_level="warning")
