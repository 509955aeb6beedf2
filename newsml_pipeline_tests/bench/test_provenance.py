"""Every bench/results file is written by the command stored in it, with the commit and CPU flags.

The helper (bench/provenance.py) is tested directly; that every benchmark's results writer puts
its output at the top level of the file is checked over the scripts' syntax trees (running them
all is hours of CPU), and bench/matmul.py, which takes seconds at a small size, is run for real.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
REPO = BENCH.parent
KEYS = {"command", "commit", "cpu_flags", "cpu", "cores", "python", "packages"}
# Modules in bench/ that are helpers, not benchmarks writing a results file.
HELPERS = {"corpora", "provenance", "lean_client"}


@pytest.fixture
def provenance() -> Iterator:
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("provenance")
    finally:
        sys.path.remove(str(BENCH))


def test_provenance_names_the_command_commit_flags_and_versions(provenance, tmp_path: Path) -> None:
    p = provenance.provenance([str(BENCH / "train.py"), "--seed", "2", "--json", "a b.json"])
    assert KEYS <= set(p)
    assert p["command"] == "python bench/train.py --seed 2 --json 'a b.json'"
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    assert p["commit"].removesuffix("-dirty") == head
    assert p["packages"]["torch"] and p["packages"]["transformers"]
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Test CPU\n"
        "flags\t\t: fpu sse4_2 avx2 fma avx512f avx512_bf16 avx512_vnni amx_int8 rdrand\n"
    )
    assert provenance.cpu_flags(cpuinfo) == [
        "amx_int8",
        "avx2",
        "avx512_bf16",
        "avx512_vnni",
        "avx512f",
        "fma",
        "sse4_2",
    ]
    assert provenance.cpu_model(cpuinfo) == "Test CPU"


def _writes_results(tree: ast.Module) -> bool:
    """The script defaults an output path into bench/results (`... / "results" / ...`)."""
    return any(isinstance(n, ast.Constant) and n.value == "results" for n in ast.walk(tree))


def _dumps_with_provenance(tree: ast.Module) -> bool:
    """Some json.dumps(...) argument holds a provenance(...) call (spread into the payload)."""
    dumps = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "dumps"
    ]
    payload_names = set()
    for node in ast.walk(tree):  # `payload = {**provenance(), ...}` then json.dumps(payload)
        if isinstance(node, ast.Assign | ast.AnnAssign) and _calls_provenance(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            payload_names |= {t.id for t in targets if isinstance(t, ast.Name)}
    for call in dumps:
        for arg in call.args:
            names = {n.id for n in ast.walk(arg) if isinstance(n, ast.Name)}
            if _calls_provenance(arg) or names & payload_names:
                return True
    return False


def _calls_provenance(node: ast.AST | None) -> bool:
    return node is not None and any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "provenance"
        for n in ast.walk(node)
    )


def _writer_modules(tree: ast.Module) -> set[str]:
    """bench modules this script takes its results writer from (`from self_training import write_results`)."""
    return {
        n.module
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module and any(a.name == "write_results" for a in n.names)
    }


SCRIPTS = sorted(p for p in BENCH.glob("*.py") if p.stem not in HELPERS)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_benchmark_writes_its_provenance_into_its_results(script: Path) -> None:
    tree = ast.parse(script.read_text())
    if not _writes_results(tree):
        pytest.fail(f"{script.name} writes no bench/results file: list it in HELPERS if it is a helper")
    if _dumps_with_provenance(tree):
        return
    sources = _writer_modules(tree)
    assert sources, f"{script.name}: its results JSON does not include provenance()"
    for module in sources:
        assert _dumps_with_provenance(ast.parse((BENCH / f"{module}.py").read_text())), module


def test_the_checker_catches_a_writer_without_provenance() -> None:
    bad = ast.parse(
        'out = ROOT / "results" / "x.json"\nout.write_text(json.dumps({"command": "python x"}))\n'
    )
    good = ast.parse('payload = {**provenance(), "x": 1}\nout.write_text(json.dumps(payload))\n')
    assert not _dumps_with_provenance(bad)
    assert _dumps_with_provenance(good)


def test_matmul_bench_writes_its_provenance(tmp_path: Path) -> None:
    out = tmp_path / "matmul.json"
    subprocess.run(
        [sys.executable, str(BENCH / "matmul.py"), "--size", "64", "--repeat", "2", "--out", str(out)],
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    saved = json.loads(out.read_text())
    assert KEYS <= set(saved)
    assert saved["command"] == f"python bench/matmul.py --size 64 --repeat 2 --out {out}"
    assert saved["results"]["fp32"]["gflops_median"] > 0


def test_lifting_a_nested_provenance_keeps_everything_and_names_who_moved_it(provenance) -> None:
    nested = {
        "provenance": [{"command": "python bench/x.py", "commit": "abc", "cpu_flags": ["avx2"]}],
        "rows": [1],
    }
    out = provenance.lift_nested(nested, by="python bench/provenance.py --lift f at def")
    assert out["command"] == "python bench/x.py" and out["commit"] == "abc" and out["cpu_flags"] == ["avx2"]
    assert out["provenance"] == nested["provenance"] and out["rows"] == [1]
    assert out["provenance_lifted_by"].startswith("python bench/provenance.py --lift")
    as_dict = provenance.lift_nested({"provenance": {"command": "c", "commit": "d"}}, by="b")
    assert as_dict["command"] == "c"
    with pytest.raises(ValueError, match="no nested provenance"):
        provenance.lift_nested({"rows": []}, by="b")
