"""`newsml`: predictions, the HTTP endpoint, rollback, status and benchmarks from the shell.

Settings come from NEWSML_HOME / NEWSML_CONFIG (`Settings.from_env()`), like the Dagster code.

  newsml demo [--days N]                            the living system over a bundled newsroom
  newsml run [--date YYYY-MM-DD] [--retrain]        materialize ingest_job (+ retrain_job)
  newsml predict "some article text" [--title T]     one article -> one JSON line
  newsml predict --file articles.jsonl              one {title?, text, id?} per line/row -> JSONL
                                                    (.jsonl[.gz], .ndjson, .csv, .parquet)
  cat articles.jsonl | newsml predict               same, from stdin (streamed in batches)
  newsml serve [--host 127.0.0.1] [--port 8765]
  newsml entities [--file texts.jsonl]               JSONL of {id?, text} -> named entities (JSONL)
  newsml label [--host 127.0.0.1] [--port 8766] [--user NAME]   the labelling page
                                                    (off loopback: NEWSML_LABEL_TOKENS=name:token,...)
  newsml rollback [--reason "why"]
  newsml status [--json]
  newsml bench serve [-- bench options]
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import warnings
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from newsml_pipeline.core.records import is_record_file, iter_records, jsonl_lines
from newsml_pipeline.settings import ConfigError, Settings

log = logging.getLogger("newsml")

EXIT_USAGE = 2
EXIT_FAILED = 1
REPO_ROOT = Path(__file__).resolve().parents[1]


class CliError(Exception):
    """A user-facing error: printed as `newsml: error: <message>`, exit code 2."""


# ---------------------------------------------------------------- predict


Located = tuple[str, dict[str, Any]]  # (where: "stdin line 3", "a.csv:4", ...; the record)


def _stdin_records(lines: Iterable[str]) -> Iterator[Located]:
    for item in jsonl_lines(lines):
        if item.record is None:
            raise CliError(f"stdin line {item.line}: {item.error}")
        yield f"stdin line {item.line}", item.record


def _file_records(path: Path) -> Iterator[Located]:
    """One article per line/row of a .jsonl/.jsonl.gz/.ndjson/.csv/.parquet file (title, text, id
    columns), read by the same readers as local sources; any other file is the text of one article."""
    if not path.exists():
        raise CliError(f"--file {path}: no such file")
    if not is_record_file(path):
        yield str(path), {"text": path.read_text(encoding="utf-8")}
        return
    for where, rec, err in iter_records(path):
        if err is not None:
            raise CliError(err)
        # An empty CSV cell or a null column is an absent field (a missing title, no id).
        yield where, {k: v for k, v in rec.items() if v is not None}


def _batches(records: Iterable[Located], size: int) -> Iterator[list[Located]]:
    batch: list[Located] = []
    for rec in records:
        batch.append(rec)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def cmd_predict(args: argparse.Namespace, settings: Settings, out: IO[str]) -> int:
    from newsml_pipeline.core.serving.predictor import InvalidRecordError, Predictor

    if args.text is not None and args.file is not None:
        raise CliError("give either a text argument or --file, not both")
    if args.title is not None and args.text is None:
        raise CliError(
            "--title goes with a text argument; in a --file or on stdin each record has its own title"
        )
    if args.text is not None:
        records: Iterable[Located] = [("input", {"title": args.title, "text": args.text})]
    elif args.file is not None:
        records = _file_records(Path(args.file))
    else:
        if sys.stdin.isatty():
            raise CliError("nothing to classify: give a text, --file, or JSONL on stdin")
        records = _stdin_records(sys.stdin)
    predictor = Predictor.from_settings(settings)
    size = args.batch_size or predictor.serving_cfg.batch_size
    done = 0
    for located in _batches(records, size):
        batch = [rec for _, rec in located]
        try:
            answers = predictor.predict(batch)
        except InvalidRecordError as e:
            where = "input" if e.index is None else f"record {done + e.index + 1} ({located[e.index][0]})"
            raise CliError(f"{where}: {e.reason}") from None
        for a in answers:
            out.write(json.dumps(a, ensure_ascii=False) + "\n")
        out.flush()
        done += len(batch)
    log.info("classified %d articles with model version %s", done, predictor.model_version)
    return 0


def _entity_service(settings: Settings):  # noqa: ANN202 - EntityService (imported lazily)
    from newsml_pipeline.core.entities.serving import EntityService

    cfg = settings.config.entities
    if cfg is None:
        raise CliError("the config has no `entities:` section (see newsml_pipeline/config/entities.yaml)")
    return EntityService.from_config(
        cfg, tracking_uri=settings.mlflow_tracking_uri(), cache_dir=settings.models_dir / "registry_cache"
    )


def cmd_entities(args: argparse.Namespace, settings: Settings, out: IO[str]) -> int:
    """JSONL {id?, text} on stdin or --file -> one JSONL line of entities per input."""
    from newsml_pipeline.core.entities.serving import InvalidEntityRecord

    if args.file is not None:
        records: Iterable[Located] = _file_records(Path(args.file))
    else:
        if sys.stdin.isatty():
            raise CliError("nothing to read: give --file or JSONL of {id?, text} on stdin")
        records = _stdin_records(sys.stdin)
    service = _entity_service(settings)
    done = 0
    for located in _batches(records, args.batch_size):
        batch = [rec for _, rec in located]
        try:
            answers = service.annotate(batch)
        except InvalidEntityRecord as e:
            reason = str(e).split(": ", 1)[1]
            raise CliError(f"record {done + e.index + 1} ({located[e.index][0]}): {reason}") from None
        for a in answers:
            out.write(json.dumps(a, ensure_ascii=False) + "\n")
        out.flush()
        done += len(batch)
    return 0


# ---------------------------------------------------------------- serve


def cmd_serve(args: argparse.Namespace, settings: Settings, out: IO[str]) -> int:
    import os

    from newsml_pipeline.core.serving.http import make_server
    from newsml_pipeline.core.serving.predictor import Predictor

    cfg = settings.config.serving
    token = os.environ.get(cfg.token_env) or None
    host = args.host or cfg.host
    predictor = Predictor.from_settings(settings)
    try:
        server = make_server(
            predictor, host=host, port=cfg.port if args.port is None else args.port, token=token
        )
    except PermissionError as e:
        raise CliError(str(e)) from None
    if settings.config.entities is not None:  # POST /entities beside /classify
        from newsml_pipeline.core.entities.serving import add_entities_route

        add_entities_route(
            server.app, _entity_service(settings), token=token, max_body_bytes=cfg.max_body_bytes
        )
    out.write(
        f"serving model version {predictor.model_version} on {server.url} "
        f"(POST /classify, GET /health, GET /metrics, docs at /docs"
        f"{'; bearer token required' if token else ''})\n"
    )
    out.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        out.write("stopped\n")
    finally:
        server.server_close()
    return 0


# ---------------------------------------------------------------- label


def cmd_label(args: argparse.Namespace, settings: Settings, out: IO[str]) -> int:
    from newsml_pipeline.core.labeling.access import TOKENS_ENV, tokens_from_env
    from newsml_pipeline.core.labeling.page import LabellingService, check_bind, serve

    try:
        tokens = tokens_from_env()
        check_bind(args.host, tokens)  # before anything opens: off loopback only with credentials
    except (ValueError, PermissionError) as e:
        raise CliError(str(e)) from None
    if tokens and args.user:
        raise CliError(f"--user: with {TOKENS_ENV} set, each labeller is the name their token signs in as")
    try:
        service = LabellingService.from_settings(settings, labeller=args.user)
    except ValueError as e:
        raise CliError(f"--user: {e}") from None
    entities = None
    if settings.config.entities is not None:  # the entity mode: span corrections at /entities
        from newsml_pipeline.core.labeling.entity_page import EntityLabellingService

        entities = EntityLabellingService.from_settings(settings, labeller=service.labeller)
    who = f"{len(tokens)} labellers ({TOKENS_ENV}, HTTP Basic)" if tokens else service.labeller
    out.write(
        f"labelling page for {who} on http://{args.host}:{args.port}/ (answers go to {service.store.path})\n"
    )
    if entities is not None:
        out.write(f"entity mode (span corrections) on http://{args.host}:{args.port}/entities\n")
    out.flush()
    try:
        serve(service, host=args.host, port=args.port, tokens=tokens, entities=entities)
    except KeyboardInterrupt:
        out.write("stopped\n")
    return 0


# ---------------------------------------------------------------- registry: rollback / status


def _client(settings: Settings):  # noqa: ANN202 - MlflowClient (lazy import: mlflow is slow to import)
    from newsml_pipeline.core.registry.tracking import store_client

    return store_client(settings.mlflow_tracking_uri())


def cmd_rollback(args: argparse.Namespace, settings: Settings, out: IO[str]) -> int:
    from newsml_pipeline.core.data.warehouse import Warehouse
    from newsml_pipeline.core.registry.aliases import RollbackError
    from newsml_pipeline.core.registry.deployments import rollback_champion

    name = settings.config.mlflow.registered_model
    try:
        restored, demoted, row = rollback_champion(
            _client(settings), registered_model=name, reason=args.reason, deployed_by=args.by
        )
    except RollbackError as e:
        raise CliError(str(e)) from None
    Warehouse(settings.warehouse_target).append("deployments", row)
    out.write(
        f"rolled back {name}: champion is now version {restored.version} "
        f"(was {demoted.version}; reason: {args.reason})\n"
    )
    out.write(_report_rollback(settings, restored.version, demoted.version, row, args.reason) + "\n")
    return 0


def _report_rollback(settings: Settings, restored: str, demoted: str, row: Any, reason: str) -> str:
    """Record the rollback in the Dagster instance (DAGSTER_HOME, else ./dagster.yaml's folder, as
    `newsml run`), so the UI's deployed_model shows the version the registry serves."""
    import os

    home = os.environ.get("DAGSTER_HOME") or (str(Path.cwd()) if Path("dagster.yaml").is_file() else None)
    if home is None:
        return "no Dagster instance here (DAGSTER_HOME unset): champion_alias_sensor will record it in the UI"
    import dagster as dg

    from newsml_pipeline.defs.champion import report_champion

    name = settings.config.mlflow.registered_model
    try:
        with dg.DagsterInstance.from_config(home) as instance:
            report_champion(
                instance,
                registered_model=name,
                version=restored,
                previous_version=demoted,
                action="rollback",
                by=f"newsml rollback ({row['deployed_by'][0]})",
                reason=reason,
            )
    except Exception as e:  # the registry already moved; the sensor records it later
        log.warning("rollback done, but recording it in the Dagster instance at %s failed: %s", home, e)
        return f"not recorded in the Dagster instance at {home} ({e}); champion_alias_sensor will record it"
    return f"recorded in the Dagster instance at {home}: deployed_model shows version {restored}"


