"""The production topology on one machine: every service a separate process, state on Postgres.

- Postgres (the tests' throwaway server): databases `dagster` (the instance, through the repo's
  deploy/dagster.postgres.yaml as is), `warehouse` (NEWSML_WAREHOUSE_URL) and `mlflow`;
- optionally `mlflow server` with the Postgres backend store and served artifts;
- `dagster code-server start` (the code location; run workers are its children),
  `dagster-webserver` and `dagster-daemon run` over a workspace.yaml that points at the code server.

Runs go in through the webserver's GraphQL API (as the UI's Launch button sends them) and wait
QUEUED until the daemon's run queue lets them go.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from newsml_pipeline_tests.conftest import REPO_ROOT
from testkit.postgres_server import SUPERUSER, PostgresServer

BIN = Path(sys.executable).parent
LOCATION = "newsml_pipeline"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Topology:
    """Start with `start()`, stop with `stop()`; `env` is what every service (and `newsml`) gets."""

    def __init__(
        self,
        root: Path,
        pg: PostgresServer,
        *,
        newsml_env: dict[str, str],
        mlflow: bool,
        pool_run_buffer: int | None = None,
    ) -> None:
        """pool_run_buffer: Dagster's `concurrency.pools.op_granularity_run_buffer` on top of the
        repo's yaml (default 0: the daemon keeps a run queued while its first step's pool is full)."""
        self.root = root
        self.pg = pg
        self.with_mlflow = mlflow
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.dagster_home = root / "dagster_home"
        self.dagster_home.mkdir()
        shutil.copy(REPO_ROOT / "deploy" / "dagster.postgres.yaml", self.dagster_home / "dagster.yaml")
        if pool_run_buffer is not None:
            instance_yaml = self.dagster_home / "dagster.yaml"
            cfg = yaml.safe_load(instance_yaml.read_text())
            cfg["concurrency"]["pools"]["op_granularity_run_buffer"] = pool_run_buffer
            instance_yaml.write_text(yaml.safe_dump(cfg))
        for db in ("dagster", "warehouse", "mlflow"):
            pg.create_database(db)
        self.code_port, self.web_port, self.mlflow_port = free_port(), free_port(), free_port()
        self.workspace = root / "workspace.yaml"
        self.workspace.write_text(
            f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {self.code_port}\n"
            f"      location_name: {LOCATION}\n"
        )
        self.env = {
            **os.environ,
            **newsml_env,
            "DAGSTER_HOME": str(self.dagster_home),
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(pg.port),
            "DAGSTER_PG_DB": "dagster",
            "DAGSTER_PG_USERNAME": SUPERUSER,
            "DAGSTER_PG_PASSWORD": "trust-auth-ignores-it",
            "NEWSML_WAREHOUSE_URL": pg.url("warehouse"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        if mlflow:
            self.env["MLFLOW_TRACKING_URI"] = self.mlflow_url
        else:
            self.env.pop("MLFLOW_TRACKING_URI", None)

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = self.root / f"{name}.log"
        self.logs[name] = log
        fh = open(log, "wb")  # noqa: SIM115 - closed with the process
        # own process group: stopping the service stops what it started (run workers)
        self.procs[name] = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=self.env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _wait_http(self, name: str, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited ({self.procs[name].returncode}):\n{self.tail(name)}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{name} did not answer {url} within {timeout}s:\n{self.tail(name)}")

    def start(self, timeout: float = 240, *, daemon: bool = True) -> Topology:
        """Start the services; with `daemon=False` runs submitted stay QUEUED until `start_daemon()`
        (so a test can queue several and have the daemon let them go in one tick)."""
        if self.with_mlflow:
            artifacts = self.root / "mlflow-artifacts"
            self._spawn(
                "mlflow",
                [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.mlflow_port),
                 "--backend-store-uri", self.pg.url("mlflow").replace("postgresql://", "postgresql+psycopg2://"),
                 "--serve-artifacts", "--artifacts-destination", str(artifacts), "--workers", "1"],
            )  # fmt: skip
        self._spawn(
            "code-server",
            [str(BIN / "dagster"), "code-server", "start", "-m", "newsml_pipeline.definitions",
             "-h", "127.0.0.1", "-p", str(self.code_port), "--location-name", LOCATION],
        )  # fmt: skip
        self._spawn(
            "webserver",
            [str(BIN / "dagster-webserver"), "-w", str(self.workspace), "-h", "127.0.0.1", "-p", str(self.web_port)],
        )  # fmt: skip
        if daemon:
            self.start_daemon()
        if self.with_mlflow:
            self._wait_http("mlflow", f"{self.mlflow_url}/health", timeout)
        self._wait_http("webserver", f"{self.web_url}/server_info", timeout)
        self._wait_location(timeout)
        return self

    def start_daemon(self) -> None:
        self._spawn("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(self.workspace)])

    def run_status(self, run_ids: list[str]) -> dict[str, str]:
        client = self.client()
        return {r: client.get_run_status(r).value for r in run_ids}

    def _wait_location(self, timeout: float) -> None:
        """Until the webserver has loaded the code location from the code server."""
        deadline = time.monotonic() + timeout
        q = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
        q += "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
        last = None
        while time.monotonic() < deadline:
            for name in ("code-server", "webserver"):
                if self.procs[name].poll() is not None:
                    raise RuntimeError(f"{name} exited:\n{self.tail(name)}")
            try:
                r = httpx.post(f"{self.web_url}/graphql", json={"query": q}, timeout=60).json()
            except httpx.HTTPError:  # a busy machine: the webserver answers late
                continue
            entries = r["data"]["workspaceOrError"]["locationEntries"]
            last = entries
            if entries and entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation":
                return
            if entries and entries[0]["locationOrLoadError"]["__typename"] == "PythonError":
                httpx.post(
                    f"{self.web_url}/graphql",
                    json={"query": f'mutation {{ reloadRepositoryLocation(repositoryLocationName: "{LOCATION}") {{ __typename }} }}'},
                    timeout=30,
                )  # fmt: skip
            time.sleep(1)
        raise TimeoutError(f"code location not loaded: {last}\n{self.tail('code-server')}")

    def client(self):  # -> DagsterGraphQLClient
        from dagster_graphql import DagsterGraphQLClient

        return DagsterGraphQLClient("127.0.0.1", port_number=self.web_port, timeout=60)

    def submit(self, job: str, *, partition: str | None = None, assets: list[str] | None = None) -> str:
        """Launch `job` (only `assets` of it, as the UI's Materialize selected does) for `partition`."""
        selector: dict = {
            "repositoryLocationName": LOCATION,
            "repositoryName": "__repository__",
            "jobName": job,
        }
        if assets:
            selector["assetSelection"] = [{"path": [a]} for a in assets]
        params = {
            "selector": selector,
            "runConfigData": {},
            "executionMetadata": {
                "tags": [{"key": "dagster/partition", "value": partition}] if partition else []
            },
        }
        mutation = (
            "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
            "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } "
            "... on RunConfigValidationInvalid { errors { message } } } }"
        )
        r = httpx.post(
            f"{self.web_url}/graphql", json={"query": mutation, "variables": {"p": params}}, timeout=120
        )
        out = r.json()["data"]["launchRun"]
        if out["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launching {job} {partition} failed: {out}")
        return out["run"]["runId"]

    def wait_runs(self, run_ids: list[str], timeout: float) -> dict[str, str]:
        """Poll until every run has finished; returns run id -> final status."""
        deadline = time.monotonic() + timeout
        final = {"SUCCESS", "FAILURE", "CANCELED"}
        status: dict[str, str] = {}
        while time.monotonic() < deadline:
            try:
                status = self.run_status(run_ids)
            except Exception as e:  # noqa: BLE001 - a busy webserver times out; ask again
                status = {"error": repr(e)}
                time.sleep(2)
                continue
            if all(s in final for s in status.values()):
                return status
            if self.procs["daemon"].poll() is not None:
                raise RuntimeError(f"the daemon exited:\n{self.tail('daemon')}")
            time.sleep(2)
        raise TimeoutError(f"runs not finished after {timeout}s: {status}\n{self.tail('daemon')}")

    def tail(self, name: str, n: int = 6000) -> str:
        log = self.logs.get(name)
        return log.read_text(errors="replace")[-n:] if log and log.exists() else ""

    def stop(self) -> None:
        for p in reversed(list(self.procs.values())):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
