"""Learner benchmark: which recipe `candidate_model` trains by default, measured against the peers
a user would otherwise pick, all trained on the *same* auto-labels and scored on gold test rows.

Per corpus (schemas in `bench/schemas/`, written before any run): BBC, BBC title + first sentence,
Reuters' eight largest single-topic classes, and News Category headline + description in the
demo's six categories.

Stage `labels` (CPU is fine): the shipped label model's auto-labels (coverage and accuracy on
gold), then the `dataset_splits`-like frame — train rows carry auto-labels (abstentions and
flagged label issues dropped, as `dataset_splits` does), val/test rows carry gold — saved with the
label model's class probabilities to `--frames DIR/<corpus>.parquet` + `.json`.

Stage `models` (a GPU helps; it reads only the frames): the peers — zero-shot (the gate's
baseline), TF-IDF + logistic regression, logistic regression on frozen sentence embeddings (the
"embedding classifier") — and each candidate recipe for `--seeds` seeds, through the project's own
`train_classifier`. Every row is written to `--json` as it finishes, with the command, the commit
and the CPU flags (and the GPU, where one ran).

    python bench/learners.py --stage labels [--corpora ...] [--frames DIR]
    python bench/learners.py --stage models [--corpora ...] [--recipes ...] [--seeds 3] [--frames DIR]
    python bench/learners.py                      # both stages
    python bench/learners.py --quick              # 300 rows, 1 seed, 1 epoch: a smoke run
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from provenance import provenance  # noqa: E402

from newsml_pipeline.core.labeling.schema import ABSTAIN  # noqa: E402
from newsml_pipeline.settings import DEFAULT_CONFIG_PATH, LabelsConfig, load_config  # noqa: E402

log = logging.getLogger("bench.learners")
CORPORA_DEFAULT = "bbc,bbc_short,reuters,news_category"

# Candidate recipes: overrides of the shipped `training` config. "shipped" is whatever
# default.yaml says, so the table always shows the default beside the alternatives.
RECIPES: dict[str, dict[str, Any]] = {
    "shipped": {},
    "lora_qv": {
        "full_finetune": False,
        "learning_rate": 5e-4,
        "lora": {"target_modules": None, "top_layers": None},
    },
    "lora_qv_top3": {
        "full_finetune": False,
        "learning_rate": 1e-3,
        "lora": {"target_modules": None, "top_layers": 3},
    },
    "lora_all_linear": {
        "full_finetune": False,
        "learning_rate": 5e-4,
        "lora": {"target_modules": ["all-linear"], "top_layers": None},
    },
    "full_ft": {"full_finetune": True, "learning_rate": 5e-5},
    "full_ft_lr1e-4": {"full_finetune": True, "learning_rate": 1e-4},
    # bf16 vs fp32 (training.precision: auto picks bf16 where the device computes it natively)
    "full_ft_fp32": {"full_finetune": True, "learning_rate": 5e-5, "precision": "fp32"},
    "full_ft_len256": {"full_finetune": True, "learning_rate": 5e-5, "max_length": 256},
}
LONG_ONLY = {"full_ft_len256"}  # longer input only where items are long
SHORT_CORPORA = {"bbc_short", "news_category"}


def run_facts() -> dict[str, Any]:
    """What bench/provenance.py does not say: the GPU, the training libraries, and the code's commit
    where the copy's .git is not the code's (`NEWSML_COMMIT`, set on a device machine)."""
    import torch

    facts: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    facts["versions"] = {
        m: getattr(__import__(m), "__version__", None) for m in ("torch", "transformers", "peft")
    }
    if os.environ.get("NEWSML_COMMIT"):
        facts["commit"] = os.environ["NEWSML_COMMIT"]
    return facts


# ---------------------------------------------------------------- stage 1: labels and frames


def build_labelled_frame(name: str, *, limit: int | None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """(frame, info): the shipped label model's labels on the corpus, split as dataset_splits does."""
    from generality import BENCH, load_corpus, score_votes
    from train import build_frame

    from newsml_pipeline.core.labeling.label_model import DawidSkene, labels_from_proba
    from newsml_pipeline.core.labeling.pipeline import compute_votes, dependent_groups

    if name == "news_category" and name not in BENCH:
        BENCH[name] = ("news_category.yaml", "full")
    raw, labels_cfg, _ = load_corpus(name, limit=limit)
    names = labels_cfg.names
    t0 = time.perf_counter()
    votes, fn_names, _ = compute_votes(
        raw["title"].to_list(), raw["text"].to_list(), raw["url"].to_list(), labels_cfg=labels_cfg
    )
    groups = dependent_groups(fn_names, labels_cfg.dependent_functions)
    model = DawidSkene(k=len(names), groups=groups).fit(votes)
    proba = model.predict_proba(votes)
    labels, _ = labels_from_proba(proba, min_confidence=labels_cfg.min_confidence)
    seconds = time.perf_counter() - t0
    gold = np.array([names.index(g) for g in raw["gold_label"]], dtype=np.int64)
    auto = pl.DataFrame(
        {
            "article_id": raw["article_id"],
            "label": [None if v == ABSTAIN else names[v] for v in labels],
            "label_probs": [list(map(float, p)) for p in proba],
        },
        schema_overrides={"label": pl.String},
    )
    frame, data = build_frame(raw, auto.drop("label_probs"), limit_train=None, drop_label_issues=True)
    frame = frame.join(auto.select("article_id", "label_probs"), on="article_id", how="left")
    info = {
        "corpus": name,
        "rows": raw.height,
        "classes": names,
        "labels_config": labels_cfg.model_dump(mode="json"),
        "functions": fn_names,
        "label_seconds": round(seconds, 1),
        "auto_labels": score_votes(labels, gold, len(names)),
        "data": data,
    }
    return frame, info


