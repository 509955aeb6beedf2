"""`label_articles`: one partition of raw articles → auto-labels + a report for asset metadata.

Runs the configured labeling functions (keywords, URL section, the embedding functions:
zero-shot and/or transductive over one embedding pass, the corpus-expanded keywords, then the
entity profile, which learns from the others' agreement), combines their votes with the label
model and leaves an article unlabelled (null) where the combined confidence is below
`labels.min_confidence`. Gold labels are only *compared* against, never used as votes.

Functions that share evidence (`labels.dependent_functions`: zero_shot + transductive read the
same embeddings; keyword_expansion learned from the keyword votes) form one group in the
Dawid–Skene model, with a joint confusion over their vote pairs, so their agreement is not
counted as two independent votes. The report lists the groups and the expanded keywords.

Speed: for batches of ≥ `labels.spacy_worker_min_articles` rows the spaCy functions run in a
worker process (`spacy_stage`) while the embedder runs here on one core fewer, so the two
single-machine bottlenecks overlap instead of queueing (≈2x end to end on 2 cores).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl

from newsml_pipeline.core.data.schema import LABELED_ARTICLES, conform, empty
from newsml_pipeline.core.labeling.functions.entities import agreement_targets, entity_votes
from newsml_pipeline.core.labeling.functions.keyword_expansion import expand_keywords, expansion_votes
from newsml_pipeline.core.labeling.functions.transductive import transductive_votes
from newsml_pipeline.core.labeling.functions.url_section import url_section_votes
from newsml_pipeline.core.labeling.functions.zero_shot import (
    class_fit,
    configured_zero_shot_embeddings,
    embed,
    zero_shot_votes_from_scores,
)
from newsml_pipeline.core.labeling.label_model import DawidSkene, labels_from_proba, majority_vote
from newsml_pipeline.core.labeling.schema import ABSTAIN, LabelSchema
from newsml_pipeline.core.labeling.spacy_stage import (
    SpacyWorker,
    lemmatizer,
    start_spacy_features,
    wants_worker,
)
from newsml_pipeline.settings import LabelsConfig

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("article_id", "title", "text")

# Kept importable here: the evaluation baselines and tests use it.
_lemmatizer = lemmatizer


def compute_votes(
    titles: list[str],
    texts: list[str],
    urls: list[str | None],
    *,
    labels_cfg: LabelsConfig,
    spacy_worker: SpacyWorker | None = None,
) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Vote matrix (n, m) of the configured functions (in config order), their names, and
    per-function info (timings, the entity model's teacher size).

    The spaCy work (keywords, NER profiles) starts first (in a worker process for large
    batches, see `spacy_stage`) so that it overlaps the sentence embedder running here.
    `spacy_worker`: an open worker to use (callers labelling many batches keep one open);
    without one, a large batch gets a worker of its own, stopped before this returns.
    """
    if spacy_worker is None and wants_worker(len(texts), labels_cfg):
        with SpacyWorker() as own:
            return compute_votes(titles, texts, urls, labels_cfg=labels_cfg, spacy_worker=own)
    schema = LabelSchema.from_config(labels_cfg)
    names = list(labels_cfg.functions)
    cols: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {}
    n = len(titles)
    # The expansion learns from the seed keyword votes, so they are computed whenever it runs.
    want_keywords = "keywords" in names or "keyword_expansion" in names
    job = start_spacy_features(
        titles,
        texts,
        labels_cfg=labels_cfg,
        keywords=want_keywords,
        entities="entities" in names,
        worker=spacy_worker,
    )
    if "url_section" in names:
        t0 = time.perf_counter()
        cols["url_section"] = url_section_votes(urls, schema=schema)
        info["url_section"] = {"seconds": round(time.perf_counter() - t0, 3)}
        _log_votes("url_section", cols["url_section"], info["url_section"]["seconds"])
    if "zero_shot" in names or "transductive" in names:
        # One embedding pass feeds both embedding functions.
        t0 = time.perf_counter()
        with _torch_threads(labels_cfg.embedding_threads, beside_worker=job.in_worker) as threads_used:
            docs, protos = configured_zero_shot_embeddings(
                titles, texts, labels_cfg=labels_cfg, schema=schema
            )
        embed_s = round(time.perf_counter() - t0, 3)
        # How well the best class fits each article (drift's `no_fit` signal reads it).
        info["class_fit"] = class_fit(docs, protos)
        if "zero_shot" in names:
            cols["zero_shot"] = zero_shot_votes_from_scores(docs @ protos.T)
            info["zero_shot"] = {"seconds": embed_s, "torch_threads": threads_used}
            _log_votes("zero_shot", cols["zero_shot"], embed_s)
        if "transductive" in names:
            t0 = time.perf_counter()
            cols["transductive"], tr_info = transductive_votes(docs, protos)
            secs = round(time.perf_counter() - t0 + (0.0 if "zero_shot" in names else embed_s), 3)
            info["transductive"] = {"seconds": secs, **tr_info}
            if "zero_shot" not in names:
                info["transductive"]["torch_threads"] = threads_used
            _log_votes("transductive", cols["transductive"], secs)
    t0 = time.perf_counter()
    feats = job.result()
    wait_s = round(time.perf_counter() - t0, 3)
    if "keywords" in names:
        cols["keywords"] = feats.keyword_votes
        info["keywords"] = {"seconds": feats.seconds["keywords"], "in_worker": feats.in_worker}
        _log_votes("keywords", cols["keywords"], feats.seconds["keywords"])
    if "keyword_expansion" in names:
        t0 = time.perf_counter()
        cols["keyword_expansion"], terms = _expanded_keyword_votes(
            titles, texts, feats.keyword_votes, schema=schema, labels_cfg=labels_cfg
        )
        secs = round(time.perf_counter() - t0, 3)
        info["keyword_expansion"] = {"seconds": secs, "terms_added": sum(len(t) for t in terms.values())}
        info["expanded_keywords"] = terms  # not a per-function stat: reported on its own
        _log_votes("keyword_expansion", cols["keyword_expansion"], secs)
    if "entities" in names:
        t0 = time.perf_counter()
        others = np.stack([cols[f] for f in names if f != "entities"], axis=1) if len(names) > 1 else None
        if others is None:
            others = np.zeros((n, 0), np.int64)
        cols["entities"], ent_info = entity_votes(
            feats.entity_profiles, agreement_targets(others), k=schema.k
        )
        secs = round(feats.seconds["entities_ner"] + time.perf_counter() - t0, 3)
        info["entities"] = {"seconds": secs, "in_worker": feats.in_worker, **ent_info}
        _log_votes("entities", cols["entities"], secs)
    if feats.in_worker:
        # Time the embedder's side waited for the spaCy worker (0 = spaCy fully overlapped).
        info["spacy_worker_wait_s"] = wait_s
    votes = np.stack([cols[f] for f in names], axis=1) if names else np.zeros((n, 0), np.int64)
    return votes.astype(np.int64), names, info


