"""Generality benchmark: auto-labels and the deployed model on schemas nobody tuned for.

For each corpus, with a schema from `bench/schemas/` written once before any result was seen
(BBC; BBC reduced to title + first sentence; Reuters-21578's eight largest single-topic classes):

1. labelling: every labelling function alone and the label model (the shipped defaults of
   `labels.functions` / `labels.dependent_functions`, plus variants), each as coverage,
   accuracy on the covered rows and macro-F1 over all rows (an abstention counts as wrong), on
   the gold labels of every row. All functions run once (one `compute_votes` call); the label
   model variants are refits on column subsets of the same votes;
2. training: the deployed candidate (LoRA MiniLM, the shipped `training` config, as
   `bench/train.py` runs it) beside TF-IDF + logistic regression, both trained on the *same*
   auto-labels (train split, abstentions and flagged label issues dropped, as `dataset_splits`
   does), scored on the gold test rows; mean ± std over seeds.

`--quick`: a few hundred rows per corpus, one seed, one epoch (a smoke run, not a result).

    python bench/generality.py [--corpora bbc,bbc_short,reuters] [--seeds 3] [--epochs N]
                               [--skip-training] [--quick] [--json bench/results/generality.json]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from provenance import provenance  # noqa: E402

from newsml_pipeline.core.labeling.pipeline import combine_votes, compute_votes, dependent_groups  # noqa: E402
from newsml_pipeline.core.labeling.schema import ABSTAIN  # noqa: E402
from newsml_pipeline.core.training.device import available_cores  # noqa: E402
from newsml_pipeline.settings import DEFAULT_CONFIG_PATH, LabelsConfig, load_config  # noqa: E402
from testkit.corpora import CORPORA  # noqa: E402

log = logging.getLogger("bench.generality")
SCHEMAS = ROOT / "bench" / "schemas"
ALL_FUNCTIONS = ["keywords", "url_section", "entities", "zero_shot", "transductive", "keyword_expansion"]
CORPUS_FILES = {
    "bbc_news": CORPORA / "bbc_news" / "bbc_news.jsonl.gz",
    "reuters21578": CORPORA / "reuters21578" / "reuters21578.jsonl.gz",
    "news_category": CORPORA / "news_category" / "news_category.jsonl.gz",
}
# benchmark corpus -> (schema file, view)
BENCH = {
    "bbc": ("bbc.yaml", "full"),
    "bbc_short": ("bbc.yaml", "short"),
    "reuters": ("reuters.yaml", "full"),
    "dev": ("dev_news_category.yaml", "full"),  # development corpus: not in the default run
}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


def _hash(s: str) -> int:
    return int(hashlib.sha1(s.encode()).hexdigest()[:8], 16)


def first_sentence(text: str) -> str:
    """The text's first sentence (up to the first . ! ? followed by a capitalised word)."""
    text = " ".join(text.split())
    return _SENTENCE_END.split(text, maxsplit=1)[0] if text else ""


def _topics(r: dict) -> list[str]:
    t = r.get("topics") or []
    if isinstance(t, str):
        t = json.loads(t.replace("'", '"'))
    return list(t)