def stage_labels(corpora: list[str], frames: Path, *, limit: int | None) -> None:
    frames.mkdir(parents=True, exist_ok=True)
    for name in corpora:
        log.info("=== labels: %s", name)
        frame, info = build_labelled_frame(name, limit=limit)
        frame.write_parquet(frames / f"{name}.parquet")
        (frames / f"{name}.json").write_text(json.dumps(info, indent=2))
        a = info["auto_labels"]
        print(
            f"{name}: {info['rows']} rows, auto-labels coverage {a['coverage']:.3f} accuracy "
            f"{a['accuracy_on_covered']:.3f} ({info['label_seconds']:.0f} s); train {info['data']['train_rows']} "
            f"val {info['data']['val_rows']} test {info['data']['test_rows']}",
            flush=True,
        )


# ---------------------------------------------------------------- stage 2: peers and recipes


def _texts(frame: pl.DataFrame, split: str) -> tuple[list[str], list[str], list[str]]:
    sub = frame.filter(pl.col("split") == split).sort("article_id")
    return sub["title"].fill_null("").to_list(), sub["text"].fill_null("").to_list(), sub["label"].to_list()


def run_zero_shot(frame: pl.DataFrame, labels_cfg: LabelsConfig) -> dict[str, Any]:
    from newsml_pipeline.core.evaluation.baselines import zero_shot_predictions
    from newsml_pipeline.core.evaluation.metrics import score_predictions

    test = frame.filter(pl.col("split") == "test").sort("article_id")
    t0 = time.perf_counter()
    pred = zero_shot_predictions(test, labels_cfg=labels_cfg)
    return {
        "test_macro_f1": score_predictions(
            test["label"].to_list(), pred.labels, labels=labels_cfg.names
        ).macro_f1,
        "train_seconds": 0.0,
        "predict_seconds": round(time.perf_counter() - t0, 2),
    }


