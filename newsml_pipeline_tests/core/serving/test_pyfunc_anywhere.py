"""The logged MLflow model carries its code and pinned requirements, so it loads outside the repo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from importlib.metadata import version
from pathlib import Path

import mlflow
import pytest

from newsml_pipeline.core.registry.model_logging import log_pyfunc_model
from newsml_pipeline.core.registry.tracking import configure_mlflow
from newsml_pipeline_tests.core.serving.conftest import LABELS
from testkit.tiny_models import make_tiny_classifier_dir

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("pyfunc")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    configure_mlflow(uri, experiment="anywhere", artifact_root=root / "artifacts")
    model_dir = make_tiny_classifier_dir(root, LABELS, seed=5)
    with mlflow.start_run():
        info = log_pyfunc_model(model_dir, registered_model="anywhere", max_length=64, export_onnx=False)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=str(root / "dl")))
    return {"uri": uri, "local": local, "root": root}


def test_requirements_are_exact_pins_torch_included(logged: dict) -> None:
    reqs = (logged["local"] / "requirements.txt").read_text().split()
    pins = dict(r.split("==", 1) for r in reqs if "==" in r)
    assert pins["torch"] == "2.13.0"
    for dist in ("mlflow", "transformers", "numpy", "pandas", "pydantic", "polars", "safetensors"):
        assert pins[dist] == version(dist), dist
    assert not any(r.startswith("newsml") for r in reqs)  # the code travels as code_paths instead
    assert (logged["local"] / "code" / "newsml_pipeline" / "core" / "serving" / "pyfunc_model.py").exists()


@pytest.mark.slow
def test_loads_and_predicts_in_a_fresh_interpreter_without_the_repo(logged: dict, tmp_path: Path) -> None:
    # -S: no site processing, so the editable install's finder (which maps newsml_pipeline to this
    # repo) is not installed; only plain site-packages is added. cwd is a temp dir, not the repo.
    script = f"""
import sys
sys.path.append({sysconfig.get_paths()["purelib"]!r})
try:
    import newsml_pipeline
    raise SystemExit("newsml_pipeline importable before loading: the test would prove nothing")
except ImportError:
    pass
import json, mlflow, pandas as pd
m = mlflow.pyfunc.load_model({str(logged["local"])!r})
import newsml_pipeline
out = m.predict(pd.DataFrame({{"title": ["Cup"], "text": ["The team won the match."]}}))
print(json.dumps({{"file": newsml_pipeline.__file__, "label": out["label"][0]}}))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-S", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["label"] in LABELS
    assert not got["file"].startswith(str(ROOT / "newsml_pipeline"))  # loaded from the model's code
    assert "code" in Path(got["file"]).parts


def test_dockerfile_references_files_that_exist() -> None:
    dockerfile = ROOT / "deploy" / "serving" / "Dockerfile"
    text = dockerfile.read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert lines[0].startswith("FROM ") and any(ln.startswith(("CMD", "ENTRYPOINT")) for ln in lines)
    for ln in lines:
        if ln.startswith(("COPY", "ADD")) and "--from" not in ln:
            for src in ln.split()[1:-1]:
                if not src.startswith("--"):
                    assert (ROOT / src).exists(), f"{ln!r}: {src} does not exist in the repo"
    assert "torch==2.13.0" in text and "newsml" in text and "EXPOSE 8765" in text
