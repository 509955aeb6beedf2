"""Which training recipe makes a first weekly retrain clearly better than zero-shot?

`newsml demo`'s gate compares the candidate with zero-shot on silver test rows; on seven days of
headlines the default recipe cleared zero-shot + 0.05 in 3 of 5 seeds (bench/demo_seeds.py). This
replays that first retrain offline, once per recipe, on the exact data the schedule saw: it reads
the warehouse a finished demo left (`bench/demo_seeds.py --workdir W` keeps W/seedS), keeps the
labelled days before the retrain, builds the splits as `dataset_splits` does (assess_splits with
the demo's own config), trains with `train_classifier` and scores candidate and zero-shot with
`run_evaluation` (the gate's own code). A row is written as soon as it finishes. `--home` replays
another finished home the same way (bench/newsroom.py's keeps newsroom.yaml; give its retrain day).

    python bench/demo_recipes.py --homes /tmp/newsml_demo_seeds2 --recipes demo all_layers
    python bench/demo_recipes.py --home /tmp/nr/home --retrain-day 2026-11-16 --recipes demo defaults
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from provenance import ROOT, provenance

# Overrides of the demo's `training:` section, by name. "demo" is the shipped demo config.
RECIPES: dict[str, dict[str, Any]] = {
    "demo": {},
    "all_layers": {"lora": {"top_layers": None}},
    "all_layers_lr5e-4": {"lora": {"top_layers": None}, "learning_rate": 5e-4},
    "all_layers_8ep": {"lora": {"top_layers": None}, "epochs": 8, "early_stopping_patience": 3},
    "top3_8ep": {"epochs": 8, "early_stopping_patience": 3},
    "all_layers_len64": {"lora": {"top_layers": None}, "max_length": 64},
    "no_smoothing": {"label_smoothing": 0.0},
    "full_ft": {"full_finetune": True, "learning_rate": 5e-5},
    # the shipped training defaults (settings.TrainingConfig) over whatever the home configured
    "defaults": {
        "epochs": 5,
        "learning_rate": 5e-4,
        "early_stopping_patience": 2,
        "lora": {"top_layers": None},
    },
    "defaults_lr1e-3": {
        "epochs": 5,
        "learning_rate": 1e-3,
        "early_stopping_patience": 2,
        "lora": {"top_layers": None},
    },
}


def first_retrain_frame(home: Path, retrain_day: date) -> Any:
    """labeled ⋈ raw for the days the first weekly retrain saw (partitions before its day)."""
    import polars as pl

    from newsml_pipeline.core.data.warehouse import Warehouse
    from newsml_pipeline.defs.training import labeled_with_raw

    wh = Warehouse(home / "warehouse.duckdb")
    frame = labeled_with_raw(wh)
    return frame.filter(pl.col("partition_date") < retrain_day)


def run_recipe(home: Path, name: str, retrain_day: date, work: Path) -> dict[str, Any]:
    import polars as pl

    from newsml_pipeline.core.data.readiness import assess_splits
    from newsml_pipeline.core.evaluation.report import run_evaluation
    from newsml_pipeline.core.training.fine_tune import train_classifier
    from newsml_pipeline.newsroom.demo import deep_merge
    from newsml_pipeline.settings import NewsmlConfig, load_config

    configs = sorted(home.glob("*.yaml"))
    if len(configs) != 1:
        raise SystemExit(f"{home}: expected one config (demo.yaml, newsroom.yaml), found {configs}")
    cfg = load_config(configs[0], home=home)
    training = deep_merge(cfg.training.model_dump(), RECIPES[name])
    cfg = NewsmlConfig.model_validate(cfg.model_dump() | {"training": training})
    assessed = assess_splits(first_retrain_frame(home, retrain_day), config=cfg, today=retrain_day)
    if assessed.error is not None:
        raise assessed.error
    splits = assessed.splits
    assert splits is not None
    splits = splits.with_columns(evaluation_kind=pl.lit(assessed.report["evaluation"]))
    frame = splits.join(
        first_retrain_frame(home, retrain_day).select("article_id", "title", "text", "url"), on="article_id"
    ).sort("article_id")
    started = time.perf_counter()
    result = train_classifier(
        frame, labels=cfg.labels.names, training_cfg=cfg.training, output_dir=work / name
    )
    train_s = time.perf_counter() - started
    test_rows = frame.filter(pl.col("split") == "test")
    ev = run_evaluation(
        test_rows,
        cfg=cfg,
        candidate_model_dir=result.model_dir,
        evaluation_kind=assessed.report["evaluation"],
        measure_precision=False,
    )
    m = ev.metrics()
    return {
        "home": str(home),
        "recipe": name,
        "overrides": RECIPES[name],
        "evaluation": assessed.report["evaluation"],
        "n_train": result.n_train,
        "n_val": result.n_val,
        "n_test": len(test_rows),
        "candidate_macro_f1": m["candidate_macro_f1"],
        "zero_shot_macro_f1": m["baseline_macro_f1"],
        "margin": m["candidate_macro_f1"] - m["baseline_macro_f1"],
        "gate_passed": ev.gate.passed,
        "gate_reasons": ev.gate.reasons,
        "val_macro_f1": result.metrics.get("val_macro_f1"),
        "epochs_run": result.epochs_run,
        "train_seconds": round(train_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    from newsml_pipeline.newsroom.demo import FIRST_RETRAIN_DAY, START

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--homes", type=Path, help="a demo_seeds --workdir (seed*/ inside)")
    where.add_argument("--home", type=Path, help="one finished home (its config is the one *.yaml there)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="with --homes")
    ap.add_argument(
        "--retrain-day",
        type=date.fromisoformat,
        default=None,
        help="default: the demo's first weekly retrain",
    )
    ap.add_argument("--recipes", nargs="+", default=["demo", "all_layers"], choices=sorted(RECIPES))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "demo_recipes.json")
    args = ap.parse_args(argv)
    head = provenance(None if argv is None else [str(Path(__file__)), *argv])
    retrain_day = args.retrain_day or START + timedelta(days=FIRST_RETRAIN_DAY - 1)
    homes = {None: args.home} if args.home else {s: args.homes / f"seed{s}" for s in args.seeds}
    rows: list[dict[str, Any]] = []
    for recipe in args.recipes:
        for seed, home in homes.items():
            with tempfile.TemporaryDirectory(prefix="demo_recipe_") as work:
                row = {"seed": seed, **run_recipe(home, recipe, retrain_day, Path(work))}
            rows.append(row)
            print(
                f"{recipe:>20} seed {seed}: candidate {row['candidate_macro_f1']:.3f} zero-shot "
                f"{row['zero_shot_macro_f1']:.3f} margin {row['margin']:+.3f} "
                f"{'deploy' if row['gate_passed'] else 'block'} {row['train_seconds']:.0f} s",
                flush=True,
            )
            args.out.write_text(json.dumps({**head, "retrain_day": str(retrain_day), "rows": rows}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
