"""The labelling page's API (FastAPI TestClient): the queue, progress, and every bad answer."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.labeling.feedback_store import FeedbackStore, store_path
from newsml_pipeline.core.labeling.needs import trusted_labels_needed
from newsml_pipeline.core.labeling.page import LabellingService, Needs, create_app
from newsml_pipeline_tests.review_queue_data import make_home, write_articles

# Category names are the user's: slashes, ampersands, markup.
LABELS = ["Sci/Tech", "Economy & business", "<b>World</b>"]
NEEDS = Needs(val_fraction=0.15, test_fraction=0.15, min_per_class_eval=2, min_test_rows=50)
IDS = ["a1", "a2", "a3", "a4", "a5"]


def _service(home: Path, labeller: str = "ann") -> LabellingService:
    return LabellingService(
        warehouse=Warehouse(home / "warehouse.duckdb"),
        store=FeedbackStore(store_path(home / "feedback")),
        feedback_dir=home / "feedback",
        labels=LABELS,
        labeller=labeller,
        needs=NEEDS,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    make_home(tmp_path, IDS, queue=["a3", "a1", "a2", "a5", "a4"], gold={"a5": "Sci/Tech"})
    return tmp_path


@pytest.fixture
def client(home: Path) -> TestClient:
    return TestClient(create_app(_service(home)))


def _label(client: TestClient, aid: str, label: str, answer_id: str | None = None):
    return client.post(
        "/api/answers",
        json={
            "answer_id": answer_id or f"ans-{aid}-{label}",
            "article_id": aid,
            "action": "label",
            "label": label,
        },
    )


def _answers(home: Path) -> list:
    return FeedbackStore(store_path(home / "feedback")).answers()


def test_page_and_state_serve_the_queue_in_rank_order(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for name in LABELS:  # names reach the page as JSON only, never pasted into the HTML
        assert name not in page.text
    state = client.get("/api/state").json()
    assert state["queue_ready"] and state["labels"] == LABELS and state["labeller"] == "ann"
    assert state["item"]["article_id"] == "a3" and state["item"]["rank"] == 1 and state["remaining"] == 5
    assert _label(client, "a3", "Sci/Tech").json()["status"] == "recorded"
    assert client.get("/api/state").json()["item"]["article_id"] == "a1"


def test_labelled_and_skipped_articles_leave_the_queue_skips_only_for_that_labeller(home: Path) -> None:
    ann, bob = TestClient(create_app(_service(home, "ann"))), TestClient(create_app(_service(home, "bob")))
    _label(ann, "a3", "Sci/Tech")
    r = ann.post("/api/answers", json={"answer_id": "skip-a1", "article_id": "a1", "action": "skip"})
    assert r.status_code == 200
    assert ann.get("/api/state").json()["item"]["article_id"] == "a2"
    bob_state = bob.get("/api/state").json()
    assert bob_state["item"]["article_id"] == "a1"  # ann's skip is hers; a3 is labelled for everyone
    assert bob_state["remaining"] == 4
    # undo brings the skipped article back for ann
    assert ann.post("/api/undo", json={"answer_id": "u1"}).json()["undone_article_id"] == "a1"
    assert ann.get("/api/state").json()["item"]["article_id"] == "a1"


def test_articles_gone_from_raw_articles_are_not_served(home: Path, client: TestClient) -> None:
    write_articles(Warehouse(home / "warehouse.duckdb"), ["a1", "a2", "a4", "a5"])  # a3 was removed
    assert client.get("/api/state").json()["item"]["article_id"] == "a1"


def test_progress_counts_trusted_labels_and_what_is_still_needed(client: TestClient) -> None:
    _label(client, "a3", "Sci/Tech")
    _label(client, "a1", "Economy & business")
    progress = {p["label"]: p for p in client.get("/api/state").json()["progress"]}
    have = {"Sci/Tech": 2, "Economy & business": 1, "<b>World</b>": 0}  # a5 is source gold
    assert {k: v["have"] for k, v in progress.items()} == have
    expected = trusted_labels_needed(have, labels=LABELS, **vars(NEEDS))
    assert {k: v["needed"] for k, v in progress.items()} == expected
    assert expected["<b>World</b>"] > expected["Sci/Tech"]


def test_unknown_label_is_422_naming_it_and_the_valid_ones(home: Path, client: TestClient) -> None:
    r = _label(client, "a3", "sci/tech")
    assert r.status_code == 422
    assert "'sci/tech'" in r.json()["detail"] and all(name in r.json()["detail"] for name in LABELS)
    r = client.post("/api/answers", json={"answer_id": "x", "article_id": "a3", "action": "label"})
    assert r.status_code == 422 and "None" in r.json()["detail"]
    r = client.post(
        "/api/answers", json={"answer_id": "y", "article_id": "a3", "action": "skip", "label": "Sci/Tech"}
    )
    assert r.status_code == 422
    r = client.post("/api/answers", json={"answer_id": "z", "article_id": "a3", "action": "delete"})
    assert r.status_code == 422  # pydantic: the action is not one of label/skip
    assert _answers(home) == []


def test_unknown_article_is_404(home: Path, client: TestClient) -> None:
    r = _label(client, "nope", "Sci/Tech")
    assert r.status_code == 404 and "'nope'" in r.json()["detail"]
    assert _answers(home) == []


def test_double_submit_is_200_already_recorded_and_stored_once(home: Path, client: TestClient) -> None:
    first = _label(client, "a3", "Sci/Tech", answer_id="same")
    again = _label(client, "a3", "Sci/Tech", answer_id="same")
    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.json()["status"], again.json()["status"]) == ("recorded", "already recorded")
    assert first.json()["id"] == again.json()["id"]
    assert len(_answers(home)) == 1


def test_reused_answer_id_for_another_answer_is_409(home: Path, client: TestClient) -> None:
    _label(client, "a3", "Sci/Tech", answer_id="same")
    r = _label(client, "a3", "Economy & business", answer_id="same")
    assert r.status_code == 409 and "already stored" in r.json()["detail"]
    assert [a.label for a in _answers(home)] == ["Sci/Tech"]


def test_label_for_an_article_no_longer_in_raw_articles_is_410(home: Path, client: TestClient) -> None:
    write_articles(Warehouse(home / "warehouse.duckdb"), ["a1", "a2", "a4", "a5"])  # a3 removed
    r = _label(client, "a3", "Sci/Tech")
    assert r.status_code == 410 and "no longer in raw_articles" in r.json()["detail"]
    assert _answers(home) == []


def test_undo_with_nothing_to_undo_is_409(home: Path, client: TestClient) -> None:
    r = client.post("/api/undo", json={"answer_id": "u"})
    assert r.status_code == 409 and "nothing to undo" in r.json()["detail"]
    _label(client, "a3", "Sci/Tech")
    r = client.post("/api/undo", json={"answer_id": "u2"})
    assert r.status_code == 200 and r.json()["undone_label"] == "Sci/Tech"
    assert client.post("/api/undo", json={"answer_id": "u3"}).status_code == 409
    assert [a.action for a in _answers(home)] == ["label", "undo"]


def test_without_a_review_queue_the_page_says_to_materialize_it(tmp_path: Path) -> None:
    write_articles(Warehouse(tmp_path / "warehouse.duckdb"), IDS)
    client = TestClient(create_app(_service(tmp_path)))
    assert client.get("/").status_code == 200
    state = client.get("/api/state").json()
    assert not state["queue_ready"] and state["item"] is None
    assert "review_queue" in state["message"] and "materialize" in state["message"]
    assert [p["have"] for p in state["progress"]] == [0, 0, 0]
    # labels for articles that exist are still accepted (e.g. from a queue built elsewhere)
    assert _label(client, "a1", "Sci/Tech").status_code == 200


def test_empty_warehouse_does_not_crash(tmp_path: Path) -> None:
    client = TestClient(create_app(_service(tmp_path)))
    state = client.get("/api/state").json()
    assert not state["queue_ready"] and "materialize review_queue" in state["message"]
    assert _label(client, "a1", "Sci/Tech").status_code == 404


def test_empty_labeller_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="labeller"):
        _service(tmp_path, labeller=" ")


def test_progress_sees_a_feedback_file_dropped_while_the_page_runs(home: Path) -> None:
    labels = ["sport", "tech"]  # file lines are matched after lowercasing, so lowercase names here
    service = LabellingService(
        warehouse=Warehouse(home / "warehouse.duckdb"),
        store=FeedbackStore(store_path(home / "feedback")),
        feedback_dir=home / "feedback",
        labels=labels,
        labeller="ann",
        needs=NEEDS,
    )
    client = TestClient(create_app(service))

    def have() -> dict[str, int]:
        return {p["label"]: p["have"] for p in client.get("/api/state").json()["progress"]}

    assert have() == {"sport": 0, "tech": 0}
    folder = home / "feedback"
    folder.mkdir(exist_ok=True)
    (folder / "more.csv").write_text("article_id,label\na2,tech\na1,sport\n", encoding="utf-8")
    assert have() == {"sport": 1, "tech": 1}  # the cached parse of the files is refreshed
    _label(client, "a2", "sport")  # the page's answer wins over the file line for a2
    assert have() == {"sport": 2, "tech": 0}
    (folder / "more.csv").unlink()
    assert have() == {"sport": 1, "tech": 0}


def test_labeller_tokens_parse_and_bad_ones_are_named_without_the_token() -> None:
    from newsml_pipeline.core.labeling.access import parse_tokens, verified_labeller

    tokens = parse_tokens(" alice:aaaaaaaaaaaaaaaa1 , bob:bbbbbbbbbbbbbbbb2,")
    assert tokens == {"alice": "aaaaaaaaaaaaaaaa1", "bob": "bbbbbbbbbbbbbbbb2"}
    assert parse_tokens("") == {}
    for bad, msg in [
        ("alice", "entry 1 is not name:token"),
        ("a:short", "shorter than 16"),
        ("a:aaaaaaaaaaaaaaaa1,a:bbbbbbbbbbbbbbbb2", "'a' is listed twice"),
    ]:
        with pytest.raises(ValueError, match=msg) as err:
            parse_tokens(bad)
        assert "aaaaaaaaaaaaaaaa1" not in str(err.value)
    basic = "Basic " + base64.b64encode(b"bob:bbbbbbbbbbbbbbbb2").decode()
    assert verified_labeller(basic, tokens) == "bob"
    assert verified_labeller(basic, {"bob": "something-else-123"}) is None
    assert verified_labeller("Bearer bbbbbbbbbbbbbbbb2", tokens) is None
    assert verified_labeller("Basic not-base64!", tokens) is None


def test_with_tokens_the_stored_labeller_is_the_verified_one(home: Path) -> None:
    client = TestClient(create_app(_service(home, "ann"), tokens={"zoe": "zoe-token-0123456789"}))
    assert client.get("/health").json() == {"status": "ok", "labeller": None}  # probes stay open
    assert _label(client, "a3", "Sci/Tech").status_code == 401
    assert _answers(home) == []
    client.auth = ("zoe", "zoe-token-0123456789")
    assert client.get("/api/state").json()["labeller"] == "zoe"
    r = _label(client, "a3", "Sci/Tech")
    assert r.status_code == 200 and r.json()["labeller"] == "zoe"
    assert [a.labeller for a in _answers(home)] == ["zoe"]
