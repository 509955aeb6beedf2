"""The speed path (spaCy in a worker process) gives the same labels as the in-process one."""

import polars as pl
import torch

from newsml_pipeline.core.labeling.pipeline import label_articles
from newsml_pipeline.core.labeling.spacy_stage import shutdown_worker
from newsml_pipeline.settings import load_config


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
    try:
        worker, r_worker = label_articles(
            raw, labels_cfg=cfg.model_copy(update={"spacy_worker_min_articles": 10})
        )
    finally:
        shutdown_worker()
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
