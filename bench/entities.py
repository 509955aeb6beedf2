"""Named-entity benchmark: stock en_core_web_sm vs the label model vs the refined recognizer.

The refined model is trained on auto-labels (no gold) of BBC + Reuters text with a config of
PER, ORG, LOC (bench/schemas/entities_per_org_loc.yaml), then every model is scored with strict
span F1 (type, start and end must match) per type and micro on each gold file, on its news and
Wikipedia sentences separately when the sentence ids say which (UNER English-PUD: `n…` / `w…`).
Also: training time, entities per second at inference, and for the custom types of the shipped
config (newsml_pipeline/config/entities.yaml) how often a refined model trained with that config
agrees with its sources on held-out articles: AGREEMENT with the auto-labels, not accuracy.

    nice python bench/entities.py [--gold PATH.iob2 ...] [--json OUT] [--seeds 3] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from statistics import mean, pstdev
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from provenance import commit as provenance_commit  # noqa: E402
from provenance import provenance  # noqa: E402

from newsml_pipeline.core.entities.autolabel import autolabel  # noqa: E402
from newsml_pipeline.core.entities.gold import GoldSentence, read_gold  # noqa: E402
from newsml_pipeline.core.entities.metrics import span_scores  # noqa: E402
from newsml_pipeline.core.entities.model import EntityRecognizer, load_pretrained  # noqa: E402
from newsml_pipeline.core.entities.splits import split_articles  # noqa: E402
from newsml_pipeline.core.entities.train_spacy import train_spacy_ner, training_sentences  # noqa: E402
from newsml_pipeline.entity_settings import EntitiesConfig  # noqa: E402
from testkit.corpora import CORPORA, read_jsonl_gz  # noqa: E402

log = logging.getLogger("bench.entities")
DEFAULT_GOLD = CORPORA / "uner_en_pud" / "en_pud_ner.iob2"
BENCH_CONFIG = ROOT / "bench" / "schemas" / "entities_per_org_loc.yaml"
SHIPPED_CONFIG = ROOT / "newsml_pipeline" / "config" / "entities.yaml"
PARTS = {"n": "news", "w": "wikipedia"}


def load_entities_cfg(path: Path) -> EntitiesConfig:
    return EntitiesConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8"))["entities"])


def load_articles(limit: int) -> tuple[list[str], list[str], list[str | None]]:
    """(ids, texts, content hashes) of the first `limit` BBC and `limit` Reuters articles; BBC
    exact copies point at their original so the split keeps them together. Reuters titles are
    all capitals (useless to a cased NER): its body only."""
    ids, texts, dup = [], [], []
    for r in read_jsonl_gz(CORPORA / "bbc_news" / "bbc_news.jsonl.gz", limit=limit):
        ids.append(r["id"])
        texts.append(f"{r['title']}.\n{r['text']}")
        dup.append(r.get("duplicate_of"))
    for r in read_jsonl_gz(CORPORA / "reuters21578" / "reuters21578.jsonl.gz", limit=limit):
        body = " ".join((r.get("text") or "").split())
        if body:
            ids.append(r["id"])
            texts.append(body)
            dup.append(None)
    return ids, texts, dup


def parts_of(gold: list[GoldSentence]) -> dict[str, list[int]]:
    """Sentence indices per part: news / wikipedia by UNER sentence id, else one part `all`."""
    parts: dict[str, list[int]] = {}
    for i, s in enumerate(gold):
        parts.setdefault(PARTS.get(s.id[:1], "all"), []).append(i)
    return parts if set(parts) <= set(PARTS.values()) else {"all": list(range(len(gold)))}


def score(gold: list[GoldSentence], pred: list[list], types: list[str], idx: list[int]) -> dict[str, Any]:
    s = span_scores([gold[i].entities for i in idx], [pred[i] for i in idx], types=types)
    return {
        "micro_f1": round(s["micro"]["f1"], 4),
        "micro_precision": round(s["micro"]["precision"], 4),
        "micro_recall": round(s["micro"]["recall"], 4),
        "per_type_f1": {t: round(v["f1"], 4) for t, v in s["per_type"].items()},
        "support": int(s["micro"]["support"]),
    }


def mean_scores(runs: list[dict[str, Any]], types: list[str]) -> dict[str, Any]:
    return {
        "micro_f1": round(mean(r["micro_f1"] for r in runs), 4),
        "micro_f1_std": round(pstdev([r["micro_f1"] for r in runs]), 4),
        "per_type_f1": {t: round(mean(r["per_type_f1"][t] for r in runs), 4) for t in types},
        "seeds": runs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--gold", type=Path, nargs="+", default=[DEFAULT_GOLD], help="IOB2/CoNLL or JSONL gold files"
    )
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "entities.json")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--limit", type=int, default=300, help="articles per corpus (BBC, Reuters) to auto-label")
    ap.add_argument("--epochs", type=int, default=None, help="default: the bench config's training.epochs")
    ap.add_argument("--strategy", choices=["rehearsal", "mixed"], default=None)
    ap.add_argument(
        "--config", type=Path, default=BENCH_CONFIG, help="entities config of the PER/ORG/LOC run"
    )
    ap.add_argument("--skip-custom", action="store_true", help="skip the shipped config's agreement run")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    commit = provenance_commit()  # at start: the code that runs, even if the checkout moves meanwhile
    cfg = load_entities_cfg(args.config)
    types = cfg.names
    strategy = args.strategy or cfg.training.strategy

    ids, texts, dup = load_articles(args.limit)
    split = split_articles(
        ids, near_duplicate_of=dup, salt="entities-bench", val_fraction=0.0, test_fraction=0.2
    )
    t0 = time.perf_counter()
    labeller = load_pretrained()
    labelled, _ = autolabel(labeller, cfg, ids, texts)
    label_s = time.perf_counter() - t0
    train_rows = training_sentences(
        [s for s in labelled if split[s.article_id] == "train"],
        max_abstain_share=cfg.label_model.max_abstain_share,
    )
    log.info(
        "auto-labelled %d sentences in %.0fs; %d train sentences", len(labelled), label_s, len(train_rows)
    )

    golds = {str(p): read_gold(p) for p in args.gold}
    stock = EntityRecognizer.stock(cfg)
    results: dict[str, Any] = {}
    preds: dict[str, dict[str, Any]] = {}
    for path, gold in golds.items():
        texts_g = [s.text for s in gold]
        lm, _ = autolabel(labeller, cfg, [s.id for s in gold], texts_g, split_sentences=False)
        preds[path] = {
            "stock": stock.predict(texts_g),
            "label_model": [s.entities for s in lm],
            "refined": [],
        }

    train_seconds, ents_per_s = [], []
    for seed in range(args.seeds):
        res = train_spacy_ner(train_rows, cfg, seed=seed, strategy=strategy, epochs=args.epochs)
        train_seconds.append(res.seconds)
        n_ents, t_pred = 0, 0.0
        for path, gold in golds.items():
            t1 = time.perf_counter()
            p = res.recognizer.predict([s.text for s in gold])
            t_pred += time.perf_counter() - t1
            n_ents += sum(len(x) for x in p)
            preds[path]["refined"].append(p)
        ents_per_s.append(n_ents / t_pred if t_pred else 0.0)
        log.info("seed %d: trained in %.0fs (losses %s)", seed, res.seconds, [round(x) for x in res.losses])

    for path, gold in golds.items():
        entry: dict[str, Any] = {"parts": {}}
        for part, idx in [("all", list(range(len(gold)))), *parts_of(gold).items()]:
            if part == "all" and len(parts_of(gold)) == 1:
                continue
            row = {
                "sentences": len(idx),
                "stock": score(gold, preds[path]["stock"], types, idx),
                "label_model": score(gold, preds[path]["label_model"], types, idx),
                "refined": mean_scores([score(gold, p, types, idx) for p in preds[path]["refined"]], types),
            }
            entry["parts"][part] = row
        top = entry["parts"].get("all") or next(iter(entry["parts"].values()))
        entry.update({k: top[k] for k in ("stock", "label_model", "refined")})
        results[path] = entry

    custom: dict[str, Any] = {}
    if not args.skip_custom:
        custom = custom_agreement(labeller, ids, texts, split, seed=0, epochs=args.epochs)

    payload = {
        **provenance(),
        "commit": commit,
        "config": str(args.config.relative_to(ROOT))
        if args.config.is_relative_to(ROOT)
        else str(args.config),
        "strategy": strategy,
        "articles": len(ids),
        "train_sentences": len(train_rows),
        "autolabel_seconds": round(label_s, 1),
        "train_seconds": [round(s, 1) for s in train_seconds],
        "entities_per_second": [round(x, 1) for x in ents_per_s],
        "gold": results,
        "custom_type_agreement": custom,
    }
    print_table(payload, types)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def custom_agreement(labeller, ids, texts, split, *, seed: int, epochs: int | None) -> dict[str, Any]:
    """Train with the shipped config; on held-out articles, strict span agreement between the
    refined model and the label model for each custom type (agreement, not accuracy)."""
    cfg = load_entities_cfg(SHIPPED_CONFIG)
    custom_types = [t.name for t in cfg.types if not t.spacy_labels]
    labelled, _ = autolabel(labeller, cfg, ids, texts)
    train = training_sentences(
        [s for s in labelled if split[s.article_id] == "train"],
        max_abstain_share=cfg.label_model.max_abstain_share,
    )
    held = [s for s in labelled if split[s.article_id] == "test"]
    res = train_spacy_ner(train, cfg, seed=seed, epochs=epochs)
    pred = res.recognizer.predict([s.text for s in held])
    s = span_scores([h.entities for h in held], pred, types=custom_types)
    return {
        "note": "agreement of the refined model with its sources' label model on held-out articles, not accuracy",
        "held_out_sentences": len(held),
        "per_type": {t: {k: round(v, 4) for k, v in s["per_type"][t].items()} for t in custom_types},
    }


def print_table(payload: dict[str, Any], types: list[str]) -> None:
    cols = ["micro", *types]
    print(
        f"\nstrict span F1 (refined: mean of {len(payload['train_seconds'])} seeds, strategy {payload['strategy']})"
    )
    for path, entry in payload["gold"].items():
        for part, row in entry["parts"].items():
            print(f"\n{Path(path).name} [{part}] ({row['sentences']} sentences)")
            print(f"{'model':<14}" + "".join(f"{c:>9}" for c in cols))
            for key in ("stock", "label_model", "refined"):
                r = row[key]
                print(
                    f"{key:<14}{r['micro_f1']:>9.3f}" + "".join(f"{r['per_type_f1'][t]:>9.3f}" for t in types)
                )
    print(f"\ntraining seconds per seed: {payload['train_seconds']} ({payload['train_sentences']} sentences)")
    print(f"refined entities/s at inference: {payload['entities_per_second']}")
    if payload["custom_type_agreement"]:
        print(
            "custom types of the shipped config, agreement with the sources on held-out text (NOT accuracy):"
        )
        for t, v in payload["custom_type_agreement"]["per_type"].items():
            print(
                f"  {t:<18} agreement F1 {v['f1']:.3f}  (label-model spans {int(v['support'])}, model spans {int(v['predicted'])})"
            )


if __name__ == "__main__":
    main()
