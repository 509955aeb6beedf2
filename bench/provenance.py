"""Where a bench/results file came from: stored inside it by every bench script's JSON writer.

The rule (README, Benchmarks): every result file is written by the command named in it, which is
stored inside the file with the commit and the machine's CPU flags, so a figure can be traced to
the code and the hardware that produced it and nothing is assembled by hand.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# Libraries whose version can move a benchmark's figure.
PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "scikit-learn",
    "onnxruntime",
    "numpy",
    "polars",
    "duckdb",
    "dagster",
    "mlflow",
    "river",
    "spacy",
    "trafilatura",
    "newsml-pipeline",
)
# The instruction-set flags that decide how fast (and in which precision) the kernels run.
_SIMD_PREFIXES = ("sse4", "avx", "fma", "f16c", "amx", "vnni", "avx512", "bf16")


def command(argv: list[str] | None = None) -> str:
    """The command line that ran, with the script path relative to the repo root when inside it."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve() if argv else None
    if script is not None and script.is_relative_to(ROOT):
        argv[0] = str(script.relative_to(ROOT))
    return shlex.join(["python", *argv])


def commit() -> str:
    """HEAD of the checkout, with `-dirty` when tracked files differ from it ("unknown" outside git)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The SIMD / matrix-unit flags of this CPU (AVX2, AVX-512, VNNI, AMX, bf16 ...), sorted."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = line.split(":", 1)[1].split()
            return sorted({f for f in flags if f.startswith(_SIMD_PREFIXES) or "vnni" in f or "bf16" in f})
    return []


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (platform's guess where /proc/cpuinfo is unreadable)."""
    text = cpuinfo.read_text() if cpuinfo.is_file() else ""
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def packages() -> dict[str, str | None]:
    """Installed versions of PACKAGES (None where one is not installed)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    """`{command, commit, cpu_flags, cpu, cores, python, packages}` for a result file's top level."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "command": command(argv),
        "commit": commit(),
        "cpu_flags": cpu_flags(),
        "cpu": cpu_model(),
        "cores": cores,
        "python": platform.python_version(),
        "packages": packages(),
    }


def lift_nested(payload: dict[str, Any], *, by: str) -> dict[str, Any]:
    """A results file written before the rule, whose writer stored its provenance under
    `provenance` (a dict, or a list with the writing run first), with those fields also at the top
    level. Nothing is re-measured or edited: the nested block stays, and `provenance_lifted_by`
    names the command that moved it."""
    nested = payload.get("provenance")
    first = nested[0] if isinstance(nested, list) and nested else nested
    if not isinstance(first, dict) or "command" not in first:
        raise ValueError("no nested provenance with a command to lift")
    lifted = {
        k: first[k] for k in ("command", "commit", "dirty", "cpu_flags", "cpu", "cores", "gpu") if k in first
    }
    return {**lifted, **payload, "provenance_lifted_by": by}


if __name__ == "__main__":  # python bench/provenance.py --lift FILE...: lift_nested in place
    if sys.argv[1:2] != ["--lift"] or len(sys.argv) < 3:
        raise SystemExit("usage: python bench/provenance.py --lift FILE...")
    import json

    by = f"{command()} at {commit()}"
    for name in sys.argv[2:]:
        path = Path(name)
        path.write_text(json.dumps(lift_nested(json.loads(path.read_text()), by=by), indent=2) + "\n")
        print(f"lifted {path}")
