"""Serving benchmark: one-article latency (p50/p95) and batched throughput through the Predictor,
the `newsml serve` HTTP endpoint and `mlflow models serve`, side by side, on real BBC articles.

The model is the packaged all-MiniLM-L6-v2 with a fresh (untrained) 5-class head: latency does
not depend on the head's weights, so no training is needed. It is logged as the project's pyfunc,
registered in a temporary MLflow store and made `champion`, so all three paths load
`models:/<name>@champion` exactly as in production.

    python bench/serve.py [--single 100] [--batch-articles 256] [--batch-size 32]
                          [--precisions auto,fp32,int8] [--lengths 256,128] [--model-dir TRAINED_DIR]
                          [--skip-mlflow-serve] [--corpora PATH]

Rows: the predictor for every serving.precision x serving.max_length asked for (the first is
the default config), the HTTP endpoint over the first predictor, and `mlflow models serve`
(the logged pyfunc, its own process, default workers). With --model-dir (a trained classifier,
e.g. bench/train.py's output) it also reports accuracy against the BBC gold labels.

Targets (2 cores): predictor p50 <= 20 ms for one article (<= 256 tokens); >= 100 articles/s batched.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from corpora import CORPORA, read_jsonl_gz  # noqa: E402

from newsml_pipeline.settings import LabelsConfig, ServingConfig, load_config  # noqa: E402

log = logging.getLogger("bench.serve")
DEFAULT_CORPORA = CORPORA
NAME = "bench-serve-classifier"


def load_articles(corpora: Path, n: int) -> list[dict]:
    """n unique BBC articles spread over the whole file (it is sorted by topic), with gold labels."""
    path = corpora / "bbc_news" / "bbc_news.jsonl.gz"
    if not path.exists():
        raise SystemExit(f"BBC corpus not found at {path}; pass --corpora /path/to/shared/corpora")
    rows = [r for r in read_jsonl_gz(path) if not r.get("duplicate_of")]
    step = max(1, len(rows) // n)
    return [{"title": r["title"], "text": r["text"], "gold": r["label"]} for r in rows[::step][:n]]


def build_model_dir(out: Path, labels: list[str]) -> Path:
    """MiniLM + an untrained classification head, saved like a trained model (weights, tokenizer, label map)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from newsml_pipeline.core.model_paths import resolve_model
    from newsml_pipeline.core.training.artifacts import write_label_map

    base = resolve_model(None)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
    )
    tok = AutoTokenizer.from_pretrained(base)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    write_label_map(out, labels)
    return out


def register_champion(model_dir: Path, uri: str, artifacts: Path, max_length: int) -> str:
    import mlflow
    from mlflow import MlflowClient

    from newsml_pipeline.core.registry.aliases import set_champion
    from newsml_pipeline.core.registry.model_logging import log_pyfunc_model
    from newsml_pipeline.core.registry.tracking import configure_mlflow

    configure_mlflow(uri, experiment="bench-serve", artifact_root=artifacts)
    with mlflow.start_run(run_name="bench-serve-untrained-head"):
        info = log_pyfunc_model(model_dir, registered_model=NAME, max_length=max_length)
    version = str(info.registered_model_version)
    set_champion(MlflowClient(tracking_uri=uri, registry_uri=uri), NAME, version, reason="serving benchmark")
    return version