def _expanded_keyword_votes(
    titles: list[str],
    texts: list[str],
    seed_votes: np.ndarray,
    *,
    schema: LabelSchema,
    labels_cfg: LabelsConfig,
) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Votes of the corpus-expanded keywords and the terms per category name (for the report)."""
    from newsml_pipeline.core.labeling import nlp_cache

    model = nlp_cache.sentence_model(labels_cfg.embedding_model)
    terms = expand_keywords(
        titles,
        texts,
        seed_votes,
        schema=schema,
        per_class=labels_cfg.keyword_expansion_terms,
        embed_terms=lambda words: embed(words, model=model, max_tokens=16, batch_size=128, bf16=False),
    )
    votes = expansion_votes(titles, texts, terms, title_weight=labels_cfg.title_weight)
    by_name = dict(zip(schema.names, terms, strict=True))
    log.info("keyword expansion: %s", {c: ts[:5] for c, ts in by_name.items()})
    return votes, by_name


@contextlib.contextmanager
def _torch_threads(threads: int | None, *, beside_worker: bool) -> Iterator[int]:
    """Set torch's intra-op threads for the embedder: `threads`, or else one fewer than now
    while the spaCy worker occupies a core (torch's thread team slows down badly when a core
    it spins on is taken), and restore the previous count afterwards."""
    import torch

    before = torch.get_num_threads()
    want = threads if threads is not None else (max(1, before - 1) if beside_worker else before)
    if want != before:
        torch.set_num_threads(want)
        log.info("embedder uses %d torch threads (was %d)", want, before)
    try:
        yield want
    finally:
        if want != before:
            torch.set_num_threads(before)


def _log_votes(fn: str, votes: np.ndarray, seconds: float) -> None:
    log.info(
        "labeling function %s: %d/%d votes in %.1fs", fn, int((votes != ABSTAIN).sum()), len(votes), seconds
    )


def dependent_groups(names: list[str], groups: list[list[str]]) -> list[list[int]]:
    """Column indices of the configured dependent groups, restricted to the functions that run
    (a group with one member left is just that function)."""
    out = []
    for g in groups:
        idx = [names.index(f) for f in g if f in names]
        if len(idx) > 1:
            out.append(idx)
    return out


def combine_votes(
    votes: np.ndarray,
    *,
    k: int,
    method: str,
    min_confidence: float,
    groups: list[list[int]] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Labels (n,) with ABSTAIN, confidence (n,), and the label model's learned parameters.
    `groups`: column indices of functions with correlated errors (see DawidSkene)."""
    if method == "majority_vote":
        labels, conf = majority_vote(votes, k=k)
        labels = np.where(conf >= min_confidence, labels, ABSTAIN)
        return labels, conf, {}
    if method != "dawid_skene":
        raise ValueError(f"unknown label model {method!r}; use dawid_skene or majority_vote")
    model = DawidSkene(k=k, groups=groups).fit(votes)
    labels, conf = labels_from_proba(model.predict_proba(votes), min_confidence=min_confidence)
    return (
        labels,
        conf,
        {"estimated_accuracy": model.function_accuracies().tolist(), "em_iterations": model.n_iter_},
    )


