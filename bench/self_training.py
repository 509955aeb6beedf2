"""Self-training benchmark: does relabelling the confident train pool help, measured on gold?

For each corpus (BBC, and Reuters-21578's top single-topic classes, schemas in bench/schemas/):
the project's labeller auto-labels every article; the train split (70 %, by a hash of the id)
keeps its auto-labels (abstentions and flagged label issues dropped, as `dataset_splits` does),
val/test carry gold. Round 0 is the ordinary LoRA candidate; each further round is the
pipeline's own mechanism (`core.training.self_training.self_train`, `training.self_training`):
the candidate relabels the train rows it is confident about and a new candidate trains on that.
The table shows per round: rows relabelled, label changes, the accuracy of the train labels
against the (hidden) gold, and val / test macro-F1 on gold. Round 0 is the project without
self-training, so the gain is read off the same run.

    flock /tmp/newsml_heavy.lock python bench/self_training.py [--corpora bbc,reuters]
        [--rounds 2] [--epochs 1] [--max-length 128] [--min-confidence 0.9] [--max-share 0.2]
        [--limit N] [--limit-train N] [--json bench/results/self_training.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from generality import load_corpus  # noqa: E402
from provenance import provenance  # noqa: E402
from train import build_frame  # noqa: E402

from newsml_pipeline.core.training.device import available_cores  # noqa: E402
from newsml_pipeline.core.training.fine_tune import TrainResult, train_classifier  # noqa: E402
from newsml_pipeline.core.training.self_training import self_train  # noqa: E402
from newsml_pipeline.settings import DEFAULT_CONFIG_PATH, LabelsConfig, TrainingConfig, load_config  # noqa: E402

log = logging.getLogger("bench.self_training")
CACHE = Path("/tmp/newsml_bench_self_training")
# What a cached model or auto-label set depends on beyond its data and config: the code that made
# it and the libraries it ran on. A change to either makes the cache miss.
CODE_DIRS = (ROOT / "newsml_pipeline" / "core" / "training", ROOT / "newsml_pipeline" / "core" / "labeling")
LIBRARIES = ("torch", "transformers", "peft", "scikit-learn")


def code_and_libraries() -> dict[str, Any]:
    """sha256 of every source file under CODE_DIRS (path + content) and the LIBRARIES' versions."""
    from importlib import metadata

    h = hashlib.sha256()
    for d in CODE_DIRS:
        for f in sorted(d.rglob("*.py")):
            h.update(str(f.relative_to(ROOT)).encode() + b"\x1f" + f.read_bytes() + b"\x1e")
    return {"code": h.hexdigest()[:16], "libraries": {n: metadata.version(n) for n in LIBRARIES}}


def cache_key(*parts: str) -> str:
    """16 hex chars over `parts` and code_and_libraries()."""
    payload = json.dumps({"parts": parts, **code_and_libraries()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def auto_labelled(
    name: str, *, limit: int | None = None, cache_dir: Path = CACHE
) -> tuple[pl.DataFrame, LabelsConfig]:
    """The corpus's raw rows joined with the project's auto-labels (label, confidence, votes);
    labelling runs once per corpus and schema (cached as parquet)."""
    from newsml_pipeline.core.labeling.pipeline import label_articles

    raw, labels_cfg, _ = load_corpus(name, limit=limit)
    key = cache_key(
        json.dumps(labels_cfg.model_dump(mode="json"), sort_keys=True), ",".join(raw["article_id"])
    )
    cache = cache_dir / f"{name}_labeled_{key}.parquet"
    if cache.exists():
        print(f"reused: {name} auto-labels from {cache} (same rows, schema, code and libraries)")
        labeled = pl.read_parquet(cache)
    else:
        t0 = time.perf_counter()
        labeled, report = label_articles(raw.drop("gold_label"), labels_cfg=labels_cfg)
        log.info(
            "%s: labelled %d articles in %.0f s (coverage %.3f)",
            name,
            raw.height,
            time.perf_counter() - t0,
            report["coverage"],
        )
        labeled = labeled.select("article_id", "label", "confidence", "votes")
        cache_dir.mkdir(parents=True, exist_ok=True)
        labeled.write_parquet(cache)
    return raw.join(labeled, on="article_id", how="left"), labels_cfg


def training_frame(rows: pl.DataFrame, *, limit_train: int | None) -> tuple[pl.DataFrame, dict]:
    """dataset_splits-like frame (auto train, gold val/test) with label_source and gold_label."""
    frame, info = build_frame(
        rows.drop("label", "confidence", "votes"),
        rows.select("article_id", "label"),
        limit_train=limit_train,
        drop_label_issues=True,
    )
    return frame.with_columns(
        label_source=pl.when(pl.col("split") == "train").then(pl.lit("auto")).otherwise(pl.lit("gold"))
    ), info


def bench_training_cfg(*, epochs: int, max_length: int, seed: int, **self_training: Any) -> TrainingConfig:
    """The shipped training config with the benchmark's cheap settings."""
    base = load_config(DEFAULT_CONFIG_PATH).training
    return base.model_copy(
        update={
            "epochs": epochs,
            "max_length": max_length,
            "seed": seed,
            "self_training": base.self_training.model_copy(update=self_training),
        }
    )


def cached_train(
    frame: pl.DataFrame, out: Path, cfg: TrainingConfig, labels: list[str]
) -> tuple[TrainResult, bool]:
    """train_classifier on `frame` (gold_label dropped), or the result of an earlier run with the
    same data, config, code (core/training, core/labeling) and libraries; True when reused."""
    from newsml_pipeline.core.training.fine_tune import training_fingerprint

    train = frame.drop("gold_label")
    plain = cfg.model_copy(update={"self_training": cfg.self_training.model_copy(update={"rounds": 0})})
    fp = cache_key(training_fingerprint(train, labels, plain))
    stamp = out / "bench_done.json"
    if stamp.exists() and json.loads(stamp.read_text())["fingerprint"] == fp:
        d = json.loads(stamp.read_text())["result"]
        d["model_dir"], d["adapter_dir"] = Path(d["model_dir"]), None
        print(f"reused: the model trained earlier in {out} (same data, config, code and libraries)")
        return TrainResult(**d), True
    result = train_classifier(train, labels=labels, training_cfg=plain, output_dir=out, resume=False)
    summary = result.summary()
    summary["metrics"] = result.metrics | {"history": result.metrics.get("history", [])}
    out.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"fingerprint": fp, **code_and_libraries(), "result": summary}))
    return result, False


