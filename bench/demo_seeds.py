"""`newsml demo --seed S` for several seeds: does the README's main command close the loop?

Issue 25's target, on the machine that runs it: every run exits 0; the first scheduled retrain
is deployed in >= 4 of 5; drift is detected <= 30 simulated hours after the topic mix changes in
>= 4 of 5. Each seed runs the real CLI in a subprocess with a home of its own (its own warehouse,
MLflow store and Dagster instance), exactly as a user types it; the row is read from the demo's
own `demo_report.json` and the results file is rewritten after every seed, so a long run that is
stopped keeps the seeds it finished.

    python bench/demo_seeds.py                 # seeds 0-4, the demo's defaults
    python bench/demo_seeds.py --seeds 0 1 --days 7   # fewer / shorter (the row says which)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from provenance import ROOT, provenance

DRIFT_TARGET_H = 30.0


def first_scheduled(report: dict[str, Any]) -> dict[str, Any] | None:
    """The first retrain the weekly schedule started (None when the schedule started none)."""
    scheduled = [r for r in report.get("retrains", []) if r.get("trigger") == "schedule"]
    return min(scheduled, key=lambda r: str(r["as_of"])) if scheduled else None


def row_of(seed: int, rc: int, wall_s: float, report: dict[str, Any] | None) -> dict[str, Any]:
    """One seed's row: exit code, the first scheduled retrain's verdict and scores, drift delay."""
    row: dict[str, Any] = {"seed": seed, "exit_code": rc, "wall_s": round(wall_s, 1)}
    if report is None:
        row["error"] = "no demo_report.json: the demo did not finish"
        return row
    first = first_scheduled(report)
    delay = report.get("drift_delay_hours")
    row.update(
        {
            "first_retrain_verdict": first["verdict"] if first else None,
            "first_retrain_candidate_f1": first and first.get("candidate_macro_f1"),
            "first_retrain_zero_shot_f1": first and first.get("baseline_macro_f1"),
            "drift_delay_hours": delay,
            "drift_signal": next(
                (
                    e.get("signal")
                    for e in report.get("drift_events", [])
                    if str(e.get("sim_time", "")) >= str(report.get("drift_change_at"))
                ),
                None,
            ),
            "drift_within_target": delay is not None and delay <= DRIFT_TARGET_H,
            "models_deployed": report.get("models_deployed"),
            "models_blocked": report.get("models_blocked"),
            "failed_runs": report.get("failed_runs"),
            "retrains_skipped": len(report.get("retrains_skipped", [])),
            "deployed_model_macro_f1_vs_sample_categories": report.get(
                "deployed_model_macro_f1_vs_sample_categories"
            ),
        }
    )
    return row


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's three counts over the seeds that ran."""
    return {
        "seeds": len(rows),
        "exit_0": sum(r["exit_code"] == 0 for r in rows),
        "first_retrain_deployed": sum(r.get("first_retrain_verdict") == "deployed" for r in rows),
        "drift_within_30h": sum(bool(r.get("drift_within_target")) for r in rows),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'seed':>4} {'exit':>4} {'first retrain':>14} {'cand':>6} {'0-shot':>6} {'drift h':>7} {'signal':>12} {'wall s':>7}"
    )
    for r in rows:
        cand, zs = r.get("first_retrain_candidate_f1"), r.get("first_retrain_zero_shot_f1")
        delay = r.get("drift_delay_hours")
        print(
            f"{r['seed']:>4} {r['exit_code']:>4} {str(r.get('first_retrain_verdict')):>14} "
            f"{'' if cand is None else f'{cand:.3f}':>6} {'' if zs is None else f'{zs:.3f}':>6} "
            f"{'never' if delay is None else f'{delay:.0f}':>7} {str(r.get('drift_signal')):>12} {r['wall_s']:>7.0f}"
        )
    s = summary(rows)
    print(
        f"exit 0: {s['exit_0']}/{s['seeds']}   first scheduled retrain deployed: "
        f"{s['first_retrain_deployed']}/{s['seeds']}   drift <= 30 h: {s['drift_within_30h']}/{s['seeds']}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--days", type=int, default=None, help="passed to newsml demo (default: its own)")
    ap.add_argument("--executor", choices=["in_process", "multiprocess"], default="in_process")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/newsml_demo_seeds"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "demo_seeds.json")
    args = ap.parse_args(argv)
    newsml = Path(sys.executable).with_name("newsml")
    if not newsml.is_file():
        raise SystemExit(f"{newsml}: not found; install the project (pip install -e .) first")
    head = provenance([str(Path(__file__)), *(sys.argv[1:] if argv is None else argv)])
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        home = args.workdir / f"seed{seed}"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        cmd = [str(newsml), "demo", "--seed", str(seed), "--executor", args.executor]
        if args.days is not None:
            cmd += ["--days", str(args.days)]
        env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "NEWSML_CONFIG")}
        env.update(NEWSML_HOME=str(home), HF_HUB_OFFLINE="1")
        print(f"seed {seed}: {' '.join(cmd[1:])} in {home}", flush=True)
        started = time.monotonic()
        # cwd = the home: no ./dagster.yaml there, so the demo's instance is home/dagster
        with (home.parent / f"seed{seed}.log").open("w") as log:
            rc = subprocess.run(cmd, cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        report_path = home / "demo_report.json"
        report = json.loads(report_path.read_text()) if report_path.is_file() else None
        rows.append(row_of(seed, rc, time.monotonic() - started, report))
        print_table(rows[-1:])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {**head, "executor": args.executor, "summary": summary(rows), "rows": rows},
                indent=2,
                default=str,
            )
        )
    print_table(rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
