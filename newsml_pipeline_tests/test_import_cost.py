"""Loading the code location stays cheap: no ML library is imported by `newsml_pipeline.definitions`.

Every step process of the multiprocess executor (and every Kubernetes step pod) imports the code
location before it runs its step, so a crawl step must not pay seconds and hundreds of MB for
torch. The check is on `sys.modules` of a fresh interpreter (deterministic), and that the GC
paused for the imports is on again; the time and memory are measured by `bench/import_cost.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Imported only by the functions that need them (training, labelling, drift, registry, near-duplicates).
HEAVY = (
    "torch",
    "transformers",
    "peft",
    "sklearn",
    "river",
    "spacy",
    "onnxruntime",
    "sentence_transformers",
    "scipy",
    "mlflow",
    "datasketch",
)

# Runs in the child: records, for each heavy package, the project frames that imported it (the
# last lookup before it was loaded: an earlier `find_spec` probe by a library is overwritten).
_PROBE = """
import json, sys, traceback
HEAVY = set(sys.argv[1].split(","))
seen = {}

class Probe:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in HEAVY and top not in sys.modules:
            seen[top] = [f"{f.filename.split('newsml_pipeline/', 1)[-1]}:{f.lineno}"
                         for f in traceback.extract_stack() if "/newsml_pipeline/" in f.filename]
        return None

sys.meta_path.insert(0, Probe())
import newsml_pipeline.definitions
import gc
loaded = {top: seen.get(top, []) for top in sorted(HEAVY) if top in sys.modules}
print(json.dumps({"loaded": loaded, "gc_enabled": gc.isenabled()}))
"""


def test_loading_the_code_location_imports_no_ml_library(tmp_path: Path) -> None:
    env = {**os.environ, "NEWSML_HOME": str(tmp_path / "home")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _PROBE, ",".join(HEAVY)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["gc_enabled"], "definitions.py paused the cyclic GC for its imports and left it off"
    loaded = out["loaded"]
    assert not loaded, "imported at load (import them inside the functions that use them):\n" + "\n".join(
        f"  {top} <- {' <- '.join(reversed(chain)) or '?'}" for top, chain in loaded.items()
    )
