"""deploy/k8s validates offline against a pinned Kubernetes, and its parts refer to each other and
to the code correctly: names, ports, mounted files, and commands the real CLIs accept."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from newsml_pipeline_tests.deploy.manifests import (
    K8S,
    K8S_VERSION,
    by_kind,
    cli_params,
    kustomization,
    pod_specs,
    rendered_documents,
)

DOCS = rendered_documents()


def _doc_id(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def test_kustomization_lists_files_that_exist() -> None:
    kust = kustomization()
    files = [*kust["resources"]]
    files += [e.split("=")[-1] for g in kust["configMapGenerator"] for e in g["files"]]
    missing = [f for f in files if not (K8S / f).is_file()]
    assert not missing, missing
    # Every manifest in the folder is applied (a forgotten file is a forgotten object).
    listed = set(kust["resources"]) | {"kustomization.yaml"} | {Path(f).name for f in files}
    assert {p.name for p in K8S.glob("*.yaml")} <= listed


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_document_validates_against_pinned_kubernetes(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_validation_catches_a_typo() -> None:
    deployment = copy.deepcopy(by_kind(DOCS, "Deployment")["mlflow"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["port"] = container.pop("ports")
    with pytest.raises(kubernetes_validate.ValidationError, match="port"):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_the_components_are_all_there() -> None:
    deployments = by_kind(DOCS, "Deployment")
    assert {"newsml-user-code", "dagster-webserver", "dagster-daemon", "mlflow"} <= set(deployments)
    assert deployments["dagster-daemon"]["spec"]["replicas"] == 1  # two daemons would double-launch
    assert {"newsml-user-code", "dagster-webserver", "mlflow"} <= set(by_kind(DOCS, "Service"))


def test_everything_referenced_exists() -> None:
    configmaps, secrets = by_kind(DOCS, "ConfigMap"), by_kind(DOCS, "Secret")
    claims, accounts = by_kind(DOCS, "PersistentVolumeClaim"), by_kind(DOCS, "ServiceAccount")
    for name, spec in pod_specs(DOCS):
        if "serviceAccountName" in spec:
            assert spec["serviceAccountName"] in accounts, name
        for vol in spec.get("volumes", []):
            if "configMap" in vol:
                assert vol["configMap"]["name"] in configmaps, (name, vol)
            if "persistentVolumeClaim" in vol:
                assert vol["persistentVolumeClaim"]["claimName"] in claims, (name, vol)
        volume_names = {v["name"] for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            assert {m["name"] for m in c.get("volumeMounts", [])} <= volume_names, name
            for src in c.get("envFrom", []):
                assert src["configMapRef"]["name"] in configmaps, name
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]]["stringData"], (name, ref)
            for m in c.get("volumeMounts", []):
                if "subPath" in m:
                    vol = next(v for v in spec["volumes"] if v["name"] == m["name"])
                    assert m["subPath"] in configmaps[vol["configMap"]["name"]]["data"], (name, m)


def test_run_launcher_config_names_objects_of_the_manifests() -> None:
    kust = kustomization()
    launcher = yaml.safe_load((K8S / "dagster.k8s.yaml").read_text())["run_launcher"]["config"]
    assert launcher["job_namespace"] == kust["namespace"]
    assert launcher["instance_config_map"] in by_kind(DOCS, "ConfigMap")
    assert launcher["service_account_name"] in by_kind(DOCS, "ServiceAccount")
    secret = by_kind(DOCS, "Secret")[launcher["postgres_password_secret"]]
    assert "postgresql-password" in secret["stringData"]  # the key K8sRunLauncher reads
    assert set(launcher["env_config_maps"]) <= set(by_kind(DOCS, "ConfigMap"))
    claims = {v["persistent_volume_claim"]["claim_name"] for v in launcher["volumes"]}
    assert claims <= set(by_kind(DOCS, "PersistentVolumeClaim"))
    # Run and step pods mount NEWSML_HOME where the settings say it is.
    env = by_kind(DOCS, "ConfigMap")["newsml-env"]["data"]
    assert env["NEWSML_HOME"] in {m["mount_path"] for m in launcher["volume_mounts"]}
    assert env["NEWSML_EXECUTOR"] == "k8s"
    # The launcher's RBAC lets it create Jobs and read pod logs.
    rules = by_kind(DOCS, "Role")[launcher["service_account_name"]]["rules"]
    assert any("jobs" in r["resources"] and "create" in r["verbs"] for r in rules)
    assert any("pods/log" in r["resources"] and "get" in r["verbs"] for r in rules)


def test_services_reach_their_pods() -> None:
    deployments = by_kind(DOCS, "Deployment")
    for name, svc in by_kind(DOCS, "Service").items():
        selector = svc["spec"]["selector"]
        targets = [
            d
            for d in deployments.values()
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(targets) == 1, name
        assert selector.items() <= targets[0]["spec"]["selector"]["matchLabels"].items()
        ports = [p for c in targets[0]["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])]
        for port in svc["spec"]["ports"]:
            assert any(port["targetPort"] in (p["containerPort"], p.get("name")) for p in ports), (name, port)


def _container(deployment: str) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = by_kind(DOCS, "Deployment")[deployment]["spec"]["template"]["spec"]
    return spec, spec["containers"][0]


def _local_file(spec: dict[str, Any], container: dict[str, Any], path: str) -> Path:
    """The repo file that a path inside the container is, through its ConfigMap volume mounts."""
    configmaps = by_kind(DOCS, "ConfigMap")
    kust = kustomization()
    sources = {
        g["name"]: {e.split("=")[0] if "=" in e else Path(e).name: e.split("=")[-1] for e in g["files"]}
        for g in kust["configMapGenerator"]
    }
    for mount in container.get("volumeMounts", []):
        rel = (
            PurePosixPath(path).relative_to(mount["mountPath"])
            if path.startswith(mount["mountPath"])
            else None
        )
        vol = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        if rel is None or "configMap" not in vol:
            continue
        key = mount.get("subPath") or str(rel)
        assert key in configmaps[vol["configMap"]["name"]]["data"], (path, mount)
        return K8S / sources[vol["configMap"]["name"]][key]
    raise AssertionError(f"{path} is not in any ConfigMap mounted into {container['name']}")


def _with_local_files(spec, container, argv: list[str], path_options: tuple[str, ...]) -> list[str]:
    out = list(argv)
    for i, arg in enumerate(argv[:-1]):
        if arg in path_options:
            out[i + 1] = str(_local_file(spec, container, argv[i + 1]))
    return out


def test_code_server_command_loads_the_project_module() -> None:
    spec, c = _container("newsml-user-code")
    params = cli_params([*c["command"], *c["args"]])
    assert importlib.util.find_spec(params["module_name"]) is not None
    assert params["module_name"] == "newsml_pipeline.definitions"
    assert params["port"] in {p["containerPort"] for p in c["ports"]}
    probe = cli_params(c["readinessProbe"]["exec"]["command"])
    assert probe["port"] == params["port"]
    # Runs are launched with the image the code server reports: it must be its own.
    current = next(e["value"] for e in c["env"] if e["name"] == "DAGSTER_CURRENT_IMAGE")
    assert current == c["image"]


@pytest.mark.parametrize("deployment", ["dagster-webserver", "dagster-daemon"])
def test_webserver_and_daemon_commands_find_their_workspace_and_instance(deployment: str) -> None:
    from dagster._core.workspace.config_schema import ensure_workspace_config

    spec, c = _container(deployment)
    argv = _with_local_files(spec, c, [*c["command"], *c["args"]], ("-w", "--workspace"))
    params = cli_params(argv)
    (workspace_file,) = params["workspace"]
    workspace = yaml.safe_load(Path(workspace_file).read_text())
    ensure_workspace_config(workspace, workspace_file)  # Dagster's own workspace.yaml schema
    (location,) = workspace["load_from"]
    grpc = location["grpc_server"]
    svc = by_kind(DOCS, "Service")[grpc["host"]]
    assert grpc["port"] in {p["port"] for p in svc["spec"]["ports"]}
    # DAGSTER_HOME holds the instance ConfigMap's dagster.yaml, which is deploy/k8s/dagster.k8s.yaml.
    home = next(e["value"] for e in c["env"] if e["name"] == "DAGSTER_HOME")
    assert _local_file(spec, c, f"{home}/dagster.yaml") == K8S / "dagster.k8s.yaml"
    if deployment == "dagster-daemon":
        cli_params(c["livenessProbe"]["exec"]["command"])


def test_mlflow_server_command_and_the_tracking_uri_it_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.server.security_utils import is_allowed_host_header

    _, c = _container("mlflow")
    backend = next(e for e in c["env"] if e["name"] == "MLFLOW_BACKEND_STORE_URI")
    secret = by_kind(DOCS, "Secret")[backend["valueFrom"]["secretKeyRef"]["name"]]
    uri = secret["stringData"][backend["valueFrom"]["secretKeyRef"]["key"]]
    assert urlsplit(uri).scheme == "postgresql"
    importlib.import_module("psycopg2")  # the server's Postgres driver is in the image (scale extra)
    monkeypatch.setenv("MLFLOW_BACKEND_STORE_URI", uri)
    params = cli_params([*c["command"], *c["args"]])
    assert params["serve_artifacts"] is True
    assert params["backend_store_uri"] == uri
    assert params["port"] in {p["containerPort"] for p in c["ports"]}
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert params["artifacts_destination"] in mounts  # artifacts on the PVC, not in the container
    # The pipeline's MLFLOW_TRACKING_URI must name a host the server lets in (and only ours).
    allowed = params["allowed_hosts"].split(",")
    tracking = urlsplit(by_kind(DOCS, "ConfigMap")["newsml-env"]["data"]["MLFLOW_TRACKING_URI"])
    assert tracking.hostname in by_kind(DOCS, "Service")
    assert tracking.port == params["port"]
    assert is_allowed_host_header(allowed, tracking.netloc)
    assert is_allowed_host_header(allowed, f"{tracking.hostname}.newsml.svc.cluster.local:{tracking.port}")
    assert not is_allowed_host_header(allowed, "attacker.example:5000")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_user_code_command_serves_the_location_the_workspace_names(
    tmp_path: Path, newsml_home: Path
) -> None:
    """The user-code container's command, started for real (host and port swapped for loopback),
    with the pod's settings: webserver-style workspace loading over gRPC finds the jobs and the
    GPU placement of candidate_model."""
    from dagster._core.instance import DagsterInstance
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._grpc.client import DagsterGrpcClient

    _, c = _container("newsml-user-code")
    port = _free_port()
    argv = [*c["command"], *c["args"]]
    argv[argv.index("-h") + 1], argv[argv.index("-p") + 1] = "127.0.0.1", str(port)
    pod_env = by_kind(DOCS, "ConfigMap")["newsml-env"]["data"]
    env = {
        **os.environ,
        "NEWSML_EXECUTOR": pod_env["NEWSML_EXECUTOR"],
        "HF_HUB_OFFLINE": pod_env["HF_HUB_OFFLINE"],
    }
    env["NEWSML_HOME"] = str(newsml_home)
    env.pop("DAGSTER_HOME", None)
    assert argv[0] == "dagster"
    log = tmp_path / "code-server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", *argv], env=env, cwd=tmp_path, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                DagsterGrpcClient(port=port, host="127.0.0.1").ping("ready")
                break
            except Exception:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(1)
        workspace = yaml.safe_load((K8S / "workspace.yaml").read_text())
        grpc = workspace["load_from"][0]["grpc_server"]
        grpc.update(host="127.0.0.1", port=port)
        ws_file = tmp_path / "workspace.yaml"
        ws_file.write_text(yaml.safe_dump(workspace))
        (tmp_path / "dagster_home").mkdir()
        with (
            DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance,
            WorkspaceProcessContext(instance, WorkspaceFileTarget([str(ws_file)])) as ctx,
        ):
            request = ctx.create_request_context()
            assert request.get_code_location_error(grpc["location_name"]) is None
            (repo,) = request.get_code_location(grpc["location_name"]).get_repositories().values()
            assert {"ingest_job", "retrain_job"} <= {j.name for j in repo.get_all_jobs()}
            snap = repo.get_full_job("retrain_job").job_snapshot
            ops = {op.name: op for op in snap.node_defs_snapshot.op_def_snaps}
            tag = json.loads(ops["candidate_model"].tags["dagster-k8s/config"])
            assert tag["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    finally:
        # This test is about serving the location. In two full-suite runs (not alone) the code
        # server outlived SIGTERM by 60 s; a pod gets SIGKILL after its grace period, so do the same.
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