def _gold_for(raw: pl.DataFrame, feedback: pl.DataFrame | None) -> list[str | None]:
    """Trusted label per raw row: feedback first, then the source's gold_label."""
    gold = raw["gold_label"].to_list() if "gold_label" in raw.columns else [None] * raw.height
    if feedback is not None and feedback.height:
        for col in ("article_id", "label"):
            if col not in feedback.columns:
                raise ValueError(f"feedback frame lacks column {col!r} (has {feedback.columns})")
        fb = dict(zip(feedback["article_id"].to_list(), feedback["label"].to_list(), strict=True))
        gold = [fb.get(a, g) for a, g in zip(raw["article_id"].to_list(), gold, strict=True)]
    return gold


def build_report(
    *,
    votes: np.ndarray,
    names: list[str],
    labels: np.ndarray,
    gold: list[str | None],
    schema: LabelSchema,
    info: dict[str, Any],
    model_info: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    """Plain JSON-able metrics: coverage, class distribution, per-function coverage/agreement,
    and accuracy against gold labels where any exist."""
    n = len(labels)
    covered = labels != ABSTAIN
    report: dict[str, Any] = {
        "n_articles": n,
        "coverage": float(covered.mean()) if n else 0.0,
        "class_distribution": {c: int((labels == i).sum()) for i, c in enumerate(schema.names)},
        "abstained": int((~covered).sum()),
        "seconds": round(seconds, 3),
        "articles_per_s": round(n / seconds, 2) if seconds > 0 else None,
        "functions": {},
    }
    gold_idx = np.array(
        [schema.names.index(g) if g in schema.names else ABSTAIN for g in gold], dtype=np.int64
    )
    has_gold = gold_idx != ABSTAIN
    est = model_info.get("estimated_accuracy")
    for j, fn in enumerate(names):
        v = votes[:, j]
        voted = v != ABSTAIN
        both = voted & covered
        entry: dict[str, Any] = {
            "coverage": float(voted.mean()) if n else 0.0,
            "agreement_with_label": float((v[both] == labels[both]).mean()) if both.any() else None,
            **info.get(fn, {}),
        }
        if est is not None:
            entry["estimated_accuracy"] = round(float(est[j]), 4)
        g = voted & has_gold
        if g.any():
            entry["accuracy_vs_gold"] = float((v[g] == gold_idx[g]).mean())
        report["functions"][fn] = entry
    report["gold_rows"] = int(has_gold.sum())
    if has_gold.any():
        cg = covered & has_gold
        report["accuracy_vs_gold"] = float((labels[cg] == gold_idx[cg]).mean()) if cg.any() else None
        report["coverage_on_gold"] = float(cg.sum() / has_gold.sum())
        per_class = {}
        for i, c in enumerate(schema.names):
            m = cg & (gold_idx == i)
            per_class[c] = float((labels[m] == i).mean()) if m.any() else None
        report["accuracy_vs_gold_per_class"] = per_class
    if "spacy_worker_wait_s" in info:
        report["spacy_worker_wait_s"] = info["spacy_worker_wait_s"]
    if model_info.get("em_iterations") is not None:
        report["em_iterations"] = model_info["em_iterations"]
    return report


def label_articles(
    raw: pl.DataFrame,
    *,
    labels_cfg: LabelsConfig,
    feedback: pl.DataFrame | None = None,
    spacy_worker: SpacyWorker | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Auto-label a batch (one partition) of raw_articles rows.

    Returns (labeled, report): `labeled` conforms to LABELED_ARTICLES (article_id, partition_date,
    label | null, confidence, votes JSON) plus `gold_label` (trusted label used only for the
    report, null where none); `report` is JSON-able metadata (see `build_report`). `feedback`
    (article_id, label) overrides source gold labels in the comparison only. `spacy_worker`:
    see `compute_votes` (pass one to label many partitions with one spaCy load).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"label_articles: raw frame lacks columns {missing} (has {raw.columns})")
    dupes = raw.height - raw["article_id"].n_unique()
    if dupes:
        raise ValueError(f"label_articles: {dupes} duplicate article_id values in the input batch")
    schema = LabelSchema.from_config(labels_cfg)
    t0 = time.perf_counter()
    titles = [t or "" for t in raw["title"].to_list()]
    texts = [t or "" for t in raw["text"].to_list()]
    urls = raw["url"].to_list() if "url" in raw.columns else [None] * raw.height
    gold = _gold_for(raw, feedback)
    if raw.height == 0:
        labeled = empty(LABELED_ARTICLES).with_columns(
            pl.lit(None, pl.Float64).alias("class_fit"), pl.lit(None, pl.String).alias("gold_label")
        )
        return labeled, {
            "n_articles": 0,
            "coverage": 0.0,
            "class_distribution": dict.fromkeys(schema.names, 0),
        }
    votes, names, info = compute_votes(titles, texts, urls, labels_cfg=labels_cfg, spacy_worker=spacy_worker)
    fit = info.pop("class_fit", None)  # per row, not a report figure
    labels, conf, model_info = combine_votes(
        votes,
        k=schema.k,
        method=labels_cfg.label_model,
        min_confidence=labels_cfg.min_confidence,
        groups=dependent_groups(names, labels_cfg.dependent_functions),
    )
    seconds = time.perf_counter() - t0
    vote_json = [
        json.dumps({fn: schema.name_of(int(v)) for fn, v in zip(names, row, strict=True)}) for row in votes
    ]
    dates = (
        raw["partition_date"]
        if "partition_date" in raw.columns
        else pl.Series([None] * raw.height, dtype=pl.Date)
    )
    labeled = pl.DataFrame(
        {
            "article_id": raw["article_id"],
            "partition_date": dates,
            "label": [schema.name_of(int(v)) for v in labels],
            "confidence": conf.astype(np.float64),
            "votes": vote_json,
            "class_fit": [None] * raw.height if fit is None else fit.astype(np.float64),
            "gold_label": gold,
        },
        schema_overrides={
            "label": pl.String,
            "gold_label": pl.String,
            "partition_date": pl.Date,
            "class_fit": pl.Float64,
        },
    )
    report = build_report(
        votes=votes,
        names=names,
        labels=labels,
        gold=gold,
        schema=schema,
        info=info,
        model_info=model_info,
        seconds=seconds,
    )
    report["label_model"] = labels_cfg.label_model
    report["dependent_groups"] = [
        [names[j] for j in g] for g in dependent_groups(names, labels_cfg.dependent_functions)
    ]
    if "expanded_keywords" in info:
        # Category name -> the terms the corpus added to its keywords (for the asset metadata).
        report["expanded_keywords"] = info["expanded_keywords"]
    log.info(
        "labelled %d articles: coverage %.3f, %.1f articles/s",
        raw.height,
        report["coverage"],
        report["articles_per_s"] or 0,
    )
    return conform(labeled, LABELED_ARTICLES, table="labeled_articles"), report
