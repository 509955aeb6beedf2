"""Training precision on this CPU: fp32 vs bf16 autocast, time per sample, same data, interleaved.

`training.precision: auto` must hold on every CPU (AVX2 only, AVX-512 with bf16 dot products,
AMX). Quality of bf16 vs fp32 training is in bench/learners.py (recipes `full_ft` vs
`full_ft_fp32`); this measures the other half, the time, on the machine that runs it: the
project's own `train_classifier` for one epoch on the same rows, fp32 and bf16 alternating
(`--reps` each) so a busy machine slows both alike.

    python bench/precision.py [--frame /tmp/newsml_bench_learners/frames/bbc_short.parquet]
                              [--rows 192] [--reps 2] [--max-length 64]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from learners import run_facts  # noqa: E402
from provenance import provenance  # noqa: E402

from newsml_pipeline.core.training.device import has_native_bf16  # noqa: E402
from newsml_pipeline.settings import DEFAULT_CONFIG_PATH, load_config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frame", type=Path, default=Path("/tmp/newsml_bench_learners/frames/bbc_short.parquet"))
    ap.add_argument("--rows", type=int, default=192, help="train rows (val/test: 64 each)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "precision.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from newsml_pipeline.core.training.fine_tune import train_classifier

    frame = pl.read_parquet(args.frame).sort("article_id")
    names = sorted(frame["label"].unique().to_list())
    per_class = max(1, args.rows // len(names))
    parts = [  # the same number of rows of every class (the frame's order is a hash of the id)
        frame.filter(pl.col("split") == split).group_by("label", maintain_order=True).head(n)
        for split, n in (("train", per_class), ("val", 12), ("test", 12))
    ]
    data = pl.concat(parts).select("article_id", "split", "label", "title", "text")
    base = load_config(DEFAULT_CONFIG_PATH).training.model_copy(
        update={"epochs": 1, "max_length": args.max_length, "early_stopping_patience": 0, "device": "cpu"}
    )
    precisions = ["fp32", "bf16"] if has_native_bf16("cpu") else ["fp32"]
    rates: dict[str, list[float]] = {p: [] for p in precisions}
    for rep in range(args.reps):
        for p in precisions:
            with tempfile.TemporaryDirectory() as tmp:
                r = train_classifier(
                    data,
                    labels=names,
                    training_cfg=base.model_copy(update={"precision": p}),
                    output_dir=tmp,
                    resume=False,
                )
            rates[p].append(r.samples_per_s)
            print(f"rep {rep} {p}: {r.samples_per_s:.1f} samples/s", flush=True)
    rows = {p: {"samples_per_s_median": round(statistics.median(v), 2), "runs": v} for p, v in rates.items()}
    print(f"\n{'precision':<10}{'samples/s':>12}")
    for p, v in rows.items():
        print(f"{p:<10}{v['samples_per_s_median']:12.2f}")
    if "bf16" in rows:
        print(
            f"bf16 / fp32 speed: {rows['bf16']['samples_per_s_median'] / rows['fp32']['samples_per_s_median']:.2f}x"
        )
    payload = {**provenance(), **run_facts(), "native_bf16": has_native_bf16("cpu"), "rows": rows}
    args.json.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
