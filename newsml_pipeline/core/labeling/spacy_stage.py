"""The spaCy half of labelling (keyword lemmas, NER entity profiles), optionally in a worker process.

spaCy runs on one core; the sentence embedder is the other big cost. On a small machine the two
overlap well when spaCy runs in a second process while the embedder runs in this one, so for
large batches `start_spacy_features` hands the work to a single long-lived worker (spawned
once per process, so spaCy loads once; `spawn` is safe after torch started its threads) and
returns a future. Small batches (e.g. a serving request) run in-process: shipping them to a
worker costs more than it saves.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
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
from newsml_pipeline.settings import LabelsConfig

log = logging.getLogger(__name__)

_LEMMATIZERS: dict[int, Lemmatizer] = {}
_POOL: ProcessPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


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


def _warm_worker() -> None:
    """Worker initializer: load spaCy (and the rule lemmatizer) once, before the first job."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s spacy-worker %(name)s %(message)s")
    lemmatizer()


def _pool() -> ProcessPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_warm_worker
            )
            log.info("started the spaCy worker process")
        return _POOL


def shutdown_worker() -> None:
    """Stop the worker process (it is restarted on the next large batch)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.shutdown(wait=True)
            _POOL = None


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
            shutdown_worker()
            raise RuntimeError(
                "the spaCy worker process died while labelling (out of memory, or a calling script "
                "without the `if __name__ == '__main__':` guard that spawned processes need); set "
                "labels.spacy_worker_min_articles: null to run spaCy in-process"
            ) from e


def start_spacy_features(
    titles: list[str], texts: list[str], *, labels_cfg: LabelsConfig, keywords: bool, entities: bool
) -> SpacyJob:
    """Start the spaCy work: in the worker when the batch has ≥ labels.spacy_worker_min_articles
    rows (None = never), else deferred to run in-process when `result()` is called."""
    threshold = labels_cfg.spacy_worker_min_articles
    if (keywords or entities) and threshold is not None and len(texts) >= threshold:
        fut = _pool().submit(_worker_features, list(titles), list(texts), labels_cfg, keywords, entities)
        return SpacyJob(None, fut)
    return SpacyJob(
        lambda: spacy_features(titles, texts, labels_cfg=labels_cfg, keywords=keywords, entities=entities),
        None,
    )