def run_corpus(name: str, args: argparse.Namespace) -> dict[str, Any]:
    rows, labels_cfg = auto_labelled(name, limit=args.limit)
    labels = labels_cfg.names
    frame, info = training_frame(rows, limit_train=args.limit_train)
    cfg = bench_training_cfg(
        epochs=args.epochs,
        max_length=args.max_length,
        seed=args.seed,
        rounds=args.rounds,
        min_confidence=args.min_confidence,
        max_share=args.max_share,
    )
    gold = dict(zip(frame["article_id"], frame["gold_label"], strict=True))
    train_label_acc: list[float] = []
    reused: list[bool] = []

    def train(f: pl.DataFrame, out: Path, run_logger: Any) -> TrainResult:
        t = f.filter(pl.col("split") == "train")
        train_label_acc.append(
            float(np.mean([gold[a] == lab for a, lab in t.select("article_id", "label").iter_rows()]))
        )
        result, was_reused = cached_train(f, out, cfg, labels)
        reused.append(was_reused)
        return result

    t0 = time.perf_counter()
    st = self_train(frame, labels=labels, training_cfg=cfg, output_dir=args.out_dir / name, train_fn=train)
    rounds = [
        r | {"train_label_accuracy": round(acc, 4), "reused": was_reused}
        for r, acc, was_reused in zip(st.rows(), train_label_acc, reused, strict=True)
    ]
    return {
        "data": info,
        "labels": labels,
        "seconds": round(time.perf_counter() - t0, 1),
        "rounds": rounds,
        "selected_round": st.selected_round,
    }


def print_table(results: dict[str, Any]) -> None:
    head = f"{'corpus':<9} {'round':>5} {'relabelled':>10} {'changes':>7} {'train label acc':>15} {'val F1':>7} {'test F1 (gold)':>14}"
    print(head)
    print("-" * len(head))
    for name, res in results.items():
        for r in res["rounds"]:
            mark = (" *" if r["selected"] else "") + (" (reused)" if r.get("reused") else "")
            print(
                f"{name:<9} {r['round']:>5} {r['relabelled']:>10} {r['changes']:>7} {r['train_label_accuracy']:>15.4f} "
                f"{r['val_macro_f1']:>7.4f} {r['test_macro_f1']:>14.4f}{mark}"
            )
    print("round 0 = the candidate without self-training; * = the round the pipeline would keep (best val)")
    print(
        "(reused) = the model and its metrics come from an earlier run with the same data, config, code and libraries"
    )


def write_results(args: argparse.Namespace, results: dict[str, Any], **extra: Any) -> None:
    """The results so far (after each corpus) with the command, machine and options; corpora
    measured by an earlier run (another `--corpora`) are kept."""
    args.json.parent.mkdir(parents=True, exist_ok=True)
    earlier = json.loads(args.json.read_text()).get("corpora", {}) if args.json.exists() else {}
    results = {**{k: v for k, v in earlier.items() if k not in results}, **results}
    args.json.write_text(
        json.dumps(
            {
                **provenance(),
                "machine": {"platform": platform.platform(), "cores": available_cores()},
                "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                **extra,
                "corpora": results,
            },
            indent=2,
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", default="bbc,reuters")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--min-confidence", type=float, default=0.9)
    ap.add_argument("--max-share", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--limit", type=int, default=None, help="rows per corpus (class-stratified hash sample)")
    ap.add_argument("--limit-train", type=int, default=None, help="train rows per corpus (a hash sample)")
    ap.add_argument("--out-dir", type=Path, default=CACHE / "models")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "self_training.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    results: dict[str, Any] = {}
    for name in args.corpora.split(","):
        results[name] = run_corpus(name, args)
        write_results(args, results)
    print_table(results)


if __name__ == "__main__":
    main()
