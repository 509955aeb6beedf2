"""The direction rule of DESIGN.md: defs/ imports core/, core/ never imports Dagster."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "newsml_pipeline"


def test_no_module_under_core_imports_dagster() -> None:
    offenders = []
    for path in (PKG / "core").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0].startswith("dagster")]
    assert not offenders, offenders


@pytest.mark.skipif(
    shutil.which("ruff") is None and not (Path(sys.executable).parent / "ruff").exists(),
    reason="ruff (dev extra) not installed",
)
def test_ruff_rejects_a_dagster_import_in_core() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    root = PKG.parent
    bad = subprocess.run(
        [ruff, "check", "--no-cache", "--stdin-filename", str(PKG / "core" / "example.py"), "-"],
        input="import dagster\n",
        text=True,
        capture_output=True,
        cwd=root,
    )
    assert bad.returncode != 0 and "TID251" in bad.stdout, bad.stdout + bad.stderr
    ok = subprocess.run(
        [ruff, "check", "--no-cache", "--stdin-filename", str(PKG / "defs" / "example.py"), "-"],
        input="import dagster\n\nprint(dagster)\n",
        text=True,
        capture_output=True,
        cwd=root,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
