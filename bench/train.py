"""Fine-tuning benchmark on BBC through the real chain: auto-labels for train, gold for val/test.

Side by side, in one run, on the same split and the same auto-labels:
  - TF-IDF + logistic regression (the peer a practitioner tries first; C picked on gold val),
  - LoRA fine-tuning of the base model (training config from the shipped default.yaml),
  - full fine-tuning of the same model.
Reports seconds per epoch, samples/s, peak memory, val/test macro-F1 and accuracy, and the
single-article p50 latency of the LoRA model through `predict_proba`.

Auto-labels come from `newsml_pipeline.core.labeling.pipeline.label_articles` with the shipped
label schema (cached under --cache-dir, keyed by corpus + labels config). The split is a
deterministic hash of article_id (70/15/15) after dropping exact duplicates.

    python bench/train.py [--variants tfidf,lora,full] [--epochs N] [--full-epochs N]
                          [--limit-train N] [--max-length 256] [--precision auto]
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

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provenance import provenance  # noqa: E402

from newsml_pipeline.core.labeling.label_issues import find_label_issues  # noqa: E402
from newsml_pipeline.core.training.device import available_cores  # noqa: E402
from newsml_pipeline.core.training.fine_tune import classification_metrics, train_classifier  # noqa: E402
from newsml_pipeline.core.training.inputs import format_input  # noqa: E402
from newsml_pipeline.core.training.model_io import load_classifier, predict_proba  # noqa: E402
from newsml_pipeline.settings import DEFAULT_CONFIG_PATH, load_config  # noqa: E402
from testkit.corpora import BBC_CORPUS, load_bbc  # noqa: E402

DEFAULT_CORPUS = BBC_CORPUS
log = logging.getLogger("bench.train")


def assign_split(article_id: str, *, salt: str = "newsml-bench") -> str:
    """Deterministic 70/15/15 split by a hash of the id (stable across runs and machines)."""
    u = int(hashlib.sha1(f"{salt}:{article_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if u < 0.70 else ("val" if u < 0.85 else "test")


def auto_labels(raw: pl.DataFrame, *, cfg, cache_dir: Path) -> tuple[pl.DataFrame, str]:
    """article_id -> auto label (null = abstain) from the project's labeler; cached on disk."""
    key = hashlib.sha256(
        (
            json.dumps(cfg.labels.model_dump(mode="json"), sort_keys=True)
            + ",".join(raw["article_id"].to_list())
        ).encode()
    ).hexdigest()[:16]
    cache = cache_dir / f"bbc_auto_labels_{key}.parquet"
    if cache.exists():
        log.info("auto-labels from cache %s", cache)
        return pl.read_parquet(cache), "label_articles (cached)"
    from newsml_pipeline.core.labeling.pipeline import label_articles

    t0 = time.perf_counter()
    labeled, report = label_articles(raw, labels_cfg=cfg.labels)
    log.info(
        "labelled %d articles in %.0f s (coverage %.3f)",
        raw.height,
        time.perf_counter() - t0,
        report["coverage"],
    )
    out = labeled.select("article_id", "label", "confidence")
    cache_dir.mkdir(parents=True, exist_ok=True)
    out.write_parquet(cache)
    return out, "label_articles"


def build_frame(
    raw: pl.DataFrame, auto: pl.DataFrame, *, limit_train: int | None, drop_label_issues: bool = False
) -> tuple[pl.DataFrame, dict]:
    """dataset_splits-like frame: auto-labels on train (abstentions dropped), gold on val/test.

    With `drop_label_issues`, train rows flagged by `find_label_issues` are dropped, as
    `dataset_splits` does with `splits.drop_label_issues`."""
    df = raw.join(auto, on="article_id", how="left").with_columns(
        pl.col("article_id").map_elements(assign_split, return_dtype=pl.String).alias("split")
    )
    train = df.filter((pl.col("split") == "train") & pl.col("label").is_not_null())
    if limit_train:
        train = train.sort("article_id").sample(n=min(limit_train, train.height), seed=0)
    issues_info = {}
    if drop_label_issues:
        train = train.sort("article_id")
        before = train
        issues = find_label_issues(
            [format_input(t, x) for t, x in zip(train["title"], train["text"], strict=True)],
            train["label"].to_list(),
        )
        train = train.filter(pl.Series(~issues.flagged))
        dropped = before.filter(pl.Series(issues.flagged))
        issues_info = {
            "label_issues_dropped": issues.count,
            "label_issues_truly_wrong": float((dropped["label"] != dropped["gold_label"]).mean())
            if dropped.height
            else None,
        }
    evals = df.filter(pl.col("split") != "train").with_columns(pl.col("gold_label").alias("label"))
    info = {
        "train_rows_before_abstain": int(df.filter(pl.col("split") == "train").height),
        "train_rows": train.height,
        "auto_label_accuracy_on_train": float((train["label"] == train["gold_label"]).mean()),
        "val_rows": int(evals.filter(pl.col("split") == "val").height),
        "test_rows": int(evals.filter(pl.col("split") == "test").height),
        **issues_info,
    }
    cols = ["article_id", "split", "label", "title", "text", "gold_label"]
    return pl.concat([train.select(cols), evals.select(cols)]), info


