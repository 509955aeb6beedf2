"""`newsml label` off loopback: refused without credentials; with NEWSML_LABEL_TOKENS every answer
is stored under the labeller whose token the server checked, and a request without (or with a
wrong) token stores nothing. Started the way users start it, as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from newsml_pipeline.core.labeling.feedback_store import FeedbackStore, store_path
from newsml_pipeline.settings import DEFAULT_CONFIG_PATH
from newsml_pipeline_tests.e2e.servers import start_label_page, stop_process
from newsml_pipeline_tests.review_queue_data import make_home

QUEUE = ["q1", "q2", "q3"]
ALICE, BOB = "alice-token-0123456789", "bob-token-0123456789ab"


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NEWSML_LABEL_TOKENS"}
    return {**env, "NEWSML_HOME": str(home), "NEWSML_CONFIG": str(DEFAULT_CONFIG_PATH), **extra}


def test_off_loopback_without_credentials_it_refuses_to_start(newsml_home: Path) -> None:
    make_home(newsml_home, QUEUE, queue=QUEUE)
    cmd = [sys.executable, "-m", "newsml_pipeline.cli", "label", "--host", "0.0.0.0", "--user", "mallory"]
    done = subprocess.run(cmd, env=_env(newsml_home), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "refusing to serve the labelling page on 0.0.0.0 without credentials" in done.stderr
    assert "NEWSML_LABEL_TOKENS" in done.stderr
    assert not store_path(newsml_home / "feedback").exists()


def test_with_tokens_answers_carry_the_checked_labeller_and_bad_ones_store_nothing(newsml_home: Path) -> None:
    make_home(newsml_home, QUEUE, queue=QUEUE)
    env = _env(newsml_home, NEWSML_LABEL_TOKENS=f"alice:{ALICE}, bob:{BOB}")
    url, proc = start_label_page(env, user=None, host="0.0.0.0")
    answer = {
        "answer_id": "x1",
        "article_id": "q1",
        "action": "label",
        "label": "sport",
        "labeller": "mallory",
    }
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            for auth in (None, ("alice", BOB), ("alice", "wrong-token-0123456789"), ("mallory", ALICE)):
                r = c.post("/api/answers", json=answer, auth=auth)
                assert r.status_code == 401, (auth, r.text)
                assert r.headers["www-authenticate"].startswith("Basic")
                assert c.get("/api/state", auth=auth).status_code == 401
                assert c.get("/", auth=auth).status_code == 401
            assert FeedbackStore(store_path(newsml_home / "feedback")).answers() == []
            assert c.get("/api/state", auth=("bob", BOB)).json()["labeller"] == "bob"
            r = c.post("/api/answers", json=answer, auth=("alice", ALICE))
            assert r.status_code == 200 and r.json()["labeller"] == "alice", r.text
            # bob cannot undo alice's answer: undo is per verified labeller
            assert c.post("/api/undo", json={"answer_id": "u1"}, auth=("bob", BOB)).status_code == 409
    finally:
        stop_process(proc)
    answers = FeedbackStore(store_path(newsml_home / "feedback")).answers()
    assert [(a.article_id, a.label, a.labeller) for a in answers] == [("q1", "sport", "alice")]
