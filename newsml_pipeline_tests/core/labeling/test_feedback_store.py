"""The labelling page's answer store: append-only, idempotent, concurrent writers lose nothing."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import polars as pl
import pytest

from newsml_pipeline.core.labeling.feedback import parse_feedback_dir
from newsml_pipeline.core.labeling.feedback_store import (
    AnswerIdConflict,
    FeedbackStore,
    NothingToUndo,
    StoreError,
    page_feedback,
    read_current_labels,
    store_path,
)
from newsml_pipeline.core.labeling.trusted import collect_trusted_labels


@pytest.fixture
def store(tmp_path: Path) -> FeedbackStore:
    return FeedbackStore(tmp_path / "feedback" / "labels.sqlite")


def _current(store: FeedbackStore) -> dict[str, str]:
    return dict(store.current_labels().select("article_id", "label").iter_rows())


def test_current_label_is_the_latest_label_not_undone(store: FeedbackStore) -> None:
    store.record(answer_id="1", article_id="a", action="label", label="sport", labeller="ann")
    store.record(answer_id="2", article_id="a", action="label", label="tech", labeller="bob")
    store.record(answer_id="3", article_id="b", action="label", label="business", labeller="ann")
    assert _current(store) == {"a": "tech", "b": "business"}
    # ann's latest is b: undoing it removes b, a stays bob's tech
    rec = store.undo_last(answer_id="4", labeller="ann")
    assert (rec.undone.article_id, rec.undone.label) == ("b", "business")
    assert _current(store) == {"a": "tech"}
    # bob undoes his tech: a falls back to ann's earlier sport (the latest label not undone)
    store.undo_last(answer_id="5", labeller="bob")
    assert _current(store) == {"a": "sport"}
    # a second undo by ann walks further back, to her first answer
    store.undo_last(answer_id="6", labeller="ann")
    assert _current(store) == {}
    with pytest.raises(NothingToUndo):
        store.undo_last(answer_id="7", labeller="ann")
    # append-only: every answer (labels and undos) is still there, with who and when
    answers = store.answers()
    assert [a.action for a in answers] == ["label", "label", "label", "undo", "undo", "undo"]
    assert [a.undoes for a in answers[3:]] == [3, 2, 1]
    assert all(
        a.answered_at.tzinfo is not None and a.answered_at.utcoffset().total_seconds() == 0 for a in answers
    )


def test_skip_is_per_labeller_and_undoable(store: FeedbackStore) -> None:
    store.record(answer_id="s1", article_id="a", action="skip", labeller="ann")
    assert store.skipped_by("ann") == {"a"} and store.skipped_by("bob") == set()
    assert _current(store) == {}
    rec = store.undo_last(answer_id="u1", labeller="ann")
    assert rec.undone.action == "skip"
    assert store.skipped_by("ann") == set()


def test_double_submit_is_stored_once(store: FeedbackStore) -> None:
    first = store.record(answer_id="x", article_id="a", action="label", label="sport", labeller="ann")
    again = store.record(answer_id="x", article_id="a", action="label", label="sport", labeller="ann")
    assert not first.already_recorded and again.already_recorded
    assert again.answer.id == first.answer.id
    assert len(store.answers()) == 1
    u1 = store.undo_last(answer_id="u", labeller="ann")
    u2 = store.undo_last(answer_id="u", labeller="ann")  # a retried undo does not undo twice
    assert u2.already_recorded and u2.undone.id == u1.undone.id == first.answer.id
    assert len(store.answers()) == 2


def test_reused_answer_id_with_other_content_is_refused(store: FeedbackStore) -> None:
    store.record(answer_id="x", article_id="a", action="label", label="sport", labeller="ann")
    with pytest.raises(AnswerIdConflict, match="already stored"):
        store.record(answer_id="x", article_id="a", action="label", label="tech", labeller="ann")
    with pytest.raises(AnswerIdConflict):
        store.undo_last(answer_id="x", labeller="ann")
    assert len(store.answers()) == 1 and _current(store) == {"a": "sport"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"answer_id": "", "article_id": "a", "action": "label", "label": "sport"},
        {"answer_id": "1", "article_id": " ", "action": "label", "label": "sport"},
        {"answer_id": "1", "article_id": "a", "action": "label", "label": None},
        {"answer_id": "1", "article_id": "a", "action": "skip", "label": "sport"},
        {"answer_id": "1", "article_id": "a", "action": "undo", "label": None},
    ],
)
def test_malformed_answers_are_refused_and_nothing_is_written(store: FeedbackStore, kwargs) -> None:
    with pytest.raises(StoreError):
        store.record(labeller="ann", **kwargs)
    assert store.answers() == []


def test_wal_mode_is_on(store: FeedbackStore) -> None:
    import sqlite3

    con = sqlite3.connect(store.path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        con.close()


def _write_many(path: str, labeller: str, n: int, barrier) -> None:  # noqa: ANN001
    barrier.wait()
    s = FeedbackStore(path)
    for i in range(n):
        s.record(
            answer_id=f"{labeller}-{i}",
            article_id=f"{labeller}-a{i}",
            action="label",
            label="sport",
            labeller=labeller,
        )
        if i % 10 == 9:
            s.undo_last(answer_id=f"{labeller}-undo-{i}", labeller=labeller)


def test_two_processes_labelling_at_once_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "labels.sqlite")
    FeedbackStore(path)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_write_many, args=(path, who, 60, barrier)) for who in ("ann", "bob")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    answers = FeedbackStore(path).answers()
    for who in ("ann", "bob"):
        mine = [a for a in answers if a.labeller == who]
        assert sorted(a.answer_id for a in mine if a.action == "label") == sorted(
            f"{who}-{i}" for i in range(60)
        )
        assert len([a for a in mine if a.action == "undo"]) == 6
    # each undo cancelled that labeller's own latest answer: every 10th article is unlabelled
    current = set(FeedbackStore(path).current_labels()["article_id"])
    expected = {f"{w}-a{i}" for w in ("ann", "bob") for i in range(60) if i % 10 != 9}
    assert current == expected


def test_threads_racing_to_undo_undo_each_answer_once(store: FeedbackStore) -> None:
    for i in range(5):
        store.record(answer_id=f"l{i}", article_id=f"a{i}", action="label", label="tech", labeller="ann")
    results, errors = [], []

    def undo(i: int) -> None:
        try:
            results.append(store.undo_last(answer_id=f"u{i}", labeller="ann").undone.id)
        except NothingToUndo as e:
            errors.append(e)

    threads = [threading.Thread(target=undo, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [1, 2, 3, 4, 5] and len(errors) == 3
    assert _current(store) == {}


def test_a_killed_process_keeps_every_answer_it_confirmed(tmp_path: Path) -> None:
    """The writer is SIGKILLed right after `record` returned: the answer is on disk."""
    path = tmp_path / "labels.sqlite"
    code = textwrap.dedent(
        f"""
        import sys, time
        from newsml_pipeline.core.labeling.feedback_store import FeedbackStore
        s = FeedbackStore({str(path)!r})
        for i in range(3):
            s.record(answer_id=f"k{{i}}", article_id=f"a{{i}}", action="label", label="sport", labeller="ann")
        print("recorded", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "recorded"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert sorted(_current(FeedbackStore(path))) == ["a0", "a1", "a2"]


def test_read_current_labels_without_a_store_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    frame = read_current_labels(tmp_path / "none" / "labels.sqlite")
    assert frame.height == 0 and not (tmp_path / "none").exists()


def test_page_feedback_drops_and_reports_unknown_labels_and_gone_articles(store: FeedbackStore) -> None:
    store.record(answer_id="1", article_id="a", action="label", label="sport", labeller="ann")
    store.record(answer_id="2", article_id="gone", action="label", label="sport", labeller="ann")
    store.record(answer_id="3", article_id="b", action="label", label="weather", labeller="ann")
    kept, problems = page_feedback(store.current_labels(), labels=["sport", "tech"], known_ids={"a", "b"})
    assert kept["article_id"].to_list() == ["a"]
    assert len(problems) == 2
    assert any("labels.sqlite:2" in p and "no longer in raw_articles" in p for p in problems)
    assert any("labels.sqlite:3" in p and "'weather'" in p for p in problems)


def test_feedback_files_ignore_the_store_and_the_page_wins_over_files(tmp_path: Path) -> None:
    folder = tmp_path / "feedback"
    s = FeedbackStore(store_path(folder))
    s.record(answer_id="1", article_id="a", action="label", label="tech", labeller="ann")
    (folder / "old.csv").write_text("article_id,label\na,sport\nb,sport\n", encoding="utf-8")
    known = pl.DataFrame(
        {"article_id": ["a", "b", "c"], "url": [None, None, None], "gold_label": [None, None, "sport"]}
    )
    # labels.sqlite and its -wal/-shm files are the store's, not unsupported feedback files
    assert parse_feedback_dir(folder, labels=["sport", "tech"], known_articles=known).problems == []
    trusted = collect_trusted_labels(known=known, feedback_dir=folder, labels=["sport", "tech"])
    got = {r["article_id"]: (r["label"], r["label_origin"]) for r in trusted.gold.to_dicts()}
    assert got == {"a": ("tech", "feedback"), "b": ("sport", "feedback"), "c": ("sport", "source")}
    assert (trusted.from_page, trusted.from_files) == (1, 1)
    assert any("old.csv:2" in line and "labelling page" in line for line in trusted.overridden)
