"""The exact pins a logged pyfunc needs: distributions its code imports, read from the source.

MLflow's own inference loads the model in a subprocess; a subprocess that imports the pyfunc's
modules (torch, transformers) cost every registration 4-8 s. The same answer comes from the
source: the package modules the pyfunc's modules import when loaded (module-level imports,
followed through the package, `if TYPE_CHECKING:` blocks skipped, parent packages included) are
the files Python would load, and every import in those files (top level and lazy, inside
functions) names a distribution.
"""

from __future__ import annotations

import ast
from importlib.metadata import packages_distributions, version
from pathlib import Path

PACKAGE = "newsml_pipeline"
PACKAGE_DIR = Path(__file__).resolve().parents[2]  # .../newsml_pipeline
TORCH_PIN = "torch==2.13.0"  # the project's pin; the local "+cpu" build tag is not on any index
# What the pyfunc imports when MLflow loads and calls it (load_context + predict), by module.
PYFUNC_MODULES = (
    "newsml_pipeline.core.serving.pyfunc_model",
    "newsml_pipeline.core.training.model_io",
    "newsml_pipeline.core.training.inputs",
)


def module_file(name: str) -> Path | None:
    """The source file of package module `name` (a package's __init__.py), None outside the package."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _load_time_imports(body: list[ast.stmt], package: str) -> list[str]:
    """Modules imported while a module body runs (not inside functions, not under TYPE_CHECKING)."""
    out: list[str] = []
    for node in body:
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            out.append(base)
            out += [f"{base}.{a.name}" for a in node.names]  # `from pkg import submodule`
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                out += _load_time_imports(node.body, package)
            out += _load_time_imports(node.orelse, package)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                out += _load_time_imports(block, package)
        elif isinstance(node, ast.ClassDef):
            out += _load_time_imports(node.body, package)
    return out


def loaded_modules(roots: tuple[str, ...] = PYFUNC_MODULES) -> dict[str, Path]:
    """{module: file} of the package modules importing `roots` loads (parents included)."""
    seen: dict[str, Path] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            mod = ".".join(parts[:i])
            if mod in seen:
                continue
            path = module_file(mod)
            if path is None:
                continue
            seen[mod] = path
            package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
            tree = ast.parse(path.read_text(encoding="utf-8"))
            todo += [m for m in _load_time_imports(tree.body, package) if m.split(".")[0] == PACKAGE]
    return seen


def imported_top_level_names(files: list[Path]) -> set[str]:
    """Top-level names of every absolute import in `files`, lazy ones inside functions included."""
    names: set[str] = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def pip_requirements() -> list[str]:
    """Exact installed versions of the distributions the pyfunc's code imports.

    Transitive dependencies are left to pip; torch gets the project's pin."""
    names = imported_top_level_names(list(loaded_modules().values()))
    by_module = packages_distributions()
    dists = {d for n in names if n != PACKAGE for d in by_module.get(n, [])}
    dists.add("safetensors")  # loaded by transformers from model.safetensors (not imported by name)
    return sorted((TORCH_PIN if d == "torch" else f"{d}=={version(d)}" for d in dists), key=str.lower)
