"""The speed path (spaCy in a worker process) gives the same labels as the in-process one."""

import os
import signal
import subprocess
import sys
import time

import polars as pl
import psutil
import pytest
import torch

from newsml_pipeline.core.labeling.pipeline import label_articles
from newsml_pipeline.core.labeling.spacy_stage import SpacyWorker
from newsml_pipeline.settings import load_config


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _raw(rows, n: int) -> pl.DataFrame:
    picked = [r for r in rows if not r["duplicate_of"]][:n]
    return pl.DataFrame(
        {
            "article_id": [r["id"] for r in picked],
            "title": [r["title"] for r in picked],
            "text": [r["text"] for r in picked],
            "gold_label": [r["label"] for r in picked],
        }
    )


def test_spacy_worker_gives_the_same_labels_as_in_process(bbc_rows):
    cfg = load_config(None).labels
    raw = _raw(bbc_rows, 30)
    inline, r_inline = label_articles(
        raw, labels_cfg=cfg.model_copy(update={"spacy_worker_min_articles": None})
    )
    with SpacyWorker() as w:
        worker, r_worker = label_articles(
            raw, labels_cfg=cfg.model_copy(update={"spacy_worker_min_articles": 10}), spacy_worker=w
        )
        pids = w.pids
    assert pids, "the batch above the threshold ran in the worker"
    assert not any(_alive(pid) for pid in pids), "leaving the block stops the worker"
    assert r_inline["functions"]["keywords"]["in_worker"] is False
    assert r_worker["functions"]["keywords"]["in_worker"] is True
    assert r_worker["functions"]["entities"]["in_worker"] is True
    assert "spacy_worker_wait_s" in r_worker and "spacy_worker_wait_s" not in r_inline
    assert worker.equals(inline)
    # The embedder leaves the worker a core while it runs, and gives it back afterwards.
    threads = torch.get_num_threads()
    assert r_worker["functions"]["transductive"]["torch_threads"] == max(1, threads - 1)
    assert r_inline["functions"]["transductive"]["torch_threads"] == threads


def test_small_batches_stay_in_process(bbc_rows):
    cfg = load_config(None).labels
    assert cfg.spacy_worker_min_articles is not None
    raw = _raw(bbc_rows, 5)
    assert raw.height < cfg.spacy_worker_min_articles
    _, report = label_articles(raw, labels_cfg=cfg)
    assert report["functions"]["keywords"]["in_worker"] is False


def test_a_large_batch_without_a_worker_gets_its_own_and_stops_it(bbc_rows):
    """label_articles on a batch above the threshold, no worker passed: a worker of its own ran
    the spaCy half, and it is gone when the call returns (no process for atexit to wait on)."""
    cfg = load_config(None).labels.model_copy(update={"spacy_worker_min_articles": 10})
    before = {c.pid for c in psutil.Process().children(recursive=True)}
    _, report = label_articles(_raw(bbc_rows, 12), labels_cfg=cfg)
    assert report["functions"]["keywords"]["in_worker"] is True
    left = [c for c in psutil.Process().children(recursive=True) if c.pid not in before and _alive(c.pid)]
    assert left == []


def test_an_error_inside_the_block_kills_the_worker_at_once(bbc_rows):
    cfg = load_config(None).labels.model_copy(update={"spacy_worker_min_articles": 1})
    raw = _raw(bbc_rows, 3)
    with pytest.raises(KeyboardInterrupt), SpacyWorker() as w:
        fut = w.submit(
            raw["title"].to_list(), raw["text"].to_list(), labels_cfg=cfg, keywords=True, entities=True
        )
        fut.result(timeout=120)
        pids = w.pids
        raise KeyboardInterrupt  # what Dagster raises in a step that is cancelled
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pids and not any(_alive(p) for p in pids)


_ORPHAN_SCRIPT = """
import sys, time
from newsml_pipeline.core.labeling.spacy_stage import SpacyWorker
from newsml_pipeline.settings import load_config
if __name__ == "__main__":
    cfg = load_config(None).labels.model_copy(update={"spacy_worker_min_articles": 1})
    with SpacyWorker() as w:
        w.submit(["t"], ["Shares rose."], labels_cfg=cfg, keywords=True, entities=False).result(timeout=120)
        print(w.pids[0], flush=True)
        time.sleep(600)
"""


def test_the_worker_exits_when_its_parent_is_killed(tmp_path):
    """SIGKILL gives the parent no chance to stop its worker: the worker notices and exits."""
    script = tmp_path / "parent.py"
    script.write_text(_ORPHAN_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        worker_pid = int(parent.stdout.readline())
        assert _alive(worker_pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while _alive(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker_pid), "the spaCy worker outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
