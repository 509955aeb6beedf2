"""The pyfunc's requirements are read from source: the same modules a fresh interpreter loads."""

from __future__ import annotations

import ast
import subprocess
import sys

from newsml_pipeline.core.registry.pyfunc_requirements import (
    PACKAGE_DIR,
    PYFUNC_MODULES,
    _load_time_imports,
    loaded_modules,
    pip_requirements,
)


def test_the_static_closure_is_what_importing_the_pyfunc_loads() -> None:
    probe = (
        "import sys, importlib\n"
        f"for m in {list(PYFUNC_MODULES)!r}: importlib.import_module(m)\n"
        "print('\\n'.join(n for n, m in sys.modules.items()"
        " if n.startswith('newsml_pipeline') and getattr(m, '__file__', None)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=PACKAGE_DIR.parent
    ).stdout.split()
    assert set(loaded_modules()) == set(out)


def test_load_time_imports_follow_the_body_not_functions_or_type_checking() -> None:
    src = """
import os
from . import sibling
from ..up import thing
if TYPE_CHECKING:
    import hidden
try:
    import fast
except ImportError:
    import slow
def f():
    import lazy
"""
    got = _load_time_imports(ast.parse(src).body, "pkg.sub")
    assert "os" in got and "pkg.sub.sibling" in got and "pkg.up.thing" in got
    assert {"fast", "slow"} <= set(got)
    assert "hidden" not in got and "lazy" not in got


def test_requirements_pin_what_the_code_imports() -> None:
    reqs = pip_requirements()
    names = {r.split("==")[0].lower() for r in reqs}
    assert {"torch", "transformers", "safetensors", "numpy"} <= names
    assert "torch==2.13.0" in reqs and all("==" in r and "+" not in r for r in reqs)