def run_embedding_logreg(frame: pl.DataFrame, labels_cfg: LabelsConfig) -> dict[str, Any]:
    """Logistic regression on the frozen sentence embeddings the labeller itself uses (C on gold val)."""
    from sklearn.linear_model import LogisticRegression

    from newsml_pipeline.core.labeling.functions.zero_shot import configured_article_embeddings
    from newsml_pipeline.core.training.fine_tune import classification_metrics

    names = labels_cfg.names
    t0 = time.perf_counter()
    parts = {}
    for split in ("train", "val", "test"):
        titles, texts, y = _texts(frame, split)
        x = configured_article_embeddings(titles, texts, labels_cfg=labels_cfg)
        parts[split] = (x, np.array([names.index(v) for v in y]))
    embed_seconds = time.perf_counter() - t0
    best = None
    for c in (0.3, 1.0, 3.0, 10.0, 30.0, 100.0):
        clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(*parts["train"])
        f1 = classification_metrics(clf.decision_function(parts["val"][0]), parts["val"][1], names)[
            "macro_f1"
        ]
        if best is None or f1 > best[0]:
            best = (f1, c, clf)
    _, c, clf = best
    test = classification_metrics(clf.decision_function(parts["test"][0]), parts["test"][1], names)
    return {
        "test_macro_f1": test["macro_f1"],
        "test_accuracy": test["accuracy"],
        "C": c,
        "train_seconds": round(time.perf_counter() - t0, 2),
        "embed_seconds": round(embed_seconds, 2),
    }


def recipe_config(recipe: str, *, base_model: str | None, epochs: int | None, seed: int):
    """The shipped training config with the recipe's overrides (nested `lora` merged)."""
    tcfg = load_config(DEFAULT_CONFIG_PATH).training
    upd = dict(RECIPES[recipe])
    lora = upd.pop("lora", None)
    if lora is not None:
        upd["lora"] = tcfg.lora.model_copy(update=lora)
    upd["seed"] = seed
    if base_model:
        upd["base_model"] = base_model
    if epochs:
        upd["epochs"] = epochs
    return tcfg.model_copy(update=upd)


def run_recipe(frame: pl.DataFrame, names: list[str], *, recipe: str, cfg, out_dir: Path) -> dict[str, Any]:
    from newsml_pipeline.core.training.fine_tune import train_classifier

    train_frame = frame.select("article_id", "split", "label", "title", "text")
    res = train_classifier(train_frame, labels=names, training_cfg=cfg, output_dir=out_dir, resume=False)
    return {
        "test_macro_f1": res.metrics["test_macro_f1"],
        "test_accuracy": res.metrics["test_accuracy"],
        "val_macro_f1": res.metrics["val_macro_f1"],
        "train_seconds": round(res.train_seconds, 1),
        "seconds_per_epoch": round(res.seconds_per_epoch, 2),
        "epochs_run": res.epochs_run,
        "best_epoch": res.best_epoch,
        "device": res.device,
        "precision": res.precision,
        "trainable_parameters": res.trainable_parameters,
    }


def run_setfit(
    frame: pl.DataFrame, names: list[str], *, seed: int, base_model: str | None, max_steps: int, out_dir: Path
) -> dict[str, Any]:
    """SetFit's recipe (the `setfit` package): a contrastive sentence-pair stage on the body, then
    a logistic-regression head on the tuned embeddings. Not a pipeline recipe (its model is not a
    transformers classifier the serving path loads): measured to know what it would give."""
    import torch
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from newsml_pipeline.core.model_paths import resolve_model
    from newsml_pipeline.core.training.fine_tune import classification_metrics
    from newsml_pipeline.core.training.inputs import format_input

    def part(split: str) -> tuple[list[str], list[int]]:
        sub = frame.filter(pl.col("split") == split).sort("article_id")
        texts = [
            format_input(t, x) for t, x in zip(sub["title"].to_list(), sub["text"].to_list(), strict=True)
        ]
        return texts, [names.index(v) for v in sub["label"].to_list()]

    (xtr, ytr), (xte, yte) = part("train"), part("test")
    t0 = time.perf_counter()
    model = SetFitModel.from_pretrained(resolve_model(base_model))
    model.model_body.max_seq_length = 128
    args = TrainingArguments(
        output_dir=str(out_dir), batch_size=16, num_epochs=1, max_steps=max_steps, seed=seed, report_to="none"
    )
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_dict({"text": xtr, "label": ytr}))
    trainer.train()
    seconds = time.perf_counter() - t0
    proba = np.asarray(model.predict_proba(xte, as_numpy=True))
    test = classification_metrics(proba, np.array(yte), names)
    return {
        "test_macro_f1": test["macro_f1"],
        "test_accuracy": test["accuracy"],
        "train_seconds": round(seconds, 1),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "max_steps": max_steps,
    }