def percentiles(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def time_single(call: Callable[[dict], object], articles: list[dict], warmup: int = 5) -> dict[str, float]:
    for a in articles[:warmup]:
        call(a)
    ms = []
    for a in articles:
        t0 = time.perf_counter()
        call(a)
        ms.append((time.perf_counter() - t0) * 1000)
    return percentiles(ms)


def time_batched(call: Callable[[list[dict]], object], articles: list[dict], batch: int) -> float:
    call(articles[:batch])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(articles), batch):
        call(articles[i : i + batch])
    return round(len(articles) / (time.perf_counter() - t0), 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_predictor(predictor, single: list[dict], many: list[dict], batch: int) -> dict:  # noqa: ANN001
    res = time_single(lambda a: predictor.predict([a]), single)
    res["articles_per_s"] = time_batched(predictor.predict, many, batch)
    return res


def bench_http(predictor, single: list[dict], many: list[dict], batch: int) -> dict:  # noqa: ANN001
    import httpx

    from newsml_pipeline.core.serving.http import make_server, start_in_thread

    server = make_server(predictor, host="127.0.0.1", port=0, max_body_bytes=50_000_000)
    start_in_thread(server)
    try:
        with httpx.Client(base_url=server.url, timeout=120) as c:

            def one(a: dict) -> None:
                c.post("/classify", json=a).raise_for_status()

            def lots(rs: list[dict]) -> None:
                c.post("/classify", json=rs).raise_for_status()

            res = time_single(one, single)
            res["articles_per_s"] = time_batched(lots, many, batch)
    finally:
        server.shutdown()
        server.server_close()
    return res


def bench_mlflow_serve(uri: str, single: list[dict], many: list[dict], batch: int, timeout_s: float) -> dict:
    import httpx

    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        f"models:/{NAME}@champion",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    log.info("starting: %s", " ".join(cmd))
    logf = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        t_start = time.monotonic()
        while True:
            if proc.poll() is not None:
                logf.seek(0)
                raise RuntimeError(
                    f"mlflow models serve exited with {proc.returncode}:\n{logf.read()[-3000:]}"
                )
            try:
                if httpx.get(f"{base}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow models serve did not answer /ping within {timeout_s}s (log: {logf.name})"
                )
            time.sleep(0.5)
        startup = time.monotonic() - t_start
        with httpx.Client(base_url=base, timeout=120) as c:

            def call(rs: list[dict]) -> None:
                r = c.post("/invocations", json={"dataframe_records": rs})
                r.raise_for_status()

            res = time_single(lambda a: call([a]), single)
            res["articles_per_s"] = time_batched(call, many, batch)
            res["startup_s"] = round(startup, 1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--single", type=int, default=100, help="articles timed one by one")
    ap.add_argument("--batch-articles", type=int, default=256, help="articles for the throughput run")
    ap.add_argument("--batch-size", type=int, default=32, help="articles per request / predict call")
    ap.add_argument("--max-length", type=int, default=256, help="tokens per article logged with the pyfunc")
    ap.add_argument(
        "--precisions", default="auto,fp32,int8", help="serving.precision values for the predictor"
    )
    ap.add_argument("--lengths", default="256,128", help="serving max_length values for the predictor")
    ap.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="a trained classifier dir (e.g. from bench/train.py) to also report accuracy vs gold; "
        "default: MiniLM with an untrained head (latency only)",
    )
    ap.add_argument("--skip-mlflow-serve", action="store_true")
    ap.add_argument("--mlflow-serve-timeout", type=float, default=240)
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("mlflow", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    import torch

    from newsml_pipeline.core.serving.predictor import ChampionResolver, Predictor
    from newsml_pipeline.core.training.inputs import format_input

    cfg = load_config()
    labels_cfg: LabelsConfig = cfg.labels
    articles = load_articles(args.corpora, max(args.single, args.batch_articles))
    single, many = (
        articles[:: max(1, len(articles) // args.single)][: args.single],
        articles[: args.batch_articles],
    )
    gold = [a["gold"] for a in many]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    lengths_to_try = [int(x) for x in args.lengths.split(",") if x.strip()]

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        tmp_path = Path(tmp)
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        if args.model_dir is not None:
            model_dir, model_desc = args.model_dir, f"trained classifier {args.model_dir}"
        else:
            model_dir = build_model_dir(tmp_path / "minilm-untrained-head", labels_cfg.names)
            model_desc = "MiniLM-L6 + untrained 5-class head (latency only)"
        version = register_champion(model_dir, uri, tmp_path / "artifacts", args.max_length)

        results: dict[str, dict] = {}
        predictors: dict[str, Predictor] = {}
        reference = None
        for length in lengths_to_try:
            for precision in precisions:
                serving = ServingConfig(
                    batch_size=args.batch_size, reload_interval_s=3600, precision=precision
                )
                t0 = time.perf_counter()
                pred = Predictor(
                    resolver=ChampionResolver(
                        tracking_uri=uri, registered_model=NAME, cache_dir=tmp_path / "cache"
                    ),
                    labels_cfg=labels_cfg,
                    serving_cfg=serving,
                    max_length=length,
                )
                load_s = time.perf_counter() - t0
                assert pred.model_version == version, (pred.model_version, version)
                key = f"predictor {precision}@{length}"
                predictors[key] = pred
                log.info("%s (model load %.1fs) ...", key, load_s)
                r = bench_predictor(pred, single, many, args.batch_size)
                r["startup_s"] = round(load_s, 1)
                answers = pred.predict(many)
                reference = reference or answers
                r["agreement_vs_first"] = round(
                    float(
                        np.mean([a["label"] == b["label"] for a, b in zip(answers, reference, strict=True)])
                    ),
                    4,
                )
                if args.model_dir is not None:
                    r["accuracy_vs_gold"] = round(
                        float(np.mean([a["label"] == g for a, g in zip(answers, gold, strict=True)])), 4
                    )
                results[key] = r
        first_key = next(iter(predictors))
        predictor = predictors[first_key]
        tok = predictor._backend.tokenizer  # noqa: SLF001 - only to report the token lengths measured
        n_tokens = [len(tok(format_input(a["title"], a["text"]))["input_ids"]) for a in single]
        log.info("HTTP endpoint ...")
        results[f"http {first_key.split()[1]}"] = bench_http(predictor, single, many, args.batch_size)
        if not args.skip_mlflow_serve:
            log.info("mlflow models serve ...")
            try:
                results[f"mlflow models serve @{args.max_length}"] = bench_mlflow_serve(
                    uri, single, many, args.batch_size, args.mlflow_serve_timeout
                )
            except RuntimeError as e:
                log.error("%s", e)
                results[f"mlflow models serve @{args.max_length}"] = {"error": str(e)[-500:]}

    print()
    print(
        f"serving benchmark: {model_desc}; {len(single)} single BBC articles (mean {statistics.fmean(n_tokens):.0f} "
        f"tokens before truncation), {len(many)} articles batched by {args.batch_size}"
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, {platform.machine()}"
    )
    header = (
        f"{'path precision@tokens':<26} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'articles/s':>11} "
        f"{'startup s':>10} {'agree':>6} {'acc':>6}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<26} ERROR: {r['error'][:80]}")
            continue
        agree = f"{r['agreement_vs_first']:.3f}" if "agreement_vs_first" in r else "-"
        acc = f"{r['accuracy_vs_gold']:.3f}" if "accuracy_vs_gold" in r else "-"
        print(
            f"{name:<26} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['mean_ms']:>8.1f} {r['articles_per_s']:>11.1f} "
            f"{r.get('startup_s', float('nan')):>10.1f} {agree:>6} {acc:>6}"
        )
    print(
        f"agree = label agreement with {first_key} on the {len(many)} batched articles; acc = accuracy vs BBC gold "
        "(only with --model-dir; those articles may include the model's training rows)"
    )
    p = results[first_key]
    print(
        f"targets ({first_key} = the default config): p50 <= 20 ms -> "
        f"{'MET' if p['p50_ms'] <= 20 else 'MISSED'} ({p['p50_ms']} ms); >= 100 articles/s batched -> "
        f"{'MET' if p['articles_per_s'] >= 100 else 'MISSED'} ({p['articles_per_s']})"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": " ".join(["python", "bench/serve.py", *sys.argv[1:]]),
                "model": model_desc,
                "pyfunc_max_length": args.max_length,
                "batch_size": args.batch_size,
                "single_articles": len(single),
                "mean_tokens_before_truncation": round(statistics.fmean(n_tokens), 1),
                "batched_articles": len(many),
                "torch_threads": torch.get_num_threads(),
                "cpu_cores": os.cpu_count(),
                "precisions": precisions,
                "lengths": lengths_to_try,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
