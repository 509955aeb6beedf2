"""What the README tells people to install exists: every extra it names is a non-empty extra."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# `pip install -e ".[dev,scale]"`, `pip install ".[scale]"`, `'newsml_pipeline[scale]'`
_EXTRAS = re.compile(r"(?:\.|newsml_pipeline)\[([A-Za-z0-9_,\- ]+)\]")


def named_extras(text: str) -> set[str]:
    return {name.strip() for group in _EXTRAS.findall(text) for name in group.split(",") if name.strip()}


def test_every_extra_the_docs_name_exists_and_installs_something() -> None:
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    docs = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "deploy").rglob("Dockerfile*"))]
    named = {name: doc.name for doc in docs for name in named_extras(doc.read_text(encoding="utf-8"))}
    assert {"dev", "scale"} <= set(named), named  # the parser sees the README's install lines
    missing = {name: where for name, where in named.items() if name not in extras}
    assert not missing, f"extras named in the docs but not in pyproject.toml: {missing}"
    empty = {name: where for name, where in named.items() if not extras[name]}
    assert not empty, f"extras named in the docs that install nothing: {empty}"


def test_the_extras_pattern_reads_install_lines() -> None:
    line = 'pip install -e ".[dev, gpu]" && pip install ".[scale]" newsml_pipeline[x]'
    assert named_extras(line) == {"dev", "gpu", "scale", "x"}