class Results:
    """The results file, rewritten after every row so an interrupted run keeps what finished."""

    def __init__(self, path: Path, *, append: bool) -> None:
        self.path = path
        old = json.loads(path.read_text()) if append and path.exists() else {}
        # an --append run keeps the earlier runs' provenance beside its own
        self.earlier = [
            *old.get("earlier_runs", []),
            *([{k: old.get(k) for k in ("command", "commit")}] if old else []),
        ]
        self.corpora: dict[str, Any] = old.get("corpora", {})
        self.facts = run_facts()

    def corpus(self, name: str, info: dict[str, Any]) -> dict[str, Any]:
        sec = self.corpora.setdefault(name, {"rows": []})
        sec["labelling"] = {k: info[k] for k in ("rows", "auto_labels", "label_seconds", "data")}
        return sec

    def add(self, name: str, row: dict[str, Any]) -> None:
        self.corpora[name]["rows"].append(row)
        self.write()

    @property
    def summary(self) -> dict[str, Any]:
        return summarize(self.corpora)

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {**provenance(), **self.facts, "earlier_runs": self.earlier}
        payload |= {"corpora": self.corpora, "summary": self.summary}
        self.path.write_text(json.dumps(payload, indent=2, default=str))


def summarize(corpora: dict[str, Any]) -> dict[str, Any]:
    """Per corpus and model: mean ± std test macro-F1 over seeds, mean training seconds."""
    out: dict[str, Any] = {}
    for name, sec in corpora.items():
        by: dict[str, list[dict]] = {}
        for r in sec["rows"]:
            by.setdefault(r["model"], []).append(r)
        out[name] = {
            m: {
                "mean": round(float(np.mean([r["test_macro_f1"] for r in rs])), 4),
                "std": round(float(np.std([r["test_macro_f1"] for r in rs])), 4),
                "n": len(rs),
                "train_seconds": round(float(np.mean([r.get("train_seconds") or 0.0 for r in rs])), 1),
                "device": rs[0].get("device"),
            }
            for m, rs in by.items()
        }
    return out


def stage_models(
    corpora: list[str],
    frames: Path,
    results: Results,
    *,
    recipes: list[str],
    seeds: list[int],
    epochs: int | None,
    base_model: str | None,
    out_dir: Path,
    peers: bool,
    setfit_steps: int = 1000,
) -> None:
    """Peers of every corpus first, then seed by seed every recipe on every corpus: a run cut short
    (a time limit) still holds whole seeds across corpora rather than one corpus in full."""
    from train import run_tfidf

    data = {}
    for name in corpora:
        frame = pl.read_parquet(frames / f"{name}.parquet")
        info = json.loads((frames / f"{name}.json").read_text())
        labels_cfg = LabelsConfig(**info["labels_config"])
        if base_model:
            labels_cfg = labels_cfg.model_copy(update={"embedding_model": base_model})
        data[name] = (frame, info, labels_cfg)
        results.corpus(name, info)
        if peers:
            log.info("=== %s: peers", name)
            results.add(name, {"model": "zero_shot", "seed": None, **run_zero_shot(frame, labels_cfg)})
            tf = run_tfidf(frame.drop("label_probs"), info["classes"])
            results.add(
                name,
                {
                    "model": "tfidf_logreg",
                    "seed": None,
                    **{k: tf[k] for k in ("test_macro_f1", "test_accuracy", "C", "train_seconds")},
                },
            )
            results.add(
                name, {"model": "embedding_logreg", "seed": None, **run_embedding_logreg(frame, labels_cfg)}
            )
    for seed in seeds:
        for name in corpora:
            frame, info, _ = data[name]
            names = info["classes"]
            for recipe in recipes:
                if recipe in LONG_ONLY and name in SHORT_CORPORA:
                    continue
                log.info("=== %s: %s seed %d", name, recipe, seed)
                if recipe == "setfit":
                    row = run_setfit(
                        frame,
                        names,
                        seed=seed,
                        base_model=base_model,
                        max_steps=setfit_steps,
                        out_dir=out_dir / name / f"setfit_{seed}",
                    )
                else:
                    cfg = recipe_config(recipe, base_model=base_model, epochs=epochs, seed=seed)
                    row = run_recipe(
                        frame, names, recipe=recipe, cfg=cfg, out_dir=out_dir / name / f"{recipe}_{seed}"
                    )
                results.add(name, {"model": recipe, "seed": seed, **row})
    for name in corpora:
        print_table(name, results.summary[name])


