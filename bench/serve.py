"""Serving benchmark, side by side in one run on real BBC articles at 128 tokens: the Predictor at
torch fp32, torch bf16, ONNX fp32, ONNX int8 and the default (`auto`), the `newsml serve` HTTP
endpoint (FastAPI) and `mlflow models serve` (the logged pyfunc), the last two also under N
concurrent clients for S seconds (errors, p50/p99, requests/s).

The model: with --model-dir a trained classifier; otherwise the packaged all-MiniLM-L6-v2 whose
classification head is fitted (logistic regression on its frozen pooled output) on BBC articles
disjoint from the ones measured, so macro-F1 per precision means something. It is registered in
a temporary MLflow store exactly as training registers (pyfunc + ONNX fp32/int8 export), each
precision's macro-F1 and ms/article on the gold articles become the version's tags, and it is
made `champion`, so every path loads `models:/<name>@champion` as in production and `auto`
picks its precision by the production rule.

    python bench/serve.py [--quick] [--clients 100] [--load-seconds 60] [--model-dir DIR]
                          [--skip-mlflow-serve] [--corpora PATH]

The limit in the same run: the machine's dense matmul rate is measured first for each precision
it runs natively (bench/matmul.py: fp32; bf16 with avx512_bf16/AMX; int8 with VNNI/AMX), and again
right before and after each predictor row at that row's precision. Each path's single-article p50
is printed as a multiple of the model's FLOPs (from its config and the measured articles' token
counts) at the mean of those two rates ("GF/s"), its batched articles/s as a share of that rate.
The CPU's flags are printed and stored.

Targets (issue 28, on the machine that runs it): served precision's single-article p50 <= 3x the
FLOPs-at-matmul-rate time and batched articles/s >= 60 % of the rate; HTTP p50 - predictor p50
<= 2 ms; requests/s under 100 clients >= 0.8 x batched articles/s with 0 errors; `auto` serves
the fastest allowed precision (by batched ms/article, as its probe measures; within 10 %: a tie);
the default loses <= 0.005 macro-F1 vs fp32.
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

from lean_client import LeanClient  # noqa: E402
from matmul import NATIVE, time_matmul  # noqa: E402
from provenance import cpu_flags, provenance  # noqa: E402

from newsml_pipeline.settings import LabelsConfig, ServingConfig, load_config  # noqa: E402
from testkit.corpora import CORPORA, read_jsonl_gz  # noqa: E402

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


def matmul_rates(size: int, repeat: int) -> dict[str, dict]:
    """GFLOP/s (GOP/s for int8) per precision this CPU runs natively; the others say why not."""
    flags = set(cpu_flags())
    rates: dict[str, dict] = {}
    for dtype, needs in NATIVE.items():
        if needs and not needs & flags:
            rates[dtype] = {"skipped": f"no native {dtype} (needs one of {sorted(needs)})"}
        else:
            rates[dtype] = time_matmul(dtype, size, repeat)
    return rates


def model_gflop(model_dir: Path, token_counts: list[int]) -> float:
    """Mean GFLOP of one forward per article: the encoder's matmuls (QKV + output projections, the
    feed-forward pair, attention scores and context) at each article's token count; embeddings,
    softmax, LayerNorm and the head are small beside them and left out."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_dir)
    h, ffn, layers = c.hidden_size, c.intermediate_size, c.num_hidden_layers

    def one(t: int) -> float:
        return layers * (2 * t * (4 * h * h + 2 * h * ffn) + 4 * t * t * h)

    return statistics.fmean(one(t) for t in token_counts) / 1e9


def rate_for(precision: str, rates: dict[str, dict]) -> tuple[str, float | None]:
    """The matmul rate (median GFLOP/s) a path of `precision` can use at best."""
    dtype = {"bf16": "bf16", "fp16": "bf16", "onnx-int8": "int8", "int8": "int8"}.get(precision, "fp32")
    r = rates.get(dtype, {})
    if "gflops_median" not in r:
        dtype, r = "fp32", rates["fp32"]
    return dtype, r.get("gflops_median")


