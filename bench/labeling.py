"""Auto-labeling benchmark on the BBC corpus (5 gold topics) with the shipped default schema.

Reports accuracy vs gold (overall and per class), coverage, each labeling function's
accuracy/coverage, the Dawid-Skene label model beside a plain majority vote, and articles/s end
to end (spaCy + embeddings + label model; one-time model loading is timed separately).

    python bench/labeling.py [--limit N] [--config PATH] [--corpus PATH] [--compare]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provenance import provenance  # noqa: E402

from newsml_pipeline.core.labeling import nlp_cache  # noqa: E402
from newsml_pipeline.core.labeling.pipeline import combine_votes, label_articles  # noqa: E402
from newsml_pipeline.core.labeling.schema import ABSTAIN, LabelSchema  # noqa: E402
from newsml_pipeline.settings import DEFAULT_CONFIG_PATH, load_config  # noqa: E402
from testkit.corpora import BBC_CORPUS, load_bbc  # noqa: E402

DEFAULT_CORPUS = BBC_CORPUS


def scores(pred: np.ndarray, gold: np.ndarray, names: tuple[str, ...]) -> dict:
    covered = pred != ABSTAIN
    out = {
        "coverage": float(covered.mean()),
        "accuracy_on_covered": float((pred[covered] == gold[covered]).mean()) if covered.any() else None,
        "accuracy_all": float((pred == gold).mean()),  # abstain counts as wrong
        "per_class_accuracy": {},
    }
    for i, c in enumerate(names):
        m = covered & (gold == i)
        out["per_class_accuracy"][c] = float((pred[m] == i).mean()) if m.any() else None
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    ap.add_argument("--limit", type=int, default=None, help="first N articles only")
    ap.add_argument(
        "--compare",
        action="store_true",
        help="also time spaCy in-process (sequential) and the worker beside an all-threads embedder, same run",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "labeling.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not args.corpus.exists():
        print(f"corpus not found: {args.corpus}", file=sys.stderr)
        return 2

    cfg = load_config(args.config)
    labels_cfg = cfg.labels
    schema = LabelSchema.from_config(labels_cfg)
    raw = load_bbc(args.corpus, limit=args.limit)

    t0 = time.perf_counter()
    nlp_cache.spacy_ner()
    nlp_cache.sentence_model(labels_cfg.embedding_model)
    load_s = time.perf_counter() - t0

    variants = {}
    if args.compare:
        import torch

        threads = torch.get_num_threads()
        for name, cfg_v in (
            ("spaCy in-process, sequential", {"spacy_worker_min_articles": None}),
            (f"spaCy worker + {threads} torch threads", {"embedding_threads": threads}),
        ):
            t0 = time.perf_counter()
            _, rep = label_articles(raw, labels_cfg=labels_cfg.model_copy(update=cfg_v))
            variants[name] = {
                "seconds": round(time.perf_counter() - t0, 2),
                "articles_per_s": round(raw.height / (time.perf_counter() - t0), 1),
                "coverage": rep["coverage"],
                "accuracy_vs_gold": rep["accuracy_vs_gold"],
                "stage_seconds": {f: rep["functions"][f].get("seconds") for f in rep["functions"]},
                "torch_threads": rep["functions"].get("zero_shot", {}).get("torch_threads"),
                "load_average_1m": os.getloadavg()[0],
            }

    t0 = time.perf_counter()
    labeled, report = label_articles(raw, labels_cfg=labels_cfg)
    run_s = time.perf_counter() - t0

    gold = np.array([schema.index(g) for g in raw["gold_label"].to_list()])
    names = list(report["functions"])
    votes = np.array(
        [
            [ABSTAIN if d[f] is None else schema.index(d[f]) for f in names]
            for d in map(json.loads, labeled["votes"])
        ],
        dtype=np.int64,
    ).reshape(len(gold), len(names))
    ds_pred = np.array([ABSTAIN if v is None else schema.index(v) for v in labeled["label"].to_list()])
    mv_pred, _, _ = combine_votes(votes, k=schema.k, method="majority_vote", min_confidence=0.0)

    # Same coverage as the majority vote: the label model's most confident rows.
    conf = labeled["confidence"].to_numpy()
    proba_label = np.array([ABSTAIN if v is None else schema.index(v) for v in labeled["label"].to_list()])
    n_mv = int((mv_pred != ABSTAIN).sum())
    top = np.argsort(-conf, kind="stable")[:n_mv]
    ds_at_mv_cov = float((proba_label[top] == gold[top]).mean()) if n_mv else None

    funcs = {}
    for j, f in enumerate(names):
        s = scores(votes[:, j], gold, schema.names)
        funcs[f] = {
            "coverage": s["coverage"],
            "accuracy_on_covered": s["accuracy_on_covered"],
            "estimated_accuracy": report["functions"][f].get("estimated_accuracy"),
        }
    result = {
        "corpus": str(args.corpus),
        "config": str(args.config),
        "n_articles": raw.height,
        "label_model": scores(ds_pred, gold, schema.names),
        "majority_vote": scores(mv_pred, gold, schema.names),
        "functions": funcs,
        "label_model_accuracy_at_majority_coverage": ds_at_mv_cov,
        "min_confidence": labels_cfg.min_confidence,
        "load_average_1m": os.getloadavg()[0],
        "model_load_s": round(load_s, 2),
        "label_s": round(run_s, 2),
        "articles_per_s": round(raw.height / run_s, 1),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "stage_seconds": {f: report["functions"][f].get("seconds") for f in names},
        # spaCy stages run in a worker process concurrently with zero_shot when in_worker is true,
        # so stage seconds overlap; the wait is how long the embedder's side waited for spaCy.
        "spacy_in_worker": bool(report["functions"].get("keywords", {}).get("in_worker")),
        "spacy_worker_wait_s": report.get("spacy_worker_wait_s"),
        "embedder_torch_threads": report["functions"].get("zero_shot", {}).get("torch_threads"),
        "labels_config": labels_cfg.model_dump(exclude={"categories"}),
    }

    def fmt(x: float | None) -> str:
        return "   -  " if x is None else f"{x:6.3f}"

    print(f"\nBBC auto-labeling, {raw.height} articles, schema from {args.config.name}")
    print(f"{'':24}{'coverage':>9}{'acc(cov)':>9}{'acc(all)':>9}")
    for label, s in (
        ("label model (D-S)", result["label_model"]),
        ("majority vote", result["majority_vote"]),
    ):
        print(
            f"{label:24}{fmt(s['coverage']):>9}{fmt(s['accuracy_on_covered']):>9}{fmt(s['accuracy_all']):>9}"
        )
    print(f"{'label model @ MV cov':24}{fmt(result['majority_vote']['coverage']):>9}{fmt(ds_at_mv_cov):>9}")
    print(f"\n{'function':24}{'coverage':>9}{'acc(cov)':>9}{'est.acc':>9}{'seconds':>9}")
    for f, s in funcs.items():
        print(
            f"{f:24}{fmt(s['coverage']):>9}{fmt(s['accuracy_on_covered']):>9}{fmt(s['estimated_accuracy']):>9}{fmt(result['stage_seconds'][f]):>9}"
        )
    print(f"\n{'class':24}{'D-S acc':>9}{'MV acc':>9}")
    for c in schema.names:
        print(
            f"{c:24}{fmt(result['label_model']['per_class_accuracy'][c]):>9}{fmt(result['majority_vote']['per_class_accuracy'][c]):>9}"
        )
    print(
        f"\nend to end: {result['articles_per_s']} articles/s ({run_s:.1f} s; model load {load_s:.1f} s, "
        f"not included; load average {result['load_average_1m']:.2f} on {result['cpu_count']} cores)"
    )
    if result["spacy_in_worker"]:
        print(
            f"spaCy ran in a worker process beside the embedder ({result['embedder_torch_threads']} torch "
            f"threads), which then waited {result['spacy_worker_wait_s']} s for it"
        )
    if variants:
        result["variants"] = variants
        print(f"\n{'variant (same run)':32}{'art/s':>7}{'coverage':>9}{'acc(cov)':>9}  stage seconds")
        for name, v in variants.items():
            stages = " ".join(f"{f}={s}" for f, s in v["stage_seconds"].items() if f != "url_section")
            print(
                f"{name:32}{v['articles_per_s']:7.1f}{fmt(v['coverage']):>9}{fmt(v['accuracy_vs_gold']):>9}  {stages}"
            )
        print(f"{'default config (table above)':32}{result['articles_per_s']:7.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**provenance(), **result}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
