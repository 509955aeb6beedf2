"""The labelling page's entity mode over HTTP (FastAPI TestClient): the queue of contested
sentences, span answers into the feedback store, skip/undo, every bad answer refused with its
reason and nothing stored, and the same labeller rules as the topic page."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.entities.spans import CharSpan
from newsml_pipeline.core.entities.trusted import collect_trusted_sentences
from newsml_pipeline.core.labeling.entity_page import EntityLabellingService
from newsml_pipeline.core.labeling.feedback_store import FeedbackStore, store_path
from newsml_pipeline.core.labeling.page import LabellingService, Needs, create_app
from newsml_pipeline.core.labeling.span_store import SpanStore
from newsml_pipeline_tests.entity_review_data import TYPES, write_entity_queue
from newsml_pipeline_tests.review_queue_data import make_home

NEEDS = Needs(val_fraction=0.15, test_fraction=0.15, min_per_class_eval=2, min_test_rows=50)
A1 = "Angela Merkel met Reuters in Berlin."


def _app(home: Path, tokens: dict[str, str] | None = None):  # noqa: ANN202
    make_home(home, ["t1"], queue=["t1"])
    write_entity_queue(home)
    wh = Warehouse(home / "warehouse.duckdb")
    topic = LabellingService(
        warehouse=wh,
        store=FeedbackStore(store_path(home / "feedback")),
        feedback_dir=home / "feedback",
        labels=["business", "sport"],
        labeller="ann",
        needs=NEEDS,
    )
    ents = EntityLabellingService(
        warehouse=wh, store=SpanStore(store_path(home / "feedback")), types=TYPES, labeller="ann"
    )
    return create_app(topic, tokens=tokens, entities=ents), ents


@pytest.fixture
def setup(tmp_path: Path):  # noqa: ANN201
    app, ents = _app(tmp_path)
    return TestClient(app), ents


def _spans(client: TestClient, aid: str, k: int, text: str, spans: list, answer_id: str = "x1"):  # noqa: ANN202
    body = {
        "answer_id": answer_id,
        "article_id": aid,
        "sentence": k,
        "action": "spans",
        "text": text,
        "spans": spans,
    }
    return client.post("/api/entities/answers", json=body)


def test_state_shows_the_most_contested_sentence_with_its_proposals_and_answers_are_stored(setup) -> None:
    client, ents = setup
    assert client.get("/api/state").json()["entity_mode"] is True
    page = client.get("/entities")
    assert page.status_code == 200 and "newsml entities" in page.text
    st = client.get("/api/entities/state").json()
    assert st["types"] == TYPES and st["remaining"] == 3 and st["answered"] == 0
    item = st["item"]
    assert (item["article_id"], item["sentence"], item["text"]) == ("a1", 0, A1)
    assert item["proposed"] == [
        {"start": 0, "end": 13, "label": "PER"},
        {"start": 29, "end": 35, "label": "LOC"},
    ]
    assert item["proposals"]["gazetteer"] == [{"start": 18, "end": 25, "label": "NEWS_ORG"}]
    assert "contested" in item["reason"]
    fixed = [*item["proposed"], {"start": 18, "end": 25, "label": "NEWS_ORG"}]
    r = _spans(client, "a1", 0, A1, fixed)
    assert r.status_code == 200 and r.json()["status"] == "recorded", r.text
    assert _spans(client, "a1", 0, A1, fixed).json()["status"] == "already recorded"  # a retry: stored once
    st = client.get("/api/entities/state").json()
    assert st["item"]["article_id"] == "a2" and st["remaining"] == 2 and st["answered"] == 1
    cur = ents.store.current_spans()
    assert [(a.article_id, a.sentence, a.labeller, a.text) for a in cur] == [("a1", 0, "ann", A1)]
    assert cur[0].spans == [CharSpan(0, 13, "PER"), CharSpan(18, 25, "NEWS_ORG"), CharSpan(29, 35, "LOC")]
    # the answer is a trusted sentence the entity evaluation reads
    trusted = collect_trusted_sentences(files=[], source=[], page=cur, types=TYPES)
    assert [(s.id, s.text) for s in trusted.sentences] == [("a1#0", A1)] and trusted.article_ids == {"a1"}
    # an empty span list is an answer too: "no entity here"
    assert _spans(client, "a2", 1, "The Bank of England raised rates.", [], answer_id="x2").status_code == 200
    # a topic answer is untouched by span answers (same store file, own table)
    assert FeedbackStore(store_path(ents.store.path.parent)).answers() == []


@pytest.mark.parametrize(
    ("body", "status", "why"),
    [
        ({"spans": [{"start": 30, "end": 99, "label": "LOC"}]}, 422, "outside the text"),
        ({"spans": [{"start": 0, "end": 13, "label": "PERSON"}]}, 422, "unknown type 'PERSON'"),
        (
            {"spans": [{"start": 0, "end": 13, "label": "PER"}, {"start": 7, "end": 13, "label": "PER"}]},
            422,
            "overlap",
        ),
        ({"spans": [{"start": 0, "label": "PER"}]}, 422, "is not {start, end, label}"),
        ({"spans": [{"start": 0.5, "end": 13, "label": "PER"}]}, 422, "must be integers"),
        ({"text": "Angela Merkel met Reuters in Bonn."}, 409, "changed since it was shown"),
        ({"sentence": 7}, 404, "not in the entity review queue"),
        ({"action": "skip"}, 422, "a skip carries no spans"),
        ({"text": None}, 422, "carries the sentence text"),
    ],
)
def test_bad_answers_are_refused_with_their_reason_and_store_nothing(
    setup, body: dict, status: int, why: str
) -> None:
    client, ents = setup
    req = {"answer_id": "bad", "article_id": "a1", "sentence": 0, "action": "spans", "text": A1,
           "spans": [{"start": 0, "end": 13, "label": "PER"}], **body}  # fmt: skip
    r = client.post("/api/entities/answers", json=req)
    assert r.status_code == status and why in r.json()["detail"], r.text
    assert ents.store.span_answers() == []
    # the refused answer_id stays free: the corrected answer goes through under it
    assert (
        _spans(client, "a1", 0, A1, [{"start": 0, "end": 13, "label": "PER"}], answer_id="bad").status_code
        == 200
    )


def test_skip_and_undo_walk_back_and_a_reused_answer_id_is_refused(setup) -> None:
    client, ents = setup
    assert client.post("/api/entities/undo", json={"answer_id": "u0"}).status_code == 409  # nothing yet
    skip = {"answer_id": "s1", "article_id": "a1", "sentence": 0, "action": "skip"}
    assert client.post("/api/entities/answers", json=skip).status_code == 200
    assert client.get("/api/entities/state").json()["item"]["article_id"] == "a2"
    assert _spans(client, "a2", 1, "The Bank of England raised rates.", [], answer_id="s2").status_code == 200
    r = client.post("/api/entities/undo", json={"answer_id": "u1"}).json()
    assert (r["undone_action"], r["undone_article_id"]) == ("spans", "a2")
    r = client.post("/api/entities/undo", json={"answer_id": "u2"}).json()
    assert (r["undone_action"], r["undone_article_id"]) == ("skip", "a1")
    assert client.get("/api/entities/state").json()["item"]["article_id"] == "a1"
    assert ents.store.current_spans() == []
    # the same answer_id with other content is a conflict, not a silent overwrite
    assert _spans(client, "a1", 0, A1, [], answer_id="s1").status_code == 409
    assert [a.action for a in ents.store.span_answers()] == ["skip", "spans", "undo", "undo"]


def test_with_tokens_the_entity_mode_needs_a_verified_labeller(tmp_path: Path) -> None:
    token = "alice-token-0123456789"
    app, ents = _app(tmp_path, tokens={"alice": token})
    client = TestClient(app)
    for path in ("/entities", "/api/entities/state"):
        assert client.get(path).status_code == 401
    assert _spans(client, "a1", 0, A1, []).status_code == 401
    assert ents.store.span_answers() == []
    auth = {"Authorization": "Basic " + base64.b64encode(f"alice:{token}".encode()).decode()}
    assert client.get("/api/entities/state", headers=auth).json()["labeller"] == "alice"
    body = {"answer_id": "x", "article_id": "a1", "sentence": 0, "action": "spans", "text": A1, "spans": []}
    assert client.post("/api/entities/answers", json=body, headers=auth).json()["labeller"] == "alice"
    assert [a.labeller for a in ents.store.span_answers()] == ["alice"]


def test_without_a_queue_the_page_says_what_to_materialize(tmp_path: Path) -> None:
    make_home(tmp_path, ["t1"], queue=["t1"])
    ents = EntityLabellingService(
        warehouse=Warehouse(tmp_path / "warehouse.duckdb"),
        store=SpanStore(store_path(tmp_path / "feedback")),
        types=TYPES,
        labeller="ann",
    )
    st = ents.state()
    assert not st.queue_ready and st.item is None and "entity_review_queue" in st.message