def run_tfidf(frame: pl.DataFrame, labels: list[str]) -> dict:
    """TF-IDF (word 1-2 grams, sublinear tf) + logistic regression; C chosen on gold val macro-F1."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    def part(split: str) -> tuple[list[str], np.ndarray]:
        sub = frame.filter(pl.col("split") == split)
        texts = [format_input(t, x) for t, x in zip(sub["title"], sub["text"], strict=True)]
        return texts, np.array([labels.index(v) for v in sub["label"]])

    (xtr, ytr), (xva, yva), (xte, yte) = part("train"), part("val"), part("test")
    t0 = time.perf_counter()
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=200_000)
    a_tr, a_va, a_te = vec.fit_transform(xtr), None, None
    a_va, a_te = vec.transform(xva), vec.transform(xte)
    best = None
    for c in (1.0, 3.0, 10.0, 30.0, 100.0):
        clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(a_tr, ytr)
        f1 = classification_metrics(clf.decision_function(a_va), yva, labels)["macro_f1"]
        if best is None or f1 > best[0]:
            best = (f1, c, clf)
    seconds = time.perf_counter() - t0
    _, c, clf = best
    val = classification_metrics(clf.decision_function(a_va), yva, labels)
    test = classification_metrics(clf.decision_function(a_te), yte, labels)
    return {
        "variant": "tfidf_logreg",
        "C": c,
        "train_seconds": seconds,
        "seconds_per_epoch": None,
        "samples_per_s": None,
        "peak_memory_mb": None,
        "epochs_run": None,
        "best_epoch": None,
        "val_macro_f1": val["macro_f1"],
        "val_accuracy": val["accuracy"],
        "test_macro_f1": test["macro_f1"],
        "test_accuracy": test["accuracy"],
        "test_per_class_f1": test["per_class_f1"],
    }


def latency_p50_ms(model_dir: Path, texts: list[str], *, max_length: int, n: int = 50) -> dict:
    """Single-article predict_proba latency (p50/p90 ms) over `n` test articles, after warm-up."""
    model, tok, _ = load_classifier(model_dir, device="cpu")
    for t in texts[:3]:
        predict_proba(model, tok, [t], max_length=max_length)
    times = []
    for t in texts[:n]:
        t0 = time.perf_counter()
        predict_proba(model, tok, [t], max_length=max_length)
        times.append((time.perf_counter() - t0) * 1000)
    times_fp32 = []
    for t in texts[: n // 2]:
        t0 = time.perf_counter()
        predict_proba(model, tok, [t], max_length=max_length, bf16=False)
        times_fp32.append((time.perf_counter() - t0) * 1000)
    return {
        "p50_ms": float(np.median(times)),
        "p90_ms": float(np.percentile(times, 90)),
        "p50_ms_fp32": float(np.median(times_fp32)),
    }


def run_transformer(frame: pl.DataFrame, labels: list[str], *, name: str, cfg, out_dir: Path) -> dict:
    result = train_classifier(
        frame.drop("gold_label"),
        labels=labels,
        training_cfg=cfg,
        output_dir=out_dir / name,
        resume=False,
        data_window="BBC 2004-05 (bench)",
    )
    m = result.metrics
    test = frame.filter(pl.col("split") == "test")
    texts = [format_input(t, x) for t, x in zip(test["title"], test["text"], strict=True)]
    lat = latency_p50_ms(result.model_dir, texts, max_length=cfg.max_length)
    return {
        "variant": name,
        "train_seconds": result.train_seconds,
        "seconds_per_epoch": result.seconds_per_epoch,
        "samples_per_s": result.samples_per_s,
        "peak_memory_mb": result.peak_memory_mb,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "val_macro_f1": m["val_macro_f1"],
        "val_accuracy": m["val_accuracy"],
        "test_macro_f1": m["test_macro_f1"],
        "test_accuracy": m["test_accuracy"],
        "test_per_class_f1": m["test_per_class_f1"],
        "history": m["history"],
        "device": result.device,
        "trainable_parameters": result.trainable_parameters,
        "latency": lat,
        "config": cfg.model_dump(mode="json"),
    }


def write_json(args: argparse.Namespace, *, label_source: str, info: dict, rows: list[dict]) -> None:
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        **provenance(),
        "corpus": str(args.corpus),
        "label_source": label_source,
        "data": info,
        "machine": {"cores": available_cores(), "cpu": platform.processor() or platform.machine()},
        "results": rows,
    }
    args.json.write_text(json.dumps(payload, indent=2, default=str))


def fmt(v, spec: str) -> str:
    width = int(spec.split(".")[0]) if spec[0].isdigit() else 0
    return "-".rjust(width) if v is None else format(v, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    ap.add_argument("--variants", default="tfidf,lora,full", help="comma list of tfidf, lora, full")
    ap.add_argument("--epochs", type=int, default=None, help="epochs for LoRA (default: config)")
    ap.add_argument(
        "--full-epochs", type=int, default=None, help="epochs for full fine-tuning (default: --epochs)"
    )
    ap.add_argument("--full-lr", type=float, default=5e-5, help="learning rate for full fine-tuning")
    ap.add_argument("--limit-train", type=int, default=None, help="use only N training rows (quick runs)")
    ap.add_argument("--max-length", type=int, default=None)
    ap.add_argument("--precision", default=None, choices=["auto", "fp32", "bf16"])
    ap.add_argument("--lora-r", type=int, default=None)
    ap.add_argument("--lora-top-layers", type=int, default=None, help="adapt only the last N layers")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None, help="LoRA learning rate")
    ap.add_argument("--label-smoothing", type=float, default=None)
    ap.add_argument("--seed", type=int, default=None, help="training seed (default: config)")
    ap.add_argument(
        "--drop-label-issues",
        action="store_true",
        help="drop train rows whose cross-fitted TF-IDF prediction disagrees with the auto-label",
    )
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/newsml_bench_cache"))
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/newsml_bench_train"))
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "train.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    cfg = load_config(args.config)
    labels = cfg.labels.names
    raw = load_bbc(args.corpus, unique=True)
    auto, label_source = auto_labels(raw, cfg=cfg, cache_dir=args.cache_dir)
    frame, info = build_frame(
        raw, auto, limit_train=args.limit_train, drop_label_issues=args.drop_label_issues
    )
    log.info("data: %s", info)

    tcfg = cfg.training
    upd = {
        k: v
        for k, v in {
            "epochs": args.epochs,
            "max_length": args.max_length,
            "precision": args.precision,
            "learning_rate": args.lr,
            "label_smoothing": args.label_smoothing,
            "seed": args.seed,
            "batch_size": args.batch_size,
        }.items()
        if v is not None
    }
    lora_upd = {}
    if args.lora_r:
        lora_upd.update({"r": args.lora_r, "alpha": 2 * args.lora_r})
    if args.lora_top_layers:
        lora_upd["top_layers"] = args.lora_top_layers
    if lora_upd:
        upd["lora"] = tcfg.lora.model_copy(update=lora_upd)
    lora_cfg = tcfg.model_copy(update=upd)
    full_cfg = lora_cfg.model_copy(
        update={
            "full_finetune": True,
            "learning_rate": args.full_lr,
            "epochs": args.full_epochs or lora_cfg.epochs,
        }
    )
    rows = []
    for v in [x.strip() for x in args.variants.split(",") if x.strip()]:
        log.info("=== variant %s", v)
        if v == "tfidf":
            rows.append(run_tfidf(frame, labels))
        elif v == "lora":
            rows.append(run_transformer(frame, labels, name="lora", cfg=lora_cfg, out_dir=args.out_dir))
        elif v == "full":
            rows.append(
                run_transformer(frame, labels, name="full_finetune", cfg=full_cfg, out_dir=args.out_dir)
            )
        else:
            raise SystemExit(f"unknown variant {v!r}; use tfidf, lora, full")
        write_json(args, label_source=label_source, info=info, rows=rows)  # partial results survive a crash

    head = f"{'variant':<14}{'s/epoch':>9}{'samples/s':>11}{'peak MB':>9}{'epochs':>8}{'best':>6}{'val F1':>8}{'test F1':>9}{'test acc':>9}{'p50 ms':>8}"
    print(
        f"\nBBC: train {info['train_rows']} auto-labelled rows ({label_source}, {info['auto_label_accuracy_on_train']:.3f} "
        f"accurate vs gold), val {info['val_rows']} / test {info['test_rows']} gold; {available_cores()} cores, "
        f"max_length {lora_cfg.max_length}, batch {lora_cfg.batch_size}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        lat = r.get("latency") or {}
        print(
            f"{r['variant']:<14}{fmt(r['seconds_per_epoch'], '9.1f')}{fmt(r['samples_per_s'], '11.2f')}"
            f"{fmt(r['peak_memory_mb'], '9.0f')}{fmt(r['epochs_run'], '8.1f')}{fmt(r['best_epoch'], '6.0f')}"
            f"{r['val_macro_f1']:8.4f}{r['test_macro_f1']:9.4f}{r['test_accuracy']:9.4f}{fmt(lat.get('p50_ms'), '8.1f')}"
        )
    write_json(args, label_source=label_source, info=info, rows=rows)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
