"""Active-learning benchmark: how many trusted labels until the gate's decision is stable?

For each corpus (BBC, and Reuters-21578's top single-topic classes), the candidate is trained
once on the auto-labelled train split (the round-0 model of bench/self_training.py, shared through
its cache). The held-out articles (val + test of that split, never trained on) are the pool a
person labels. The candidate's and the baseline's (zero-shot) predictions on the whole pool are
computed once; then labelling orders are simulated over the pool:

- `review_queue`: the review queue's own core ordering (`select_for_review`: uncertainty = 1 −
  the candidate's confidence, diversity = one pick per k-means cluster of the labeller's sentence
  embeddings, per-class coverage from `trusted_labels_needed`), a daily budget at a time, each
  day's picks labelled before the next day's queue is built;
- `random`: a seeded permutation of the pool.

After every `--step` labels, the labelled articles are the gold test rows: the project's paired
bootstrap (`paired_bootstrap`, candidate − baseline macro-F1) and gate (`decide_gate`, the shipped
gate config) run on them. A decision is *stable* at n labels when from n on the interval
excludes zero and the gate verdict no longer changes. Same seeds for both strategies.

It also reports the silver-vs-gold gap: the candidate's macro-F1 measured on silver labels (the
independent functions' agreement, `core.labeling.silver`) vs on gold, over the same pool.

    flock /tmp/newsml_heavy.lock python bench/active_learning.py [--corpora bbc,reuters]
        [--seeds 5] [--step 10] [--limit N] [--json bench/results/active_learning.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from self_training import (  # noqa: E402
    CACHE,
    auto_labelled,
    bench_training_cfg,
    cache_key,
    cached_train,
    training_frame,
    write_results,
)

from newsml_pipeline.core.evaluation.gate import decide_gate  # noqa: E402
from newsml_pipeline.core.evaluation.metrics import paired_bootstrap, score_predictions  # noqa: E402
from newsml_pipeline.core.labeling.needs import trusted_labels_needed_by_config  # noqa: E402
from newsml_pipeline.core.labeling.review_queue import select_for_review  # noqa: E402
from newsml_pipeline.core.labeling.silver import silver_labels  # noqa: E402
from newsml_pipeline.core.training.self_training import predict_train_rows  # noqa: E402
from newsml_pipeline.settings import DEFAULT_CONFIG_PATH, NewsmlConfig, load_config  # noqa: E402

log = logging.getLogger("bench.active_learning")
STRATEGIES = ("review_queue", "random")


def pool_predictions(name: str, args: argparse.Namespace, cfg: NewsmlConfig) -> dict[str, Any]:
    """Everything the simulation needs about the pool, computed once per corpus (cached)."""
    key = cache_key(
        str(args.epochs), str(args.max_length), str(args.limit), str(args.limit_train), str(args.train_seed)
    )
    cache = CACHE / f"{name}_al_pool_{key}.npz"
    rows, labels_cfg = auto_labelled(name, limit=args.limit)
    labels = labels_cfg.names
    frame, info = training_frame(rows, limit_train=args.limit_train)
    pool_ids = frame.filter(pl.col("split") != "train")["article_id"]
    pool = rows.filter(pl.col("article_id").is_in(pool_ids.implode())).sort("article_id")
    if cache.exists():
        print(f"reused: {name} pool predictions from {cache} (same options, code and libraries)")
        z = np.load(cache, allow_pickle=False)
        proba, embeddings, baseline = z["proba"], z["embeddings"], z["baseline"].tolist()
    else:
        from newsml_pipeline.core.evaluation.baselines import zero_shot_predictions
        from newsml_pipeline.core.labeling.functions.zero_shot import configured_article_embeddings

        tcfg = bench_training_cfg(epochs=args.epochs, max_length=args.max_length, seed=args.train_seed)
        result, _ = cached_train(frame, args.out_dir / name, tcfg, labels)
        proba = predict_train_rows(
            result.model_dir, pool, labels=labels, max_length=args.max_length, batch_size=32
        )
        embeddings = configured_article_embeddings(
            pool["title"].to_list(), pool["text"].to_list(), labels_cfg=labels_cfg
        )
        baseline = zero_shot_predictions(pool, labels_cfg=labels_cfg).labels
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, proba=proba, embeddings=np.asarray(embeddings), baseline=np.array(baseline))
    silver = silver_labels(
        pool["votes"].to_list(),
        functions=cfg.gate.silver_functions,
        min_votes=cfg.gate.silver_min_votes,
        labels=labels,
    )
    return {
        "labels": labels,
        "pool": pool,
        "gold": pool["gold_label"].to_list(),
        "candidate": [labels[i] for i in np.asarray(proba).argmax(axis=1)],
        "confidence": np.asarray(proba).max(axis=1),
        "embeddings": np.asarray(embeddings),
        "baseline": list(baseline),
        "silver": silver,
        "data": info,
        "labels_cfg": labels_cfg,
    }


def queue_order(p: dict[str, Any], cfg: NewsmlConfig, *, seed: int, budget: int) -> list[int]:
    """Pool indices in the order the review queue would show them, a daily budget at a time."""
    pool = p["pool"]
    n = pool.height
    cands = pl.DataFrame(
        {
            "row": np.arange(n),
            "article_id": pool["article_id"],
            "partition_date": pl.Series([None] * n, dtype=pl.Date),
            "title": pool["title"],
            "text": pool["text"],
            "url": pool["url"],
            "suggested_label": p["candidate"],
            "confidence": p["confidence"].astype(float),
        }
    )
    have: dict[str, int] = {}
    order: list[int] = []
    left = np.ones(n, dtype=bool)
    while left.any():
        need = trusted_labels_needed_by_config(have, cfg=cfg)
        idx = np.flatnonzero(left)
        day = select_for_review(
            cands[idx.tolist()],
            p["embeddings"][idx],
            budget=budget,
            need=need,
            coverage_weight=cfg.review.coverage_weight,
            seed=seed,
        )
        picked = cands.join(day.select("article_id", "rank"), on="article_id").sort("rank")["row"].to_list()
        for i in picked:
            order.append(int(i))
            left[i] = False
            have[p["gold"][i]] = have.get(p["gold"][i], 0) + 1  # the person gives the true label
    return order


def evaluate_prefixes(
    p: dict[str, Any], order: list[int], cfg: NewsmlConfig, *, step: int
) -> list[dict[str, Any]]:
    """Bootstrap interval and gate verdict on the first n labelled articles, every `step`."""
    labels = p["labels"]
    out = []
    sizes = list(range(step, len(order) + 1, step))
    if sizes[-1] != len(order):
        sizes.append(len(order))
    for n in sizes:
        idx = order[:n]
        y = [p["gold"][i] for i in idx]
        cand = [p["candidate"][i] for i in idx]
        base = [p["baseline"][i] for i in idx]
        iv = paired_bootstrap(
            y,
            cand,
            base,
            labels=labels,
            metric=cfg.gate.metric,
            n_samples=cfg.gate.bootstrap_samples,
            seed=cfg.gate.seed,
        )
        gate = decide_gate(
            candidate=score_predictions(y, cand, labels=labels),
            baseline=score_predictions(y, base, labels=labels),
            champion=None,
            gate_cfg=cfg.gate,
            n_test=n,
        )
        out.append({"n": n, "diff": iv.diff, "low": iv.low, "high": iv.high, "passed": gate.passed})
    return out


def _excludes_zero(point: dict[str, Any]) -> bool:
    return point["low"] > 0 or point["high"] < 0


def _holds_from(curve: list[dict[str, Any]], ok: Any) -> int | None:
    """The smallest n from which `ok(point)` holds at every later point (None: not even at the end)."""
    n = None
    for point in reversed(curve):
        if not ok(point):
            break
        n = point["n"]
    return n


def stable_at(curve: list[dict[str, Any]]) -> dict[str, Any]:
    """The first n from which the interval excludes zero and the verdict never changes again."""
    final = curve[-1]["passed"]
    return {
        "n_stable": _holds_from(curve, lambda p: _excludes_zero(p) and p["passed"] == final),
        "n_interval_excludes_zero": _holds_from(curve, _excludes_zero),
        "n_verdict_final": _holds_from(curve, lambda p: p["passed"] == final),
        "final_verdict": final,
        "final_diff": round(curve[-1]["diff"], 4),
    }


def silver_gap(p: dict[str, Any]) -> dict[str, Any]:
    labels = p["labels"]
    has = [i for i, s in enumerate(p["silver"]) if s is not None]
    cand = p["candidate"]
    on_silver = score_predictions([p["silver"][i] for i in has], [cand[i] for i in has], labels=labels)
    gold_same = score_predictions([p["gold"][i] for i in has], [cand[i] for i in has], labels=labels)
    gold_all = score_predictions(p["gold"], cand, labels=labels)
    base_silver = score_predictions(
        [p["silver"][i] for i in has], [p["baseline"][i] for i in has], labels=labels
    )
    base_gold = score_predictions(p["gold"], p["baseline"], labels=labels)
    silver_acc = float(np.mean([p["silver"][i] == p["gold"][i] for i in has])) if has else None
    return {
        "pool": len(cand),
        "silver_rows": len(has),
        "silver_label_accuracy": None if silver_acc is None else round(silver_acc, 4),
        "candidate_macro_f1_on_silver": round(on_silver.macro_f1, 4),
        "candidate_macro_f1_on_gold_same_rows": round(gold_same.macro_f1, 4),
        "candidate_macro_f1_on_gold_all_pool": round(gold_all.macro_f1, 4),
        "gap_silver_minus_gold": round(on_silver.macro_f1 - gold_all.macro_f1, 4),
        "baseline_macro_f1_on_silver": round(base_silver.macro_f1, 4),
        "baseline_macro_f1_on_gold": round(base_gold.macro_f1, 4),
    }


def run_corpus(name: str, args: argparse.Namespace, cfg: NewsmlConfig) -> dict[str, Any]:
    t0 = time.perf_counter()
    p = pool_predictions(name, args, cfg)
    cfg = cfg.model_copy(update={"labels": p["labels_cfg"]})  # the corpus's schema: needs per class
    res: dict[str, Any] = {"data": p["data"], "pool": p["pool"].height, "strategies": {}}
    for strategy in STRATEGIES:
        per_seed = []
        for seed in range(args.seeds):
            if strategy == "random":
                order = np.random.default_rng(seed).permutation(p["pool"].height).tolist()
            else:
                order = queue_order(p, cfg, seed=seed, budget=args.budget)
            curve = evaluate_prefixes(p, order, cfg, step=args.step)
            first = [p["gold"][i] for i in order[: args.budget]]
            per_seed.append(
                {"seed": seed, **stable_at(curve), "classes_in_first_budget": len(set(first)), "curve": curve}
            )
        ns = [s["n_stable"] for s in per_seed if s["n_stable"] is not None]
        res["strategies"][strategy] = {
            "n_stable_mean": round(float(np.mean(ns)), 1) if ns else None,
            "n_stable_std": round(float(np.std(ns)), 1) if ns else None,
            "never_stable": sum(s["n_stable"] is None for s in per_seed),
            "seeds": per_seed,
        }
    res["silver_vs_gold"] = silver_gap(p)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def print_table(results: dict[str, Any]) -> None:
    print(
        f"{'corpus':<9} {'pool':>5} {'strategy':<13} {'labels until stable (mean ± std)':>32} {'per seed':<26} "
        f"{'interval excl. 0 from':>21} {'verdict (diff)':<16}"
    )
    for name, res in results.items():
        for strategy, s in res["strategies"].items():
            per = ",".join(str(x["n_stable"]) for x in s["seeds"])
            mean = (
                "never"
                if s["n_stable_mean"] is None
                else f"{s['n_stable_mean']:.0f} ± {s['n_stable_std']:.0f}"
            )
            iv = [x["n_interval_excludes_zero"] for x in s["seeds"]]
            iv_s = "never" if None in iv else f"{np.mean(iv):.0f} ± {np.std(iv):.0f}"
            first = s["seeds"][0]
            verdict = f"{'pass' if first['final_verdict'] else 'fail'} ({first['final_diff']:+.3f})"
            print(f"{name:<9} {res['pool']:>5} {strategy:<13} {mean:>32} {per:<26} {iv_s:>21} {verdict:<16}")
    print()
    print(
        f"{'corpus':<9} {'silver rows':>11} {'silver acc':>10} {'cand F1 silver':>14} {'cand F1 gold':>12} {'gap':>7}"
    )
    for name, res in results.items():
        g = res["silver_vs_gold"]
        print(
            f"{name:<9} {g['silver_rows']:>11} {g['silver_label_accuracy']:>10} {g['candidate_macro_f1_on_silver']:>14} "
            f"{g['candidate_macro_f1_on_gold_all_pool']:>12} {g['gap_silver_minus_gold']:>7}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", default="bbc,reuters")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--step", type=int, default=10, help="evaluate after every N labels")
    ap.add_argument(
        "--budget", type=int, default=None, help="queue size per day (default: review.daily_budget)"
    )
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--train-seed", type=int, default=42)
    ap.add_argument("--limit", type=int, default=None, help="rows per corpus (as bench/self_training.py)")
    ap.add_argument("--limit-train", type=int, default=None)
    ap.add_argument("--out-dir", type=Path, default=CACHE / "models")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "active_learning.json")
    ap.add_argument("--print-only", action="store_true", help="print the table of an earlier --json")
    args = ap.parse_args()
    if args.print_only:
        print_table(json.loads(args.json.read_text())["corpora"])
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = load_config(DEFAULT_CONFIG_PATH)
    args.budget = args.budget or cfg.review.daily_budget
    results: dict[str, Any] = {}
    for name in args.corpora.split(","):
        results[name] = run_corpus(name, args, cfg)
        write_results(args, results, gate=cfg.gate.model_dump(mode="json"))
    print_table(results)


if __name__ == "__main__":
    main()
