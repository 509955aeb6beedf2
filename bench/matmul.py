"""Dense matmul speed of this CPU: the ceiling any model forward on it can reach.

    python bench/matmul.py [--size 2048] [--repeat 10] [--out bench/results/matmul.json]

Times an N x N x N matrix product (2·N³ operations) in fp32, in bf16 where the CPU has native
bf16 (avx512_bf16 or amx_bf16; emulated bf16 is several times slower than fp32 and says nothing
about the hardware) and in int8 (`torch._int_mm`, int32 accumulation) where it has int8 dot
products (avx512_vnni, avx_vnni or amx_int8). Prints a table with the CPU flags and writes the
results with their provenance (bench/provenance.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from provenance import cpu_flags, provenance

ROOT = Path(__file__).resolve().parents[1]
NATIVE = {
    "fp32": set(),  # always measured
    "bf16": {"avx512_bf16", "amx_bf16"},
    "int8": {"avx512_vnni", "avx_vnni", "amx_int8"},
}


def _operands(dtype: str, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, Callable]:
    if dtype == "int8":
        a = torch.randint(-128, 128, (n, n), dtype=torch.int8, generator=gen)
        b = torch.randint(-128, 128, (n, n), dtype=torch.int8, generator=gen)
        return a, b, torch._int_mm
    a = torch.randn(n, n, generator=gen)
    b = torch.randn(n, n, generator=gen)
    if dtype == "bf16":
        a, b = a.bfloat16(), b.bfloat16()
    return a, b, torch.mm


def time_matmul(dtype: str, n: int, repeat: int) -> dict[str, Any]:
    """Median and best seconds of `repeat` products after one warm-up, and GFLOP/s (GOP/s for int8)."""
    a, b, op = _operands(dtype, n, torch.Generator().manual_seed(0))
    op(a, b)  # warm-up: allocation, kernel choice
    seconds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        op(a, b)
        seconds.append(time.perf_counter() - t0)
    ops = 2 * n**3
    return {
        "median_s": statistics.median(seconds),
        "best_s": min(seconds),
        "gflops_median": ops / statistics.median(seconds) / 1e9,
        "gflops_best": ops / min(seconds) / 1e9,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "matmul.json")
    args = ap.parse_args(argv)
    flags = set(cpu_flags())
    load_before = os.getloadavg()[0]  # other work on the cores lowers every figure
    rows: dict[str, Any] = {}
    for dtype, needs in NATIVE.items():
        if needs and not needs & flags:
            rows[dtype] = {"skipped": f"no native {dtype} on this CPU (needs one of {sorted(needs)})"}
            continue
        rows[dtype] = time_matmul(dtype, args.size, args.repeat)
    n = args.size
    print(
        f"{n}x{n} matmul, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print(f"CPU flags: {' '.join(sorted(flags)) or '(unknown)'}")
    print(f"{'dtype':6}{'median s':>10}{'GFLOP/s median':>16}{'GFLOP/s best':>14}")
    for dtype, r in rows.items():
        if "skipped" in r:
            print(f"{dtype:6}  skipped: {r['skipped']}")
        else:
            print(f"{dtype:6}{r['median_s']:10.4f}{r['gflops_median']:16.1f}{r['gflops_best']:14.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        **provenance([str(Path(__file__)), *(sys.argv[1:] if argv is None else argv)]),
        "size": n,
        "repeat": args.repeat,
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "results": rows,
    }
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