def percentiles(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
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


def fit_head(model_dir: Path, fit: list[dict], labels: list[str], max_length: int) -> float:
    """Fit the classification head (logistic regression on the frozen pooled output) on `fit`;
    writes the weights back into model_dir; returns the training accuracy."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from newsml_pipeline.core.training.inputs import format_input

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    feats = []
    with torch.inference_mode():
        for i in range(0, len(fit), 32):
            chunk = fit[i : i + 32]
            enc = tok(
                [format_input(a["title"], a["text"]) for a in chunk],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            feats.append(model.bert(**enc).pooler_output.numpy())
    x = np.concatenate(feats)
    y = np.array([labels.index(a["gold"]) for a in fit])
    clf = LogisticRegression(C=10.0, max_iter=2000).fit(x, y)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.tensor(clf.coef_, dtype=torch.float32))
        model.classifier.bias.copy_(torch.tensor(clf.intercept_, dtype=torch.float32))
    model.save_pretrained(model_dir)
    return float(clf.score(x, y))


def load_test(url: str, path: str, articles_file: Path, *, clients: int, seconds: float, body: str) -> dict:
    """Run the load generator in its own process (its CPU is not the server's GIL)."""
    cmd = [
        sys.executable,
        __file__,
        "--load-client",
        url + path,
        "--articles-file",
        str(articles_file),
        "--clients",
        str(clients),
        "--load-seconds",
        str(seconds),
        "--body",
        body,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    if out.returncode != 0:
        raise RuntimeError(f"load client failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def load_client(url: str, articles_file: Path, clients: int, seconds: float, body: str) -> dict:
    """`clients` concurrent keep-alive clients, each posting one article after another for `seconds`.

    A 503 with Retry-After is the server shedding load by its queue deadline, not a failure: it is
    counted as `shed` (with how fast it came back), and that client waits Retry-After seconds
    before its next request, as a well-behaved client does; anything else not 200 is an error.
    Each client is one asyncio stream with hand-built requests (lean_client.post_keepalive): this
    process shares the cores with the server, so it spends as little CPU per request as it can."""
    import asyncio
    from urllib.parse import urlsplit

    from lean_client import post_keepalive

    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    articles = json.loads(articles_file.read_text())
    payloads = []
    for a in articles:
        p: dict = {"title": a["title"], "text": a["text"]}
        payloads.append(json.dumps({"dataframe_records": [p]} if body == "mlflow" else p).encode())
    lat: list[float] = []
    shed_ms: list[float] = []
    errors: dict[str, int] = {}

    def error(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    async def one_client(k: int, deadline: float) -> None:
        i = k
        conn = None
        while time.perf_counter() < deadline:
            payload = payloads[i % len(payloads)]
            i += clients
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.open_connection(host, port)
                status, headers, _ = await asyncio.wait_for(
                    post_keepalive(*conn, f"{host}:{port}", path, payload), timeout=60
                )
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as e:
                error(type(e).__name__)
                if conn is not None:
                    conn[1].close()
                conn = None
                continue
            if headers.get("connection", "").lower() == "close":
                conn[1].close()
                conn = None
            if status == 503 and "retry-after" in headers:
                shed_ms.append((time.perf_counter() - t0) * 1000)
                pause = min(float(headers["retry-after"]), max(0.0, deadline - time.perf_counter()))
                await asyncio.sleep(pause)
                continue
            if status != 200:
                error(str(status))
                continue
            lat.append((time.perf_counter() - t0) * 1000)
        if conn is not None:
            conn[1].close()

    async def run() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(one_client(k, t0 + seconds) for k in range(clients)))
        return time.perf_counter() - t0

    wall = asyncio.run(run())
    res = {"requests": len(lat), "errors": sum(errors.values()), "error_kinds": errors, "shed": len(shed_ms)}
    if shed_ms:
        res["shed_p99_ms"] = round(float(np.percentile(shed_ms, 99)), 1)
    res["requests_per_s"] = round(len(lat) / wall, 1)
    if lat:
        res |= {
            "p50_ms": round(float(np.percentile(lat, 50)), 1),
            "p99_ms": round(float(np.percentile(lat, 99)), 1),
        }
    return res


def start_mlflow_serve(uri: str, timeout_s: float) -> tuple[subprocess.Popen, str, float]:
    import httpx

    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    # mlflow runs `uvicorn` by name: put this interpreter's bin dir (the venv) first on PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}@champion"]
    cmd += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    log.info("starting: %s", " ".join(cmd))
    logf = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    t_start = time.monotonic()
    while True:
        if proc.poll() is not None:
            logf.seek(0)
            raise RuntimeError(f"mlflow models serve exited with {proc.returncode}:\n{logf.read()[-3000:]}")
        try:
            if httpx.get(f"{base}/ping", timeout=2).status_code == 200:
                return proc, base, time.monotonic() - t_start
        except httpx.HTTPError:
            pass
        if time.monotonic() - t_start > timeout_s:
            proc.kill()
            raise RuntimeError(f"mlflow models serve did not answer /ping within {timeout_s}s ({logf.name})")
        time.sleep(0.5)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run: 30 single, 128 batched, 10 s load")
    ap.add_argument("--single", type=int, default=100, help="articles timed one by one")
    ap.add_argument("--batch-articles", type=int, default=512, help="articles for throughput and macro-F1")
    ap.add_argument("--fit-articles", type=int, default=500, help="articles the head is fitted on")
    ap.add_argument("--batch-size", type=int, default=32, help="articles per predict call / server batch")
    ap.add_argument("--max-length", type=int, default=128, help="tokens per article (all paths)")
    ap.add_argument("--precisions", default="fp32,bf16,onnx,onnx-int8,auto")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--load-seconds", type=float, default=60)
    ap.add_argument("--model-dir", type=Path, default=None, help="a trained classifier dir (copied)")
    ap.add_argument("--skip-mlflow-serve", action="store_true")
    ap.add_argument("--mlflow-serve-timeout", type=float, default=240)
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--matmul-size", type=int, default=2048)
    ap.add_argument("--matmul-repeat", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve.json")
    # internal: the load generator subprocess
    ap.add_argument("--load-client", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--articles-file", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--body", default="newsml", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load_client:
        print(
            json.dumps(
                load_client(args.load_client, args.articles_file, args.clients, args.load_seconds, args.body)
            )
        )
        return 0
    if args.quick:
        args.single, args.batch_articles, args.fit_articles, args.load_seconds = 30, 128, 200, 10
        args.matmul_size, args.matmul_repeat = 1024, 5
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("mlflow", "httpx", "alembic", "onnxruntime"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    import shutil

    import polars as pl
    import torch
    from mlflow import MlflowClient

    from newsml_pipeline.core.evaluation.precisions import measure_precisions
    from newsml_pipeline.core.serving.http import make_server
    from newsml_pipeline.core.serving.precision import TAG_CHOSEN, choose_precision, precision_tags
    from newsml_pipeline.core.serving.predictor import ChampionResolver, Predictor
    from newsml_pipeline.core.training.inputs import format_input

    load_before = uptime()
    flags = cpu_flags()
    log.info("matmul rate per precision (%d^3, %d repeats) ...", args.matmul_size, args.matmul_repeat)
    rates = matmul_rates(args.matmul_size, args.matmul_repeat)
    cfg = load_config()
    labels_cfg: LabelsConfig = cfg.labels
    labels = labels_cfg.names
    pool = load_articles(args.corpora, args.batch_articles + args.fit_articles)
    fit, many = pool[1::2][: args.fit_articles], pool[0::2][: args.batch_articles]
    single = many[:: max(1, len(many) // args.single)][: args.single]
    precisions = [x.strip() for x in args.precisions.split(",") if x.strip()]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        tmp_path = Path(tmp)
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        model_dir = tmp_path / "model"
        if args.model_dir is not None:
            shutil.copytree(args.model_dir, model_dir)
            model_desc = f"trained classifier {args.model_dir}"
        else:
            build_model_dir(model_dir, labels)
            acc = fit_head(model_dir, fit, labels, args.max_length)
            model_desc = f"MiniLM-L6 + head fitted on {len(fit)} BBC articles (train acc {acc:.3f})"
        t0 = time.perf_counter()
        version = register_champion(model_dir, uri, tmp_path / "artifacts", args.max_length)
        log.info("registered (pyfunc + ONNX export) in %.1fs", time.perf_counter() - t0)
        gold_rows = pl.DataFrame(
            {
                "title": [a["title"] for a in many],
                "text": [a["text"] for a in many],
                "label": [a["gold"] for a in many],
            }
        )
        measured = measure_precisions(
            model_dir,
            gold_rows,
            labels=labels,
            max_length=args.max_length,
            batch_size=args.batch_size,
            device="cpu",
        )
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        tags = precision_tags(measured)
        chosen = choose_precision(measured, max_f1_loss=cfg.serving.auto_max_f1_loss)
        tags[TAG_CHOSEN] = str(chosen)
        for k, v in tags.items():
            client.set_model_version_tag(NAME, version, k, v)
        ref_f1 = measured["fp32"]["macro_f1"]
        predictors: dict[str, Predictor] = {}
        from newsml_pipeline.core.training.device import cpu_has_native_bf16

        for precision in precisions:
            if precision == "bf16" and not cpu_has_native_bf16():
                # Emulated bf16 is many times slower than fp32: not a serving option on this CPU
                # (measure_precisions leaves it out too, so `auto` never picks it here).
                results["predictor bf16"] = {"error": "skipped: this CPU has no native bf16"}
                continue
            serving = ServingConfig(batch_size=args.batch_size, reload_interval_s=3600, precision=precision)
            pred = Predictor(
                resolver=ChampionResolver(
                    tracking_uri=uri, registered_model=NAME, cache_dir=tmp_path / "cache"
                ),
                labels_cfg=labels_cfg,
                serving_cfg=serving,
                max_length=args.max_length,
            )
            actual = pred._backend.precision  # noqa: SLF001 - which backend auto resolved to
            key = f"predictor {precision}" + (f" (= {actual})" if precision == "auto" else "")
            log.info("%s ...", key)
            # This VM's speed drifts by a third within minutes (torch fp32 single-article p50: 21
            # and 48 ms in two runs); the rate this row is held to is measured right before and
            # after it, so a slow minute lowers both sides of the ratio alike.
            dtype, _ = rate_for(actual, rates)
            before = time_matmul(dtype, args.matmul_size, args.matmul_repeat)
            r = bench_predictor(pred, single, many, args.batch_size)
            after = time_matmul(dtype, args.matmul_size, args.matmul_repeat)
            r["matmul_gflops_around"] = [round(before["gflops_median"], 1), round(after["gflops_median"], 1)]
            m = measured.get(actual if actual in measured else "fp32")
            r["macro_f1"] = round(m["macro_f1"], 4)
            r["f1_loss_vs_fp32"] = round(ref_f1 - m["macro_f1"], 4)
            r["precision"] = actual
            if precision == "auto" and pred.precision_choice is not None:
                r["choice"] = pred.precision_choice.as_dict()
            results[key] = r
            predictors[precision] = pred
        default = predictors.get("auto") or next(iter(predictors.values()))
        tok = default._backend.tokenizer  # noqa: SLF001 - token counts of the timed articles
        tokens = [
            len(ids)
            for ids in tok(
                [format_input(a["title"], a["text"]) for a in single],
                truncation=True,
                max_length=args.max_length,
            )["input_ids"]
        ]
        gflop = model_gflop(model_dir, tokens)
        for r in results.values():
            if "p50_ms" not in r or "precision" not in r:
                continue
            dtype, rate = rate_for(r["precision"], rates)
            if r.get("matmul_gflops_around"):
                rate = statistics.fmean(r["matmul_gflops_around"])
            if rate:
                ideal_ms = gflop / rate * 1000
                r["limit"] = {
                    "matmul_dtype": dtype,
                    "gflops": round(rate, 1),
                    "ideal_ms": round(ideal_ms, 2),
                    "p50_x_ideal": round(r["p50_ms"] / ideal_ms, 2),
                    "batched_share_of_rate": round(r["articles_per_s"] * gflop / rate, 3),
                }
        articles_file = tmp_path / "articles.json"
        articles_file.write_text(json.dumps([{"title": a["title"], "text": a["text"]} for a in many]))

        log.info("HTTP endpoint (newsml serve, FastAPI) ...")
        server = make_server(default, host="127.0.0.1", port=0, max_body_bytes=50_000_000)
        server.start_in_thread()
        try:
            import httpx

            # Single-article latency through lean_client's hand-built HTTP (next to nothing of its
            # own), so the HTTP - predictor figure is the server's; httpx's figure (~1 ms more of
            # client Python per request) is kept beside it.
            # Interleaved with the same predictor's direct call, article by article, so that
            # other work on the machine hits both alike: the overhead is the p50 of the pairs.
            with LeanClient(server.url) as lean:
                for a in single[:5]:
                    lean.post_json("/classify", a)
                    default.predict([a], reload=False)
                direct_ms, http_ms = [], []
                for a in single:
                    t0 = time.perf_counter()
                    default.predict([a], reload=False)
                    t1 = time.perf_counter()
                    lean.post_json("/classify", a)
                    direct_ms.append((t1 - t0) * 1000)
                    http_ms.append((time.perf_counter() - t1) * 1000)
            r = percentiles(http_ms)
            r["predictor_p50_ms"] = percentiles(direct_ms)["p50_ms"]
            r["overhead_p50_ms"] = round(
                float(np.percentile([h - d for h, d in zip(http_ms, direct_ms, strict=True)], 50)), 2
            )
            with httpx.Client(base_url=server.url, timeout=120) as c:
                r["httpx_p50_ms"] = time_single(
                    lambda a: c.post("/classify", json=a).raise_for_status(), single
                )["p50_ms"]
                r["articles_per_s"] = time_batched(
                    lambda rs: c.post("/classify", json=rs).raise_for_status(), many, args.batch_size
                )
            log.info("HTTP load: %d clients x %.0fs ...", args.clients, args.load_seconds)
            r["load"] = load_test(
                server.url,
                "/classify",
                articles_file,
                clients=args.clients,
                seconds=args.load_seconds,
                body="newsml",
            )
            r["precision"] = default._backend.precision  # noqa: SLF001
            results[f"http newsml serve ({r['precision']})"] = r
        finally:
            server.shutdown()
            server.server_close()
        if not args.skip_mlflow_serve:
            key = "mlflow models serve (pyfunc, torch)"
            try:
                proc, base, startup = start_mlflow_serve(uri, args.mlflow_serve_timeout)
                try:
                    with httpx.Client(base_url=base, timeout=120) as c:

                        def call(rs: list[dict]) -> None:
                            rows = [{"title": a["title"], "text": a["text"]} for a in rs]
                            c.post("/invocations", json={"dataframe_records": rows}).raise_for_status()

                        r = time_single(lambda a: call([a]), single)
                        r["articles_per_s"] = time_batched(call, many, args.batch_size)
                        r["startup_s"] = round(startup, 1)
                    r["load"] = load_test(
                        base,
                        "/invocations",
                        articles_file,
                        clients=args.clients,
                        seconds=args.load_seconds,
                        body="mlflow",
                    )
                finally:
                    proc.terminate()
                    try:
                        proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                results[key] = r
            except RuntimeError as e:
                log.error("%s", e)
                results[key] = {"error": str(e)[-500:]}
    load_after = uptime()

    print()
    print(
        f"serving benchmark: {model_desc}; {len(single)} single BBC articles, {len(many)} batched by {args.batch_size} "
        f"(also the macro-F1 rows), {args.max_length} tokens max ({statistics.fmean(tokens):.0f} mean)"
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, {platform.machine()}"
    )
    print(f"CPU flags: {' '.join(flags) or '(unknown)'}")
    print(f"load before: {load_before}\nload after:  {load_after}")
    print(f"matmul {args.matmul_size}^3, median of {args.matmul_repeat}:")
    for dtype, r in rates.items():
        print(
            f"  {dtype:5} "
            + (f"skipped: {r['skipped']}" if "skipped" in r else f"{r['gflops_median']:.1f} GFLOP/s")
        )
    print(f"model: {gflop:.2f} GFLOP per article (mean over the single articles)")
    header = (
        f"{'path':<36} {'p50 ms':>7} {'p99 ms':>7} {'art/s':>7} {'macroF1':>8} {'loss':>7} "
        f"{'GF/s':>6} {'x ideal':>8} {'% rate':>7} | {'load: req/s':>11} {'p50':>6} {'p99':>7} {'errors':>6}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<36} ERROR: {r['error'][:100]}")
            continue
        f1 = f"{r['macro_f1']:.4f}" if "macro_f1" in r else "-"
        loss = f"{r['f1_loss_vs_fp32']:+.4f}" if "f1_loss_vs_fp32" in r else "-"
        lim = r.get("limit")
        gf = f"{lim['gflops']:.0f}" if lim else "-"
        xi = f"{lim['p50_x_ideal']:.1f}x" if lim else "-"
        share = f"{100 * lim['batched_share_of_rate']:.0f}%" if lim else "-"
        ld = r.get("load")
        tail = (
            f"| {ld['requests_per_s']:>11.1f} {ld.get('p50_ms', float('nan')):>6.1f} {ld.get('p99_ms', float('nan')):>7.1f} "
            f"{ld['errors']:>6} shed {ld.get('shed', 0)}"
            if ld
            else "|"
        )
        print(
            f"{name:<36} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['articles_per_s']:>7.1f} "
            f"{f1:>8} {loss:>7} {gf:>6} {xi:>8} {share:>7} {tail}"
        )
    auto_key = next((k for k in results if k.startswith("predictor auto")), None)
    http_key = next((k for k in results if k.startswith("http")), None)
    targets: dict[str, object] = {}
    if auto_key and http_key:
        a, h = results[auto_key], results[http_key]
        lim = a.get("limit") or {}
        allowed = set(a.get("choice", {}).get("measured_ms", {}))
        # The probe picks by batched ms/article (the shape the server runs under load), so the
        # table is read the same way. Two precisions within 10 % of each other are a tie: on this
        # 2-core VM the same path's batched rate moves more than that between runs (torch fp32:
        # 47.8 and 64.4 articles/s in two runs of this script), so either is the fastest there.
        batched_ms = {
            r["precision"]: 1000 / r["articles_per_s"]
            for k, r in results.items()
            if k.startswith("predictor ") and k != auto_key and r.get("precision") in allowed
        }
        fastest_here = min(batched_ms, key=batched_ms.get) if batched_ms else None
        served_ratio = (
            batched_ms[a["precision"]] / batched_ms[fastest_here]
            if fastest_here and a["precision"] in batched_ms
            else float("inf")
        )
        targets = {
            "p50 <= 3x FLOPs-at-rate": (lim.get("p50_x_ideal"), bool(lim) and lim["p50_x_ideal"] <= 3),
            "batched >= 60% of rate": (
                lim.get("batched_share_of_rate"),
                bool(lim) and lim["batched_share_of_rate"] >= 0.6,
            ),
            "HTTP p50 - predictor p50 <= 2 ms (p50 of interleaved pairs)": (
                h["overhead_p50_ms"],
                h["overhead_p50_ms"] <= 2,
            ),
            "req/s under load >= 0.8 x batched art/s": (
                round(h["load"]["requests_per_s"] / a["articles_per_s"], 2),
                h["load"]["requests_per_s"] >= 0.8 * a["articles_per_s"],
            ),
            "0 errors under load": (h["load"]["errors"], h["load"]["errors"] == 0),
            "auto serves the fastest allowed (batched ms/article of this table, ties within 10%)": (
                f"{a['precision']} vs {fastest_here}: {served_ratio:.2f}x",
                served_ratio <= 1.10,
            ),
            "default loss <= 0.005": (a["f1_loss_vs_fp32"], a["f1_loss_vs_fp32"] <= 0.005),
        }
        print("targets:")
        for name, (value, ok) in targets.items():
            print(f"  {'MET   ' if ok else 'MISSED'} {name}: {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                **provenance(),
                "model": model_desc,
                "max_length": args.max_length,
                "batch_size": args.batch_size,
                "single_articles": len(single),
                "batched_articles": len(many),
                "clients": args.clients,
                "load_seconds": args.load_seconds,
                "torch_threads": torch.get_num_threads(),
                "cpu_cores": os.cpu_count(),
                "load_before": load_before,
                "load_after": load_after,
                "auto_choice_at_registration": chosen,
                "matmul": {"size": args.matmul_size, "repeat": args.matmul_repeat, "rates": rates},
                "model_gflop_per_article": round(gflop, 3),
                "mean_tokens": round(statistics.fmean(tokens), 1),
                "targets": {k: {"value": v, "met": ok} for k, (v, ok) in targets.items()},
                "per_precision_eval": measured,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