def _age(iso: str | None) -> str:
    if not iso:
        return "unknown"
    seconds = (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def status_info(settings: Settings) -> dict[str, Any]:
    """Champion version, when/why it was deployed, its metrics, and the previous version."""
    from newsml_pipeline.core.registry import aliases

    client = _client(settings)
    name = settings.config.mlflow.registered_model
    champ = aliases.get_champion(client, name)
    prev = aliases.get_previous(client, name)
    info: dict[str, Any] = {
        "registered_model": name,
        "tracking_uri": settings.mlflow_tracking_uri(),
        "champion": None,
        "previous": None if prev is None else str(prev.version),
    }
    if champ is None:
        return info
    tags = champ.tags or {}
    metrics = json.loads(tags.get(aliases.TAG_METRICS, "{}"))
    if champ.run_id:
        run_metrics = client.get_run(champ.run_id).data.metrics
        metrics.update(
            {f"training_{k}": v for k, v in run_metrics.items() if k.startswith(("test_", "val_"))}
        )
    deployed_at = tags.get(aliases.TAG_DEPLOYED_AT)
    info["champion"] = {
        "version": str(champ.version),
        "run_id": champ.run_id,
        "deployed_at": deployed_at,
        "age": _age(deployed_at),
        "reason": tags.get(aliases.TAG_REASON),
        "evaluation": tags.get("newsml.evaluation", "gold"),
        "metrics": metrics,
    }
    from newsml_pipeline.core.serving.predictor import read_choice

    # What the last serving process on this NEWSML_HOME measured and chose for this version.
    info["champion"]["serving_precision"] = read_choice(
        settings.models_dir / "serving-cache", name, str(champ.version)
    )
    return info


def cmd_status(args: argparse.Namespace, settings: Settings, out: IO[str]) -> int:
    info = status_info(settings)
    if args.json:
        out.write(json.dumps(info, indent=2, default=str) + "\n")
        return 0
    out.write(f"registered model: {info['registered_model']}  ({info['tracking_uri']})\n")
    champ = info["champion"]
    if champ is None:
        out.write("champion: none deployed yet (predictions come from the auto-labeler)\n")
    else:
        out.write(
            f"champion: version {champ['version']}, deployed {champ['deployed_at']} ({champ['age']} ago)\n"
        )
        if champ["reason"]:
            out.write(f"  why: {champ['reason']}\n")
        out.write(
            f"  evaluated on: {champ['evaluation']} labels"
            + (
                " (silver: agreement with labelling rules, not people; see README)"
                if champ["evaluation"] == "silver"
                else ""
            )
            + "\n"
        )
        for k, v in sorted(champ["metrics"].items()):
            out.write(f"  {k}: {v:.4f}\n" if isinstance(v, int | float) else f"  {k}: {v}\n")
        sp = champ.get("serving_precision")
        if sp is None:
            out.write(
                "  serving precision: not chosen yet (no serving process has loaded this version here)\n"
            )
        else:
            out.write(
                f"  serving precision: {sp['precision']} on {sp['device']} "
                f"(host {sp['host']}, pid {sp['pid']}, {sp['at']}): {sp['reason']}\n"
            )
            for p, why in sorted(sp.get("not_used", {}).items()):
                out.write(f"    not {p}: {why}\n")
    out.write(f"previous: {info['previous'] or 'none'}\n")
    return 0


# ---------------------------------------------------------------- bench


def cmd_bench(args: argparse.Namespace, settings: Settings, out: IO[str]) -> int:
    bench_dir = Path(args.bench_dir) if args.bench_dir else REPO_ROOT / "bench"
    script = bench_dir / f"{args.name}.py"
    if not script.exists():
        found = sorted(p.stem for p in bench_dir.glob("*.py")) if bench_dir.is_dir() else []
        raise CliError(f"no benchmark {args.name!r} in {bench_dir}; available: {found or 'none'}")
    extra = [a for a in args.bench_args if a != "--"]
    return subprocess.call([sys.executable, str(script), *extra], cwd=str(bench_dir.parent))


# ---------------------------------------------------------------- main


def cmd_run(args: argparse.Namespace, settings: Settings, out: IO[str]) -> int:
    from newsml_pipeline.runner import RetrainInProgress, run_pipeline

    if args.date is not None:
        try:
            datetime.strptime(args.date, "%Y-%m-%d")
        except ValueError:
            raise CliError(f"--date {args.date!r}: expected YYYY-MM-DD") from None
    try:
        ok = run_pipeline(day=args.date, retrain=args.retrain, settings=settings, out=out)
    except RetrainInProgress as e:
        raise CliError(str(e)) from None
    return 0 if ok else EXIT_FAILED


def cmd_demo(args: argparse.Namespace, settings: Settings, out: IO[str]) -> int:
    from newsml_pipeline.newsroom.demo import MIN_DAYS, DemoError, DemoOptions, run_demo

    overrides = {}
    if args.config_overrides:
        import yaml

        path = Path(args.config_overrides)
        if not path.is_file():
            raise CliError(f"--config-overrides {path}: no such file")
        overrides = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(overrides, dict):
            raise CliError(f"--config-overrides {path}: expected a YAML mapping")
    opts = DemoOptions(
        days=args.days,
        change_day=args.change_day if args.change_day is not None else max(MIN_DAYS, args.days - 1),
        per_day=args.per_day,
        crawl_every=args.crawl_every,
        sensor_every=args.sensor_every,
        feed_size=args.feed_size,
        epochs=args.epochs,
        executor=args.executor,
        seed=args.seed,
        config_overrides=overrides,
    )
    # Progress lines: the demo's own logger at INFO on stderr. The pipeline's own logs go to the
    # run logs in the Dagster instance (dagster.yaml's managed loggers), not to this console.
    demo_log = logging.getLogger("newsml_pipeline.newsroom")
    if not demo_log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s demo: %(message)s", "%H:%M:%S"))
        demo_log.addHandler(handler)
    demo_log.setLevel(logging.INFO)
    pipeline_log = logging.getLogger("newsml_pipeline")
    quiet = not args.verbose
    try:
        with warnings.catch_warnings():
            if quiet:
                pipeline_log.propagate = False
                warnings.filterwarnings("ignore", message=".*is currently in beta")
            report = run_demo(opts, home=settings.home, out=out)
    except DemoError as e:
        raise CliError(str(e)) from None
    finally:
        pipeline_log.propagate = True
    return 0 if demo_succeeded(report) else EXIT_FAILED


def demo_succeeded(report: Any) -> bool:
    """True unless a run broke: a blocked gate and a skipped retrain are verdicts the demo shows.

    A blocked candidate's run succeeds (deployed_model is simply not materialized) and a retrain
    that cannot run yet is skipped by its schedule or sensor, so a failed run always means
    something broke; whether a model was deployed is the summary's news, not an error.
    """
    return not any(report.failed.values())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newsml", description="newsml_pipeline command line")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "demo",
        help="the living system over a bundled, simulated newsroom (offline): crawl, labels, train, "
        "gate, deploy, drift, retrain",
    )
    from newsml_pipeline.newsroom.demo import MIN_DAYS, DemoOptions

    d = DemoOptions()  # the defaults live in one place
    p.add_argument(
        "--days", type=int, default=d.days, help=f"simulated days (default {d.days}, at least {MIN_DAYS})"
    )
    p.add_argument(
        "--change-day",
        type=int,
        default=None,
        help=f"day the topic mix changes (default: days - 1, at least {MIN_DAYS})",
    )
    for name, what in (
        ("per_day", "stories published per simulated day"),
        ("crawl_every", "hours between crawls"),
        ("sensor_every", "hours between drift sensor ticks"),
        ("feed_size", "items each section feed lists"),
        ("epochs", "training epochs per retrain"),
    ):
        default = getattr(d, name)
        p.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=default, help=f"{what} (default {default})"
        )
    p.add_argument(
        "--executor",
        choices=["in_process", "multiprocess"],
        default="in_process",
        help="in_process (default): each run's steps in the demo's process; multiprocess: a process "
        "per step, as the daemon runs them (slower: each step imports torch)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated newsroom")
    # tests: a YAML mapping merged into the demo's config (e.g. a tiny base model)
    p.add_argument("--config-overrides", default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", help="materialize ingest_job for a day (and retrain_job with --retrain)")
    p.add_argument("--date", default=None, help="UTC partition YYYY-MM-DD (default: today)")
    p.add_argument("--retrain", action="store_true", help="then run retrain_job (splits → deployment)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("predict", help="classify articles with the serving champion (JSONL out)")
    p.add_argument("text", nargs="?", help="the text of one article (else --file or JSONL on stdin)")
    p.add_argument("--title", help="title of the article given as text (not with --file or stdin)")
    p.add_argument(
        "--file",
        help=".jsonl/.jsonl.gz/.ndjson/.csv/.parquet: one article per line or row ({title?, text, id?}); "
        "any other file is the text of one article",
    )
    p.add_argument(
        "--batch-size", type=int, default=None, help="articles per batch (default serving.batch_size)"
    )
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "serve", help="HTTP endpoint (FastAPI): GET /health, POST /classify, GET /metrics, /docs"
    )
    p.add_argument(
        "--host",
        default=None,
        help="bind address (default serving.host, 127.0.0.1); any other needs the bearer token "
        "in the env var named by serving.token_env (NEWSML_SERVING_TOKEN)",
    )
    p.add_argument("--port", type=int, default=None, help="port (default serving.port; 0 = any free)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("entities", help="named entities of JSONL {id?, text} (stdin or --file) -> JSONL")
    p.add_argument("--file", help=".jsonl/.jsonl.gz of {id?, text}, or a text file = one text")
    p.add_argument("--batch-size", type=int, default=64, help="texts per batch (default 64)")
    p.set_defaults(func=cmd_entities)

    p = sub.add_parser(
        "label", help="labelling page: the review queue one article at a time; /entities: span corrections"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="bind address (default 127.0.0.1; any other needs NEWSML_LABEL_TOKENS='name:token,...')",
    )
    p.add_argument("--port", type=int, default=8766, help="port (default 8766)")
    p.add_argument(
        "--user", default=None, help="who is labelling, without NEWSML_LABEL_TOKENS (default: the login name)"
    )
    p.set_defaults(func=cmd_label)

    p = sub.add_parser("rollback", help="move the champion alias back to the previous version")
    p.add_argument("--reason", default="manual rollback", help="why (recorded in the deployments table)")
    p.add_argument("--by", default=None, help="who (default: the current user)")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("status", help="champion version, its metrics and age, previous version")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("bench", help="run bench/<name>.py")
    p.add_argument("name", help="benchmark name, e.g. serve")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="options passed to the benchmark")
    p.add_argument("--bench-dir", default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None, *, out: IO[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    out = out or sys.stdout
    try:
        settings = Settings.from_env()
        return int(args.func(args, settings, out) or 0)
    except (CliError, ConfigError) as e:
        print(f"newsml: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `newsml predict ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