def load_corpus(name: str, *, limit: int | None = None) -> tuple[pl.DataFrame, LabelsConfig, dict]:
    """(raw rows with gold_label as the schema's category names, the schema as LabelsConfig,
    the schema file's content). Reuters: single-topic stories only; `max_per_class` caps each
    class by a hash of the id; `limit` keeps a class-stratified hash sample of that many rows."""
    schema_file, view = BENCH[name]
    sch = yaml.safe_load((SCHEMAS / schema_file).read_text(encoding="utf-8"))
    gold = {c["gold"]: c["name"] for c in sch["categories"]}
    with gzip.open(CORPUS_FILES[sch["corpus"]], "rt", encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh]
    rows = []
    for r in records:
        if sch["corpus"] == "reuters21578":
            topics = _topics(r)
            label = topics[0] if len(topics) == 1 else None
        else:
            label = r.get("label")
        if label not in gold or r.get("duplicate_of") not in (None, "None"):
            continue
        text = r.get("text") or ""
        url = r.get("url")
        rows.append(
            {
                "article_id": r["id"],
                "title": r.get("title") or "",
                "text": first_sentence(text) if view == "short" else text,
                "url": None if url in (None, "None") else url,
                "gold_label": gold[label],
            }
        )
    rows.sort(key=lambda x: (_hash(x["article_id"]), x["article_id"]))
    cap = sch.get("max_per_class")
    if limit:
        cap = min(cap or limit, max(1, limit // len(gold)))
    if cap:
        seen: dict[str, int] = {}
        kept = []
        for x in rows:
            if seen.get(x["gold_label"], 0) < cap:
                seen[x["gold_label"]] = seen.get(x["gold_label"], 0) + 1
                kept.append(x)
        rows = kept
    rows.sort(key=lambda x: x["article_id"])
    shipped = load_config(DEFAULT_CONFIG_PATH).labels
    cats = [{k: v for k, v in c.items() if k != "gold"} for c in sch["categories"]]
    labels_cfg = shipped.model_copy(update={"categories": LabelsConfig(categories=cats).categories})
    return pl.DataFrame(rows, schema_overrides={"url": pl.String}), labels_cfg, sch


def score_votes(votes: np.ndarray, gold: np.ndarray, k: int) -> dict[str, float]:
    """coverage, accuracy on covered rows, macro-F1 over all rows (abstain = wrong)."""
    from sklearn.metrics import f1_score

    covered = votes != ABSTAIN
    return {
        "coverage": round(float(covered.mean()), 4),
        "accuracy_on_covered": round(float((votes[covered] == gold[covered]).mean()), 4)
        if covered.any()
        else None,
        "macro_f1": round(
            float(f1_score(gold, votes, labels=list(range(k)), average="macro", zero_division=0)), 4
        ),
    }


def label_model_variants(shipped_functions: list[str]) -> dict[str, list[str]]:
    """Function sets the label model is measured on (the first is what the pipeline ships)."""
    return {
        "shipped_default": shipped_functions,
        "all_functions": ALL_FUNCTIONS,
        "classic_four": ["keywords", "url_section", "entities", "zero_shot"],
        "no_entities": [f for f in ALL_FUNCTIONS if f != "entities"],
    }


def run_labelling(
    raw: pl.DataFrame, labels_cfg: LabelsConfig
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Per-function and label-model scores; returns (section, {variant: label vector})."""
    names = labels_cfg.names
    k = len(names)
    gold = np.array([names.index(g) for g in raw["gold_label"]], dtype=np.int64)
    all_cfg = labels_cfg.model_copy(update={"functions": ALL_FUNCTIONS})
    t0 = time.perf_counter()
    votes, fn_names, info = compute_votes(
        raw["title"].to_list(), raw["text"].to_list(), raw["url"].to_list(), labels_cfg=all_cfg
    )
    seconds = time.perf_counter() - t0
    section: dict[str, Any] = {"rows": raw.height, "vote_seconds": round(seconds, 1), "functions": {}}
    for j, fn in enumerate(fn_names):
        section["functions"][fn] = score_votes(votes[:, j], gold, k)
    # Note: `entities` learned from the agreement of *all* the other functions in this run.
    section["expanded_keywords"] = info.get("expanded_keywords")
    section["transductive_info"] = {
        key: v for key, v in info.get("transductive", {}).items() if key != "seconds"
    }
    section["label_model"] = {}
    labels_out = {}
    for variant, fns in label_model_variants(list(labels_cfg.functions)).items():
        cols = [fn_names.index(f) for f in fns]
        sub = votes[:, cols]
        for grouped in (True, False):
            groups = dependent_groups(fns, labels_cfg.dependent_functions) if grouped else []
            if not grouped and not dependent_groups(fns, labels_cfg.dependent_functions):
                continue
            labels, _, _ = combine_votes(
                sub, k=k, method="dawid_skene", min_confidence=labels_cfg.min_confidence, groups=groups
            )
            key = variant if grouped else f"{variant} (independent)"
            section["label_model"][key] = {"functions": fns, **score_votes(labels, gold, k)}
            labels_out[key] = labels
        if variant == "shipped_default":
            mv, _, _ = combine_votes(
                sub, k=k, method="majority_vote", min_confidence=labels_cfg.min_confidence
            )
            section["label_model"]["shipped_default (majority vote)"] = {
                "functions": fns,
                **score_votes(mv, gold, k),
            }
    return section, labels_out


def run_training(
    raw: pl.DataFrame,
    labels: np.ndarray,
    labels_cfg: LabelsConfig,
    *,
    seeds: list[int],
    epochs: int | None,
    out_dir: Path,
    limit_train: int | None,
    prior_runs: dict[str, list[dict]] | None = None,
    on_seed: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """LoRA candidate vs TF-IDF + LR on the same auto-labels, gold test rows, per seed.
    `prior_runs` (from an earlier --append run on the same labels) are kept for other seeds;
    `on_seed` gets the section so far after every seed (a ~20-minute training is not lost to an
    interrupted run: `--append --first-seed` goes on from there)."""
    from train import build_frame, run_tfidf, run_transformer

    names = labels_cfg.names
    auto = pl.DataFrame(
        {"article_id": raw["article_id"], "label": [None if v == ABSTAIN else names[v] for v in labels]},
        schema_overrides={"label": pl.String},
    )
    frame, data = build_frame(raw, auto, limit_train=limit_train, drop_label_issues=True)
    tcfg = load_config(DEFAULT_CONFIG_PATH).training
    if epochs:
        tcfg = tcfg.model_copy(update={"epochs": epochs})
    runs: dict[str, list[dict]] = {"tfidf_logreg": [], "lora": []}
    runs_done = prior_runs or {}
    for model in runs:
        runs[model] = [r for r in runs_done.get(model, []) if r["seed"] not in seeds]
    tfidf = run_tfidf(frame, names)  # deterministic (liblinear/lbfgs): one fit serves every seed
    for seed in seeds:
        runs["tfidf_logreg"].append(
            {"seed": seed, **{k: tfidf[k] for k in ("test_macro_f1", "test_accuracy", "C")}}
        )
        r = run_transformer(
            frame, names, name=f"lora_seed{seed}", cfg=tcfg.model_copy(update={"seed": seed}), out_dir=out_dir
        )
        runs["lora"].append(
            {
                "seed": seed,
                **{
                    key: r[key]
                    for key in (
                        "test_macro_f1",
                        "test_accuracy",
                        "seconds_per_epoch",
                        "epochs_run",
                        "best_epoch",
                        "device",
                    )
                },
            }
        )
        if on_seed is not None:
            on_seed(_training_section(data, tcfg.epochs, runs))
    return _training_section(data, tcfg.epochs, runs)


def _training_section(data: dict, epochs: int, runs: dict[str, list[dict]]) -> dict[str, Any]:
    summary = {}
    for model, rs in runs.items():
        f1 = np.array([x["test_macro_f1"] for x in rs])
        summary[model] = {
            "mean": round(float(f1.mean()), 4),
            "std": round(float(f1.std(ddof=0)), 4),
            "n": len(f1),
        }
    return {"data": data, "epochs": epochs, "runs": runs, "test_macro_f1": summary}


def _write(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))


def _save_training(path: Path, payload: dict[str, Any], name: str, training: dict[str, Any]) -> None:
    payload["corpora"][name]["training"] = training
    _write(path, payload)


def _fmt(v: Any) -> str:
    return "   -  " if v is None else f"{v:6.3f}"


def print_labelling(name: str, section: dict) -> None:
    print(f"\n== {name}: {section['rows']} rows, gold on every row ==")
    print(f"{'function / label model':<44}{'cover':>7}{'acc':>7}{'mF1':>7}")
    for fn, s in section["functions"].items():
        print(f"{fn:<44}{_fmt(s['coverage'])} {_fmt(s['accuracy_on_covered'])} {_fmt(s['macro_f1'])}")
    for var, s in section["label_model"].items():
        print(
            f"{'LM ' + var:<44}{_fmt(s['coverage'])} {_fmt(s['accuracy_on_covered'])} {_fmt(s['macro_f1'])}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", default="bbc,bbc_short,reuters")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed .. first-seed+seeds-1")
    ap.add_argument("--epochs", type=int, default=None, help="LoRA epochs (default: the shipped config)")
    ap.add_argument("--limit", type=int, default=None, help="rows per corpus (class-stratified)")
    ap.add_argument("--limit-train", type=int, default=None, help="train rows for the models")
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument(
        "--append",
        action="store_true",
        help="keep the training runs of other seeds already in --json (same labels) and add these",
    )
    ap.add_argument("--quick", action="store_true", help="300 rows, 1 seed, 1 epoch: a smoke run")
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/newsml_bench_generality"))
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "generality.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.quick:
        args.limit, args.seeds, args.epochs = args.limit or 300, 1, 1
    payload: dict[str, Any] = {
        **provenance(),
        "machine": {"cores": available_cores(), "cpu": platform.processor() or platform.machine()},
        "corpora": {},
    }
    previous = json.loads(args.json.read_text()) if args.append and args.json.exists() else {"corpora": {}}
    if args.append:
        payload["corpora"] = previous["corpora"]
        # Each invocation's command and commit, in order: the file holds runs of all of them.
        for key in ("command", "commit"):
            payload[key] = previous.get(key, "unknown") + " ; " + payload[key]
    for name in [c.strip() for c in args.corpora.split(",") if c.strip()]:
        raw, labels_cfg, sch = load_corpus(name, limit=args.limit)
        log.info("=== %s: %d rows, %d classes", name, raw.height, len(labels_cfg.names))
        section, labels = run_labelling(raw, labels_cfg)
        section["schema"] = BENCH[name][0]
        section["view"] = BENCH[name][1]
        print_labelling(name, section)
        before = previous["corpora"].get(name, {})
        payload["corpora"][name] = {"labelling": section}
        if before.get("labelling", {}).get("label_model") not in (None, section["label_model"]):
            raise SystemExit(f"{name}: labels differ from the earlier run in {args.json}; cannot --append")
        if before.get("training") and args.skip_training:
            payload["corpora"][name]["training"] = before["training"]
        if not args.skip_training:
            tr = run_training(
                raw,
                labels["shipped_default"],
                labels_cfg,
                seeds=list(range(args.first_seed, args.first_seed + args.seeds)),
                epochs=args.epochs,
                out_dir=args.out_dir / name,
                limit_train=args.limit_train,
                prior_runs=before.get("training", {}).get("runs"),
                on_seed=lambda tr, name=name: _save_training(args.json, payload, name, tr),
            )
            payload["corpora"][name]["training"] = tr
            s = tr["test_macro_f1"]
            print(
                f"trained on the shipped label model's labels ({tr['data']['train_rows']} rows): "
                f"LoRA {s['lora']['mean']:.4f} ± {s['lora']['std']:.4f} vs TF-IDF "
                f"{s['tfidf_logreg']['mean']:.4f} ± {s['tfidf_logreg']['std']:.4f} test macro-F1 (n={s['lora']['n']})"
            )
        _write(args.json, payload)  # partial results survive
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
