"""What each ONNX graph rewrite buys: the same exported model timed before and after the
attention fusions and the SkipLayerNormalization split, fp32 and int8, side by side in one run
(issue 28).

    python bench/onnx_graphs.py [--single 40] [--batches 4] [--rounds 2] [--out bench/results/onnx_graphs.json]

The packaged MiniLM-L6 with a random head (speed only) is exported by the project's own
`export_onnx`; the graph it held before the attention fusions (ORT's BERT fusions only, what the
export wrote before) is kept aside and quantized the way it used to be, and so is each graph
before the split. Six graphs, each in its own ONNX Runtime session with the serving options: fp32
and int8, each unfused, with fused attention, and split (the export). Each is timed `--rounds`
times round-robin and keeps its best p50 and throughput. Per
graph: single-article p50 over real BBC articles at 128 tokens, articles/s over batches of 32,
and the largest |logit| difference from the unfused graph of the same precision on a padded
batch of short and long texts (the fusions must not change the answer: fp32 vs fp32 agrees to
float rounding; the two int8 graphs differ at int8-rounding level, their activations and weights
being quantized from graphs the fusion rewrote). Rows are written as they finish.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provenance import provenance  # noqa: E402
from serve import build_model_dir, load_articles  # noqa: E402

from testkit.corpora import CORPORA  # noqa: E402

PADDED = [
    "Shares rose.",
    "The team won the cup final after extra time in a match the coach called great.",
    "A new mobile phone with faster broadband was released today. " * 12,
    "Vote",
]


def build_graphs(tmp: Path) -> dict[str, Path]:
    """Export once, keeping each graph the export passes through: before the attention fusions
    (quantized as the export used to), after them, and after the SkipLayerNormalization split."""
    from newsml_pipeline.core.serving import onnx_model as om
    from newsml_pipeline.settings import load_config

    model_dir = build_model_dir(tmp / "model", load_config().labels.names)
    unfused = tmp / "unfused.onnx"
    attention = {}
    real_fuse, real_split = om.fuse_attention, om.split_skip_layer_norm

    def keep_unfused(path: Path, *, pack_qkv: bool = True) -> dict[str, int]:
        if not unfused.exists():  # the first call sees the graph after ORT's BERT fusions only
            shutil.copyfile(path, unfused)
        return real_fuse(path, pack_qkv=pack_qkv)

    def keep_unsplit(path: Path) -> int:
        attention[path.name] = tmp / f"attention.{path.name}"
        shutil.copyfile(path, attention[path.name])
        return real_split(path)

    om.fuse_attention, om.split_skip_layer_norm = keep_unfused, keep_unsplit
    try:
        files = om.export_onnx(model_dir)
    finally:
        om.fuse_attention, om.split_skip_layer_norm = real_fuse, real_split
    unfused_int8 = tmp / "unfused.int8.onnx"
    om.quantize_int8(unfused, unfused_int8)
    return {
        "fp32, BERT fusions only (before)": unfused,
        "fp32, + fused Attention": attention[files.fp32.name],
        "fp32, + SkipLayerNorm split (export)": files.fp32,
        "int8, BERT fusions only (before)": unfused_int8,
        "int8, + MultiHeadAttention core": attention[files.int8.name],
        "int8, + SkipLayerNorm split (export)": files.int8,
    }


def op_shares(path: Path, feeds: dict[str, np.ndarray], runs: int = 3) -> dict[str, float]:
    """Share of kernel time per op type over `runs` batched forwards, from ONNX Runtime's own
    profiler (a separate session: profiling slows every node a little, so no speed comes from it).
    What the int8 MatMuls take of a forward bounds what any rewrite of the rest can gain."""
    from newsml_pipeline.core.serving.onnx_model import _session

    s = _session(path, threads=None, profile_prefix=str(path.with_suffix(".profile")))
    for _ in range(runs + 1):  # the first is warm-up, left in: kernel times are per node anyway
        s.run(None, feeds)
    events = json.loads(Path(s.end_profiling()).read_text())
    by_op: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e["args"]["op_name"]
            by_op[op] = by_op.get(op, 0.0) + e["dur"]
    total = sum(by_op.values()) or 1.0
    return {
        op: round(d / total, 4) for op, d in sorted(by_op.items(), key=lambda x: -x[1]) if d / total >= 0.005
    }


def time_graph(
    path: Path, tokenizer: Any, texts: list[str], *, single: int, batches: int, profile: bool
) -> dict[str, Any]:
    """One timing pass of the graph at `path`; `profile`: also its per-op shares (once per graph)."""
    from collections import Counter

    import onnx

    from newsml_pipeline.core.serving.onnx_model import _session

    def feeds(ts: list[str]) -> dict[str, np.ndarray]:
        e = tokenizer(ts, truncation=True, max_length=128, padding=True, return_tensors="np")
        return {
            "input_ids": e["input_ids"].astype(np.int64),
            "attention_mask": e["attention_mask"].astype(np.int64),
        }

    s = _session(path, threads=None)
    ones = [feeds([t]) for t in texts[:single]]
    many = [feeds(texts[single + 32 * i : single + 32 * (i + 1)]) for i in range(batches)]
    for f in ones[:5]:
        s.run(None, f)
    ms = []
    for f in ones:
        t0 = time.perf_counter()
        s.run(None, f)
        ms.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    for b in many:
        s.run(None, b)
    per_s = 32 * batches / (time.perf_counter() - t0)
    ops = Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)
    return {
        **({"batched_time_share_by_op": op_shares(path, many[0])} if profile else {}),
        "single_p50_ms": round(statistics.median(ms), 2),
        "batched_articles_per_s": round(per_s, 1),
        "padded_logits": s.run(None, feeds(PADDED))[0].tolist(),
        "fused_ops": {
            k: ops[k]
            for k in (
                "Attention",
                "MultiHeadAttention",
                "SkipLayerNormalization",
                "LayerNormalization",
                "BiasGelu",
            )
        },
        "int8_matmuls": ops["MatMulInteger"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--single", type=int, default=40, help="articles timed one by one")
    ap.add_argument("--batches", type=int, default=4, help="batches of 32 for articles/s")
    ap.add_argument("--rounds", type=int, default=2, help="round-robin passes over the graphs; best kept")
    ap.add_argument("--corpora", type=Path, default=CORPORA)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "onnx_graphs.json")
    args = ap.parse_args()

    from transformers import AutoTokenizer

    from newsml_pipeline.core.training.inputs import format_input

    arts = load_articles(args.corpora, args.single + 32 * args.batches)
    texts = [format_input(a["title"], a["text"]) for a in arts]
    payload: dict[str, Any] = {**provenance(), "max_length": 128, "single": args.single, "rows": {}}
    with tempfile.TemporaryDirectory(prefix="onnx-graphs-") as tmp:
        graphs = build_graphs(Path(tmp))
        tok = AutoTokenizer.from_pretrained(Path(tmp) / "model")
        # Round-robin, best of the rounds per graph: this VM's speed drifts within minutes, and
        # other work only ever adds time, so each graph gets its quietest moment.
        for round_ in range(args.rounds):
            for name, path in graphs.items():
                r = time_graph(
                    path, tok, texts, single=args.single, batches=args.batches, profile=round_ == 0
                )
                best = payload["rows"].get(name)
                if best is not None:
                    r["batched_time_share_by_op"] = best["batched_time_share_by_op"]
                    r["single_p50_ms"] = min(r["single_p50_ms"], best["single_p50_ms"])
                    r["batched_articles_per_s"] = max(
                        r["batched_articles_per_s"], best["batched_articles_per_s"]
                    )
                r["rounds"] = round_ + 1
                payload["rows"][name] = r
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(payload, indent=2))
    rows = payload["rows"]
    for name, r in rows.items():  # each graph against the first (unfused) one of its precision
        before = rows[f"{name.split(',')[0]}, BERT fusions only (before)"]
        if r is not before:
            diff = np.abs(np.array(r["padded_logits"]) - np.array(before["padded_logits"])).max()
            r["max_logit_diff_vs_before"] = float(diff)
    args.out.write_text(json.dumps(payload, indent=2))
    print(
        f"\nONNX graphs of MiniLM-L6 (random head), {args.single} single BBC articles, {args.batches}x32 batched, 128 tokens"
    )
    print(f"{'graph':44}{'p50 ms':>8}{'art/s':>8}{'int8 MatMuls':>14}  fused / max |logit diff| vs before")
    for name, r in rows.items():
        fused = ", ".join(f"{k} {v}" for k, v in r["fused_ops"].items() if v)
        extra = f" / {r['max_logit_diff_vs_before']:.1e}" if "max_logit_diff_vs_before" in r else ""
        print(
            f"{name:44}{r['single_p50_ms']:8.2f}{r['batched_articles_per_s']:8.1f}{r['int8_matmuls']:14d}  {fused}{extra}"
        )
    print("\nbatched kernel time by op (ONNX Runtime's profiler, ops >= 0.5 %):")
    for name, r in rows.items():
        shares = ", ".join(f"{op} {100 * v:.0f}%" for op, v in r["batched_time_share_by_op"].items())
        print(f"  {name}: {shares}")
    for r in rows.values():  # what the matrix products alone take bounds the rest's gains
        share = sum(
            v for op, v in r["batched_time_share_by_op"].items() if "MatMul" in op or "Quantize" in op
        )
        r["matmul_share"] = round(share, 3)
        r["articles_per_s_if_only_matmuls"] = round(r["batched_articles_per_s"] / share, 1) if share else None
    args.out.write_text(json.dumps(payload, indent=2))
    last = rows[names[-1]] if (names := list(rows)) else {}
    if last.get("articles_per_s_if_only_matmuls"):
        print(
            f"{names[-1]}: matrix products (MatMul / quantize kernels) {100 * last['matmul_share']:.0f}% of a "
            f"batched forward; with every other op free it would run {last['articles_per_s_if_only_matmuls']} articles/s"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
