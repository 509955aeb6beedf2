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


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_shared_test_and_bench_helpers_have_one_home() -> None:
    """bench/ and the tests share helpers through testkit/ only: the benchmarks never import the
    test package, the tests never load a benchmark module by path, testkit imports neither."""
    root = PKG.parent
    offenders = [
        f"{p.relative_to(root)}: {m}"
        for p in sorted((root / "bench").glob("*.py"))
        for m in _imported_modules(p)
        if m.split(".")[0] == "newsml_pipeline_tests"
    ]
    offenders += [
        f"{p.relative_to(root)}: {m}"
        for p in sorted((root / "testkit").glob("*.py"))
        for m in _imported_modules(p)
        if m.split(".")[0] in ("newsml_pipeline_tests", "bench")
    ]
    offenders += [
        f"{p.relative_to(root)}: loads a module by path"
        for p in sorted((root / "newsml_pipeline_tests").rglob("*.py"))
        if "spec_from_file_location" in p.read_text(encoding="utf-8") and p != Path(__file__)
    ]
    assert not offenders, offenders


def test_a_benchmark_runs_as_a_script_with_the_shared_helpers() -> None:
    """`python bench/<name>.py` from anywhere finds testkit the way pytest does."""
    out = subprocess.run(
        [sys.executable, str(PKG.parent / "bench" / "crawl.py"), "--help"],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0 and "usage" in out.stdout, out.stderr[-2000:]


def test_each_idea_is_written_once() -> None:
    """ISO-date parsing, JSONL parsing and scheme://host each live in one function."""
    sources = {p: p.read_text(encoding="utf-8") for p in PKG.rglob("*.py")}

    def where(needle: str) -> list[str]:
        return sorted(str(p.relative_to(PKG)) for p, text in sources.items() if needle in text)

    assert where("dt.replace(tzinfo=UTC) if dt.tzinfo is None") == ["core/crawl/dates.py"]
    # JSON Lines: one parser (a line's error says "not valid JSON"); JSON documents (a JSON Feed,
    # an HTTP body) are another idea and parse where they arrive.
    assert where("not valid JSON") == ["core/records.py"]
    assert where("json.loads(line") == []
    assert where("{parts.scheme}://{parts.netloc}") == ["core/crawl/urls.py"]
    assert where('average="macro"') == []  # macro-F1: core/evaluation/metrics.py (score_predictions)
