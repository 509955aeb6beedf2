"""Where the time between an HTTP request and the predictor call goes (issue 28, item 2).

    python bench/serve_profile.py [--requests 200] [--max-length 128] [--top 15]

Serves the packaged MiniLM-L6 (random head: speed only) through `newsml serve`'s app in this
process and sends single-article requests one after another, twice: unprofiled (HTTP p50 vs the
Predictor's own p50 on the same articles: the overhead) and under cProfile, with one profiler on
the event-loop thread (request parsing, validation, response building, uvicorn) and one on the
inference thread (tokenization, padding, forward). cProfile slows Python code, not the forward,
so the profiled overhead is an upper bound; the unprofiled p50s are the figures.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lean_client import LeanClient  # noqa: E402
from provenance import provenance  # noqa: E402
from serve import build_model_dir, load_articles  # noqa: E402

from testkit.corpora import CORPORA  # noqa: E402


def _register(model_dir: Path, uri: str, artifacts: Path, name: str) -> None:
    """Register model_dir (with its onnx/ files, if exported) as version 1 of `name`, champion."""
    from mlflow import MlflowClient

    from newsml_pipeline.core.registry.aliases import set_champion

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("profile", artifact_location=str(artifacts))
    run = client.create_run(exp)
    client.log_artifacts(run.info.run_id, str(model_dir), artifact_path="model/model")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(name)
    mv = client.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    set_champion(client, name, str(mv.version), reason="profile")


def _p50(ms: list[float]) -> float:
    return round(statistics.median(ms), 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "onnx", "onnx-int8"],
        help="served precision (onnx*: the model is exported first, as registration does)",
    )
    ap.add_argument("--corpora", type=Path, default=CORPORA)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve_profile.json")
    args = ap.parse_args()

    import httpx

    from newsml_pipeline.core.serving.http import make_server
    from newsml_pipeline.core.serving.predictor import ChampionResolver, Predictor
    from newsml_pipeline.settings import ServingConfig, load_config

    cfg = load_config()
    articles = [{"title": a["title"], "text": a["text"]} for a in load_articles(args.corpora, args.requests)]
    with tempfile.TemporaryDirectory(prefix="serve-profile-") as tmp:
        tmp_path = Path(tmp)
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        model_dir = build_model_dir(tmp_path / "model", cfg.labels.names)
        if args.precision.startswith("onnx"):
            from newsml_pipeline.core.serving.onnx_model import export_onnx

            export_onnx(model_dir)
        _register(model_dir, uri, tmp_path / "art", "profile")
        predictor = Predictor(
            resolver=ChampionResolver(tracking_uri=uri, registered_model="profile", cache_dir=tmp_path / "c"),
            labels_cfg=cfg.labels,
            serving_cfg=ServingConfig(precision=args.precision, reload_interval_s=3600),
            max_length=args.max_length,
        )
        loop_prof, infer_prof = cProfile.Profile(), cProfile.Profile()
        profiling = {"on": False}
        real_predict = predictor.predict

        def predict(records: list, **kw: object) -> list:
            if not profiling["on"]:
                return real_predict(records, **kw)
            infer_prof.enable()
            try:
                return real_predict(records, **kw)
            finally:
                infer_prof.disable()

        predictor.predict = predict  # type: ignore[method-assign]
        server = make_server(predictor, host="127.0.0.1", port=0)
        serve = server.serve_forever
        server.serve_forever = lambda: loop_prof.runcall(serve)  # type: ignore[method-assign]
        loop_prof.disable()
        server.start_in_thread()
        try:
            with httpx.Client(base_url=server.url, timeout=60) as c, LeanClient(server.url) as lean:
                for a in articles[:5]:
                    c.post("/classify", json=a).raise_for_status()
                    lean.post_json("/classify", a)
                    predictor.predict([a], reload=False)
                # Interleaved, article by article: other work on the machine hits all three alike.
                direct, http, http_lean = [], [], []
                for a in articles:
                    t0 = time.perf_counter()
                    predictor.predict([a], reload=False)
                    t1 = time.perf_counter()
                    c.post("/classify", json=a).raise_for_status()
                    t2 = time.perf_counter()
                    lean.post_json("/classify", a)
                    t3 = time.perf_counter()
                    direct.append((t1 - t0) * 1000)
                    http.append((t2 - t1) * 1000)
                    http_lean.append((t3 - t2) * 1000)
                # The profiled pass: the loop profiler runs the whole time, so clear what it saw so far.
                loop_prof.clear()
                profiling["on"] = True
                for a in articles:
                    c.post("/classify", json=a).raise_for_status()
                profiling["on"] = False
        finally:
            server.shutdown()
            server.server_close()

    report: dict[str, object] = {
        "predictor_p50_ms": _p50(direct),
        "http_p50_ms": _p50(http),
        "overhead_p50_ms": round(_p50(http) - _p50(direct), 2),
        "overhead_p50_of_pairs_ms": _p50([h - d for h, d in zip(http, direct, strict=True)]),
        "lean_http_p50_ms": _p50(http_lean),
        "lean_overhead_p50_ms": round(_p50(http_lean) - _p50(direct), 2),
        "lean_overhead_p50_of_pairs_ms": _p50([h - d for h, d in zip(http_lean, direct, strict=True)]),
    }
    print(f"{args.requests} single-article requests, {args.max_length} tokens, {args.precision}")
    print(
        f"predictor p50 {report['predictor_p50_ms']} ms, HTTP p50 {report['http_p50_ms']} ms, "
        f"overhead {report['overhead_p50_ms']} ms (p50 of per-article differences "
        f"{report['overhead_p50_of_pairs_ms']} ms) with httpx; with the lean client (hand-built HTTP) "
        f"HTTP p50 {report['lean_http_p50_ms']} ms, overhead {report['lean_overhead_p50_ms']} ms "
        f"({report['lean_overhead_p50_of_pairs_ms']} ms)"
    )
    for name, prof, key in (
        ("event-loop thread", loop_prof, "tottime"),
        ("inference thread", infer_prof, "tottime"),
    ):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(args.top)
        text = buf.getvalue()
        print(f"\n==== {name} (cProfile, sorted by {key}) ====\n{text}")
        report[f"profile {name}"] = text.splitlines()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**provenance(), **report}, indent=2))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
