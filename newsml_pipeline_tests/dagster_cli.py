"""`dagster asset materialize` as a user types it: the real CLI in a subprocess, multiprocess executor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def materialize_cmd(
    select: str, *, partition: str | None = None, partition_range: str | None = None
) -> list[str]:
    """The command line for `select` (comma-separated asset keys) and one partition or a range."""
    cmd = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "newsml_pipeline.definitions",
        "--select",
        select,
    ]
    if partition is not None:
        cmd += ["--partition", partition]
    if partition_range is not None:
        cmd += ["--partition-range", partition_range]
    return cmd


def materialize(
    select: str,
    *,
    env: dict[str, str],
    partition: str | None = None,
    partition_range: str | None = None,
    timeout: int = 600,
) -> subprocess.CompletedProcess:
    """Run the CLI to completion from the repo root; stdout/stderr captured as text."""
    return subprocess.run(
        materialize_cmd(select, partition=partition, partition_range=partition_range),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def dg_cmd(*args: str) -> list[str]:
    """The `dg` command line (dagster-dg-cli, the dev extra) from this interpreter's environment."""
    dg = Path(sys.executable).parent / "dg"
    if not dg.exists():
        raise FileNotFoundError(f"{dg} not found: install the dev extra (dagster-dg-cli)")
    return [str(dg), *args]


def run_dg(*args: str, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `dg ARGS` from the repo root, where pyproject.toml's [tool.dg] makes it a dg project."""
    return subprocess.run(dg_cmd(*args), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
