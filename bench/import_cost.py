"""Import cost of the code location: what every step process pays before its step runs.

The multiprocess executor starts one process per step and each Kubernetes step pod starts one
interpreter; each imports `newsml_pipeline.definitions` first. This measures, over --repeat fresh
interpreters: the wall time of `python -c "import newsml_pipeline.definitions"` (interpreter start
included; median), the import alone inside it, the CPU seconds (user + sys, less sensitive than
wall to other processes on a shared machine) and the peak RSS; then, from one
`python -X importtime` run, the packages that cost the most (their modules' own import time, summed).

    python bench/import_cost.py [--repeat 5] [--compare REF]

`--compare REF` measures the same on `git archive REF` (e.g. the commit before the imports were
made lazy) in the same run, so both rows see the same machine load.
Target (issue 25): ≤ 1.5 s and ≤ 250 MB RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from provenance import provenance  # noqa: E402

MODULE = "newsml_pipeline.definitions"
TARGET_S = 1.5
TARGET_MB = 250.0
_CHILD = (
    "import time, sys; t = time.perf_counter(); import {module}; "
    "sys.stderr.write('IMPORT_S=%f\\n' % (time.perf_counter() - t))"
)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def _env(src: Path, home: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(src), "NEWSML_HOME": str(home), "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def one_run(src: Path, home: Path, module: str) -> dict[str, float]:
    """One fresh interpreter: wall, import-only and CPU seconds, peak RSS (from wait4's rusage)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD.format(module=module)],
        cwd=home,
        env=_env(src, home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"import of {module} from {src} failed:\n{err[-3000:]}")
    import_s = float(next(x for x in err.splitlines() if x.startswith("IMPORT_S=")).split("=", 1)[1])
    return {
        "wall_s": wall,
        "import_s": import_s,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_rss_mb": usage.ru_maxrss / 1024,  # Linux: KiB
    }


def heaviest_packages(src: Path, home: Path, module: str, top: int) -> list[dict[str, Any]]:
    """Top-level packages by the summed self time of their modules under `python -X importtime`."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=home,
        env=_env(src, home),
        capture_output=True,
        text=True,
        check=True,
    )
    self_us: dict[str, int] = defaultdict(int)
    modules: dict[str, int] = defaultdict(int)
    for line in proc.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue  # the header line
        pkg = parts[2].strip().split(".")[0]
        self_us[pkg] += int(parts[0])
        modules[pkg] += 1
    ranked = sorted(self_us, key=self_us.get, reverse=True)[:top]
    return [{"package": p, "self_s": round(self_us[p] / 1e6, 3), "modules": modules[p]} for p in ranked]


def measure(src: Path, label: str, *, module: str, repeat: int, top: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="newsml_import_cost_") as tmp:
        home = Path(tmp)
        one_run(src, home, module)  # warm the OS file cache and write .pyc files; not counted
        runs = [one_run(src, home, module) for _ in range(repeat)]
        heavy = heaviest_packages(src, home, module, top)
    loaded = {
        "wall_s_median": round(statistics.median(r["wall_s"] for r in runs), 3),
        "import_s_median": round(statistics.median(r["import_s"] for r in runs), 3),
        "cpu_s_median": round(statistics.median(r["cpu_s"] for r in runs), 3),
        "max_rss_mb": round(max(r["max_rss_mb"] for r in runs), 1),
    }
    return {"label": label, **loaded, "runs": runs, "heaviest_packages": heavy}


def print_table(rows: list[dict[str, Any]]) -> None:
    head = f"{'code':<22} {'wall s (median)':>15} {'import s':>9} {'CPU s':>7} {'max RSS MB':>11}  target"
    print(head)
    print("-" * len(head))
    for r in rows:
        ok = r["wall_s_median"] <= TARGET_S and r["max_rss_mb"] <= TARGET_MB
        print(
            f"{r['label']:<22} {r['wall_s_median']:>15.2f} {r['import_s_median']:>9.2f} {r['cpu_s_median']:>7.2f} "
            f"{r['max_rss_mb']:>11.0f}  ≤ {TARGET_S} s, ≤ {TARGET_MB:.0f} MB: {'met' if ok else 'NOT met'}"
        )
    for r in rows:
        pkgs = ", ".join(f"{p['package']} {p['self_s']:.2f}" for p in r["heaviest_packages"])
        print(f"\nheaviest packages, {r['label']} (s, own modules' import time): {pkgs}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="fresh interpreters per measurement")
    ap.add_argument("--module", default=MODULE)
    ap.add_argument("--top", type=int, default=10, help="heaviest packages to list")
    ap.add_argument("--compare", metavar="REF", help="also measure this git ref (git archive)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "import_cost.json")
    args = ap.parse_args()

    commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    load_before = os.getloadavg()
    rows = [measure(ROOT, f"HEAD {commit[:7]}{'+dirty' if dirty else ''}", **_kw(args))]
    if args.compare:
        ref = git("rev-parse", args.compare)
        with tempfile.TemporaryDirectory(prefix="newsml_import_cost_ref_") as tmp:
            archive = subprocess.run(
                ["git", "archive", ref], cwd=ROOT, capture_output=True, check=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            rows.append(measure(Path(tmp), f"{args.compare} {ref[:7]}", **_kw(args)))
    print_table(rows)
    print(
        f"\nload average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                **provenance(),
                "module": args.module,
                "target": {"wall_s": TARGET_S, "max_rss_mb": TARGET_MB},
                "machine": {
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "load_average_1m": {
                        "before": round(load_before[0], 2),
                        "after": round(os.getloadavg()[0], 2),
                    },
                },
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


def _kw(args: argparse.Namespace) -> dict[str, Any]:
    return {"module": args.module, "repeat": args.repeat, "top": args.top}


if __name__ == "__main__":
    main()
