"""The spaCy half of labelling (keyword lemmas, NER entity profiles), optionally in a worker process.

spaCy runs on one core; the sentence embedder is the other big cost. On a small machine the two
overlap well when spaCy runs in a second process while the embedder runs in this one, so for
large batches the work goes to a `SpacyWorker`: one spawned process (`spawn` is safe after torch
started its threads) that loads spaCy once and serves every batch of a `with` block.

The worker belongs to the code that opens it: `with SpacyWorker() as worker:` stops it on
success and kills it on failure or cancellation (a Dagster step interrupted from the UI raises
inside the block). It also exits by itself if its parent process dies (SIGKILL, OOM): it never
outlives the step that started it, and nothing waits for it at interpreter exit. Small batches
(e.g. a serving request) run in-process: shipping them to a worker costs more than it saves.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from newsml_pipeline.core.labeling import nlp_cache
from newsml_pipeline.core.labeling.functions.entities import entity_profiles
from newsml_pipeline.core.labeling.functions.keywords import keyword_votes
from newsml_pipeline.core.labeling.lemmas import Lemmatizer
from newsml_pipeline.core.labeling.schema import LabelSchema
from newsml_pipeline.core.worker_processes import exit_with_parent
from newsml_pipeline.settings import LabelsConfig

log = logging.getLogger(__name__)

_LEMMATIZERS: dict[int, Lemmatizer] = {}


def lemmatizer() -> Lemmatizer:
    """The cached Lemmatizer over the cached spaCy pipeline of this process."""
    nlp = nlp_cache.spacy_ner()
    lem = _LEMMATIZERS.get(id(nlp))
    if lem is None:
        lem = _LEMMATIZERS[id(nlp)] = Lemmatizer(nlp)
    return lem


@dataclass
class SpacyFeatures:
    """What the spaCy functions produce: keyword votes and/or entity profiles, plus timings."""

    keyword_votes: np.ndarray | None = None
    entity_profiles: np.ndarray | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    in_worker: bool = False


def spacy_features(
    titles: list[str], texts: list[str], *, labels_cfg: LabelsConfig, keywords: bool, entities: bool
) -> SpacyFeatures:
    """Run the keyword function and/or the NER entity profiles in this process."""
    out = SpacyFeatures()
    if keywords:
        t0 = time.perf_counter()
        out.keyword_votes = keyword_votes(
            titles,
            texts,
            schema=LabelSchema.from_config(labels_cfg),
            lemmatizer=lemmatizer(),
            title_weight=labels_cfg.title_weight,
        )
        out.seconds["keywords"] = round(time.perf_counter() - t0, 3)
    if entities:
        t0 = time.perf_counter()
        out.entity_profiles, _ = entity_profiles(
            titles, texts, nlp=nlp_cache.spacy_ner(), max_chars=labels_cfg.entity_chars
        )
        out.seconds["entities_ner"] = round(time.perf_counter() - t0, 3)
    return out


def _worker_features(
    titles: list[str], texts: list[str], labels_cfg: LabelsConfig, keywords: bool, entities: bool
) -> SpacyFeatures:
    out = spacy_features(titles, texts, labels_cfg=labels_cfg, keywords=keywords, entities=entities)
    out.in_worker = True
    return out


def _warm_worker(parent_pid: int) -> None:
    """Worker initializer: die with the parent, then load spaCy (and the lemmatizer) once."""
    exit_with_parent(parent_pid)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s spacy-worker %(name)s %(message)s")
    lemmatizer()


class SpacyWorker:
    """The spaCy worker process, owned by a `with` block (see the module docstring).

    `submit` runs the spaCy functions in the worker and returns a future. Leaving the block
    normally waits for the worker to stop; leaving it with an exception (including Dagster's
    interrupt on cancellation) kills it at once, so no job keeps a core after its step ended.
    """

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> SpacyWorker:
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_warm_worker,
            initargs=(os.getpid(),),
        )
        log.info("started the spaCy worker process")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: Any) -> None:
        self.close(kill=exc_type is not None)

    @property
    def pids(self) -> list[int]:
        """Process ids of the live worker(s); empty before the first job or after close."""
        procs = getattr(self._pool, "_processes", None) or {}
        return [p.pid for p in procs.values() if p.is_alive()]

    def submit(
        self, titles: list[str], texts: list[str], *, labels_cfg: LabelsConfig, keywords: bool, entities: bool
    ) -> Future:
        if self._pool is None:
            raise RuntimeError("SpacyWorker is not open; use `with SpacyWorker() as worker:`")
        return self._pool.submit(_worker_features, list(titles), list(texts), labels_cfg, keywords, entities)

    def close(self, *, kill: bool = False) -> None:
        """Stop the worker: wait for it (normal end) or terminate it now (`kill`, on errors)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if kill:
            # ProcessPoolExecutor has no public kill before Python 3.14 (terminate_workers()).
            procs = list((getattr(pool, "_processes", None) or {}).values())
            for p in procs:
                p.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            for p in procs:
                p.join(timeout=5)
                if p.is_alive():
                    p.kill()
            log.info("killed the spaCy worker process")
        else:
            pool.shutdown(wait=True, cancel_futures=True)
            log.info("stopped the spaCy worker process")


def wants_worker(n_articles: int, labels_cfg: LabelsConfig) -> bool:
    """True when a batch is large enough for the worker (labels.spacy_worker_min_articles)."""
    threshold = labels_cfg.spacy_worker_min_articles
    return threshold is not None and n_articles >= threshold


@contextlib.contextmanager
def spacy_worker_for(n_articles: int, labels_cfg: LabelsConfig) -> Iterator[SpacyWorker | None]:
    """A worker for a batch this large (closed at the end of the block), else None."""
    if not wants_worker(n_articles, labels_cfg):
        yield None
        return
    with SpacyWorker() as worker:
        yield worker


class SpacyJob:
    """Handle on spaCy work that is either running in the worker or deferred to `result()`."""

    def __init__(self, run_inline: Any | None, future: Future | None) -> None:
        self._inline = run_inline
        self._future = future

    @property
    def in_worker(self) -> bool:
        """True while/when the work runs in the worker process (concurrently with the caller)."""
        return self._future is not None

    def result(self) -> SpacyFeatures:
        if self._future is None:
            return self._inline()
        try:
            return self._future.result()
        except BrokenProcessPool as e:
            raise RuntimeError(
                "the spaCy worker process died while labelling (out of memory, or a calling script "
                "without the `if __name__ == '__main__':` guard that spawned processes need); set "
                "labels.spacy_worker_min_articles: null to run spaCy in-process"
            ) from e


def start_spacy_features(
    titles: list[str],
    texts: list[str],
    *,
    labels_cfg: LabelsConfig,
    keywords: bool,
    entities: bool,
    worker: SpacyWorker | None = None,
) -> SpacyJob:
    """Start the spaCy work: in `worker` when one is given and the batch has ≥
    labels.spacy_worker_min_articles rows, else deferred to run in-process at `result()`."""
    if (keywords or entities) and worker is not None and wants_worker(len(texts), labels_cfg):
        fut = worker.submit(titles, texts, labels_cfg=labels_cfg, keywords=keywords, entities=entities)
        return SpacyJob(None, fut)
    return SpacyJob(
        lambda: spacy_features(titles, texts, labels_cfg=labels_cfg, keywords=keywords, entities=entities),
        None,
    )