def print_table(name: str, summary: dict[str, Any]) -> None:
    best_peer = (
        max(summary[p]["mean"] for p in ("tfidf_logreg", "embedding_logreg") if p in summary)
        if any(p in summary for p in ("tfidf_logreg", "embedding_logreg"))
        else None
    )
    print(f"\n== {name}: test macro-F1 on gold rows ==")
    print(f"{'model':<20}{'mean':>8}{'std':>8}{'n':>4}{'vs best peer':>14}{'train s':>9}  device")
    for m, s in summary.items():
        gap = "" if best_peer is None else f"{s['mean'] - best_peer:+.3f}"
        print(
            f"{m:<20}{s['mean']:8.4f}{s['std']:8.4f}{s['n']:4d}{gap:>14}{s['train_seconds']:9.1f}  {s['device'] or ''}"
        )
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", choices=["labels", "models", "all"], default="all")
    ap.add_argument("--corpora", default=CORPORA_DEFAULT)
    ap.add_argument("--recipes", default=",".join(RECIPES), help=f"comma list of {list(RECIPES)} and setfit")
    ap.add_argument("--setfit-steps", type=int, default=1000, help="contrastive steps of the setfit row")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="default: the shipped training config")
    ap.add_argument("--limit", type=int, default=None, help="rows per corpus (class-stratified)")
    ap.add_argument("--no-peers", action="store_true", help="recipes only (peers already in --json)")
    ap.add_argument("--append", action="store_true", help="add rows to an existing --json")
    ap.add_argument("--base-model", default=None, help="local model dir (default: the packaged MiniLM)")
    ap.add_argument("--quick", action="store_true", help="300 rows, 1 seed, 1 epoch: a smoke run")
    ap.add_argument("--frames", type=Path, default=Path("/tmp/newsml_bench_learners/frames"))
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/newsml_bench_learners/models"))
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "learners.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.quick:
        args.limit, args.seeds, args.epochs = args.limit or 300, 1, 1
    corpora = [c.strip() for c in args.corpora.split(",") if c.strip()]
    unknown = [r for r in args.recipes.split(",") if r not in RECIPES and r != "setfit"]
    if unknown:
        raise SystemExit(f"unknown recipes {unknown}; known: {list(RECIPES)}")
    if args.stage in ("labels", "all"):
        stage_labels(corpora, args.frames, limit=args.limit)
    if args.stage in ("models", "all"):
        results = Results(args.json, append=args.append)
        stage_models(
            corpora,
            args.frames,
            results,
            recipes=args.recipes.split(","),
            seeds=list(range(args.first_seed, args.first_seed + args.seeds)),
            epochs=args.epochs,
            base_model=args.base_model,
            out_dir=args.out_dir,
            peers=not args.no_peers,
            setfit_steps=1 if args.quick else args.setfit_steps,
        )
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
