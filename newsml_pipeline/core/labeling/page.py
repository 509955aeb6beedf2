"""The labelling page: the review queue one article at a time, one click or key per answer.

`LabellingService` holds the logic (which article is next, is an answer valid, progress per
class); `create_app` puts a small FastAPI app over it (an HTML page, a JSON API with pydantic
models); `serve` runs it with uvicorn for `newsml label`. Each answer is committed to the
feedback store before the response is sent, so a crash never loses an answer the page confirmed.

The queue is the warehouse table `review_queue` in rank order, minus articles already labelled in
the store, articles this labeller skipped, and articles no longer in raw_articles. Without
credentials one process serves one labeller (`--user`) and only on loopback; with
`NEWSML_LABEL_TOKENS` (core/labeling/access.py) every request names its labeller by a token the
server checks, one process serves them all, and it may listen on other interfaces.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import polars as pl
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from newsml_pipeline.core.data.warehouse import Session, Warehouse
from newsml_pipeline.core.exposure import refuse_open_bind
from newsml_pipeline.core.labeling.access import TOKENS_ENV, verified_labeller
from newsml_pipeline.core.labeling.feedback import FeedbackResult, feedback_files, parse_feedback_dir
from newsml_pipeline.core.labeling.feedback_store import (
    AnswerIdConflict,
    FeedbackStore,
    NothingToUndo,
    store_path,
)
from newsml_pipeline.core.labeling.needs import trusted_labels_needed
from newsml_pipeline.core.labeling.trusted import collect_trusted_labels

if TYPE_CHECKING:
    from newsml_pipeline.core.labeling.entity_page import EntityLabellingService

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
    title: str | None  # str by contract; a null is shown as "(no title)" rather than failing the page
    lead: str | None
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
    entity_mode: bool = Field(default=False, description="whether /entities (span corrections) is served")


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


@contextmanager
def store_refusals() -> Iterator[None]:
    """The feedback store's refusals as the page's HTTP errors, the same in every mode: a resent
    answer id with another answer, or an undo with nothing left to undo, is a 409."""
    try:
        yield
    except NothingToUndo as e:
        raise PageError(409, f"nothing to undo: {e}") from None
    except AnswerIdConflict as e:
        raise PageError(409, str(e)) from None


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
        self._files_cache: tuple[tuple, FeedbackResult] | None = None

    @classmethod
    def from_settings(cls, settings, *, labeller: str | None = None) -> LabellingService:  # noqa: ANN001
        cfg = settings.config
        return cls(
            warehouse=Warehouse(settings.warehouse_target),
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

    def _queue_problem(self, con: Session, tables: set[str]) -> str | None:
        if QUEUE_TABLE not in tables:
            return (
                f"The table {QUEUE_TABLE!r} does not exist yet in {self.wh.location}: materialize review_queue "
                "first (Dagster UI, or `dagster asset materialize -m newsml_pipeline.definitions "
                "--select review_queue --partition <day>`), then reload this page."
            )
        have = set(con.columns(QUEUE_TABLE))
        missing = [c for c in QUEUE_COLUMNS if c not in have]
        if missing:
            return f"The table {QUEUE_TABLE!r} lacks the columns {missing}: re-materialize review_queue."
        return None

    def _queue(self, con: Session, tables: set[str], excluded: set[str]) -> tuple[QueueItem | None, int]:
        """(next item in rank order, how many remain); raises PageError(503) without a queue."""
        problem = self._queue_problem(con, tables)
        if problem:
            raise PageError(503, problem)
        in_raw = (
            "AND q.article_id IN (SELECT article_id FROM raw_articles)" if "raw_articles" in tables else ""
        )
        con.register("_excluded", _ids_frame(excluded))
        base = f"FROM {QUEUE_TABLE} q WHERE q.article_id NOT IN (SELECT article_id FROM _excluded) {in_raw}"
        rows = con.query(
            f"SELECT {', '.join('q.' + c for c in QUEUE_COLUMNS)} {base}"
            " ORDER BY q.rank, q.partition_date DESC, q.article_id LIMIT 1"
        )
        remaining = int(con.scalar(f"SELECT count(DISTINCT q.article_id) {base}"))
        con.unregister("_excluded")
        return (QueueItem.model_validate(rows.row(0, named=True)) if len(rows) else None), remaining

    # ------------------------------------------------------------ progress

    def _file_feedback(self, con: Session, tables: set[str]) -> FeedbackResult:
        """The feedback files, parsed again only when a file or the number of raw articles changes
        (resolving URLs over every raw article is the slow part, and files rarely change)."""
        n_raw = int(con.scalar("SELECT count(*) FROM raw_articles")) if "raw_articles" in tables else 0
        files, _ = feedback_files(self.feedback_dir)
        key = (n_raw, tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files))
        if self._files_cache is None or self._files_cache[0] != key:
            known = (
                con.query("SELECT article_id, url FROM raw_articles")
                if "raw_articles" in tables
                else pl.DataFrame(schema={"article_id": pl.String(), "url": pl.String()})
            )
            self._files_cache = (
                key,
                parse_feedback_dir(self.feedback_dir, labels=self.labels, known_articles=known),
            )
        return self._files_cache[1]

    def _progress(self, con: Session, tables: set[str], current: pl.DataFrame) -> list[ClassProgress]:
        """Trusted labels per class as the next label_feedback will count them, and what is still needed."""
        if "raw_articles" in tables:
            # only the rows that can matter: source gold, and the articles labelled on the page
            con.register("_page_ids", _ids_frame(set(current["article_id"].to_list())))
            known = con.query(
                "SELECT article_id, url, gold_label FROM raw_articles "
                "WHERE gold_label IS NOT NULL OR article_id IN (SELECT article_id FROM _page_ids)"
            )
            con.unregister("_page_ids")
        else:
            known = pl.DataFrame(
                schema={"article_id": pl.String(), "url": pl.String(), "gold_label": pl.String()}
            )
        gold = collect_trusted_labels(
            known=known,
            feedback_dir=self.feedback_dir,
            labels=self.labels,
            files=self._file_feedback(con, tables),
            current=current,
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

    def state(self, labeller: str | None = None) -> State:
        """What the page shows `labeller` (default: the process's): the next article, how many
        remain, progress per class."""
        labeller = labeller or self.labeller
        current = self.store.current_labels()
        excluded = set(current["article_id"].to_list()) | self.store.skipped_by(labeller)
        with self.wh.session(read_only=True) as con:  # one connection per request: opening one is slow
            tables = con.tables()
            try:
                item, remaining = self._queue(con, tables, excluded)
                ready, message = True, None
                if item is None:
                    message = (
                        "Nothing left to label in the review queue: every article is labelled or skipped."
                    )
            except PageError as e:
                item, remaining, ready, message = None, 0, False, e.message
            progress = self._progress(con, tables, current)
        return State(
            labeller=labeller,
            labels=self.labels,
            queue_ready=ready,
            message=message,
            item=item,
            remaining=remaining,
            progress=progress,
        )

    # ------------------------------------------------------------ answers

    def _check_article(self, article_id: str) -> None:
        with self.wh.session(read_only=True) as con:
            tables = con.tables()

            def has(table: str) -> bool:
                return table in tables and bool(
                    con.scalar(f"SELECT count(*) FROM {table} WHERE article_id = ?", [article_id])
                )

            if has("raw_articles"):
                return
            if has(QUEUE_TABLE):
                raise PageError(
                    410,
                    f"article {article_id!r} is in the review queue but no longer in raw_articles (removed "
                    "since the queue was built); nothing was stored. Re-materialize review_queue.",
                )
        raise PageError(
            404, f"unknown article {article_id!r}: it is neither in raw_articles nor in the review queue"
        )

    def answer(self, req: AnswerIn, labeller: str | None = None) -> AnswerOut:
        """Store one answer under `labeller` (a verified name; default: the process's)."""
        if req.action == "label":
            if req.label is None or req.label not in self.labels:
                raise PageError(
                    422, f"unknown label {req.label!r}; valid labels are {self.labels}; nothing was stored"
                )
        elif req.label is not None:
            raise PageError(422, f"a skip carries no label (got {req.label!r}); nothing was stored")
        self._check_article(req.article_id)
        with store_refusals():
            rec = self.store.record(
                answer_id=req.answer_id,
                article_id=req.article_id,
                action=req.action,
                label=req.label,
                labeller=labeller or self.labeller,
            )
        return _out(rec)

    def undo(self, req: UndoIn, labeller: str | None = None) -> AnswerOut:
        with store_refusals():
            rec = self.store.undo_last(answer_id=req.answer_id, labeller=labeller or self.labeller)
        return _out(rec)


def _ids_frame(ids: set[str]) -> pl.DataFrame:
    return pl.DataFrame({"article_id": sorted(ids)}, schema={"article_id": pl.String()})


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


def create_app(
    service: LabellingService,
    *,
    tokens: Mapping[str, str] | None = None,
    entities: EntityLabellingService | None = None,
) -> FastAPI:
    """The page and its API. `tokens` ({labeller: token}, core/labeling/access.py): every route but
    /health then needs HTTP Basic credentials, and answers are stored under the verified name.
    `entities` (the config has an `entities:` section): the entity mode at /entities, same rules."""
    app = FastAPI(
        title="newsml labelling page", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json"
    )
    html = PAGE_HTML.read_text(encoding="utf-8")

    @app.exception_handler(PageError)
    async def _page_error(_request, exc: PageError) -> JSONResponse:  # noqa: ANN001
        # A 401 asks the browser for the labeller's name and token (HTTP Basic).
        headers = {"WWW-Authenticate": 'Basic realm="newsml labelling", charset="UTF-8"'}
        return JSONResponse(
            status_code=exc.status,
            content={"detail": exc.message},
            headers=headers if exc.status == 401 else None,
        )

    def labeller(request: Request) -> str:
        """Who is asking: the verified labeller with tokens, else the process's own (loopback only)."""
        if not tokens:
            return service.labeller
        name = verified_labeller(request.headers.get("authorization"), tokens)
        if name is None:
            raise PageError(
                401, f"sign in with your labeller name and token ({TOKENS_ENV}); nothing was stored"
            )
        return name

    @app.get("/", response_class=HTMLResponse)
    def page(_who: str = Depends(labeller)) -> HTMLResponse:
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    @app.get("/health")
    def health() -> dict[str, str | None]:
        return {"status": "ok", "labeller": None if tokens else service.labeller}

    # Plain `def` endpoints run in a thread pool: the store and the warehouse block on I/O.
    @app.get("/api/state", response_model=State)
    def state(who: str = Depends(labeller)) -> State:
        out = service.state(who)
        out.entity_mode = entities is not None
        return out

    @app.post("/api/answers", response_model=AnswerOut)
    def answer(req: AnswerIn, who: str = Depends(labeller)) -> AnswerOut:
        return service.answer(req, who)

    @app.post("/api/undo", response_model=AnswerOut)
    def undo(req: UndoIn, who: str = Depends(labeller)) -> AnswerOut:
        return service.undo(req, who)

    if entities is not None:
        from newsml_pipeline.core.labeling.entity_page import add_entity_routes

        add_entity_routes(app, entities, labeller)
    return app


def serve(
    service: LabellingService,
    *,
    host: str,
    port: int,
    tokens: Mapping[str, str] | None = None,
    entities: EntityLabellingService | None = None,
) -> None:
    """Run the page with uvicorn until interrupted; off loopback only with `tokens`."""
    check_bind(host, tokens)
    import uvicorn

    app = create_app(service, tokens=tokens, entities=entities)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def check_bind(host: str, tokens: Mapping[str, str] | None) -> None:
    """PermissionError unless `host` is loopback or labellers have tokens."""
    refuse_open_bind(
        host,
        has_credentials=bool(tokens),
        what="the labelling page",
        how=f"set {TOKENS_ENV}='name:token,…' (one token per labeller; the browser asks for them)",
    )
