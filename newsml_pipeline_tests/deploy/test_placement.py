"""NEWSML_EXECUTOR picks the executor; each asset's dagster-k8s/config tag places its step pod."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import kubernetes_validate
import pytest
from dagster_k8s import k8s_job_executor
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import construct_dagster_k8s_job, get_user_defined_k8s_config
from dagster_k8s.launcher import K8sRunLauncher
from kubernetes.client import ApiClient

from newsml_pipeline.definitions import build_definitions
from newsml_pipeline.defs.placement import EXECUTOR_ENV, GPU_NODE_SELECTOR, K8S_CONFIG_TAG, executor_from_env
from newsml_pipeline.settings import DEFAULT_CONFIG_PATH, Settings
from newsml_pipeline_tests.deploy.manifests import K8S, K8S_VERSION, PG_ENV, load_instance

# The steps whose core code moves a model to CUDA when torch sees a GPU.
GPU_ASSETS = {"labeled_articles", "candidate_model", "model_evaluation", "scored_articles"}


def test_executor_is_chosen_by_env() -> None:
    assert executor_from_env({}) is None
    assert executor_from_env({EXECUTOR_ENV: "multiprocess"}) is None
    assert executor_from_env({EXECUTOR_ENV: " K8s "}) is k8s_job_executor
    with pytest.raises(ValueError, match="multiprocess, k8s"):
        executor_from_env({EXECUTOR_ENV: "kubernetes"})


@pytest.fixture
def defs_for(newsml_home: Path, monkeypatch: pytest.MonkeyPatch):
    def _build(executor: str | None) -> dg.Definitions:
        if executor is None:
            monkeypatch.delenv(EXECUTOR_ENV, raising=False)
        else:
            monkeypatch.setenv(EXECUTOR_ENV, executor)
        return build_definitions(Settings(home=newsml_home, config_file=DEFAULT_CONFIG_PATH))

    return _build


def test_default_executor_is_unchanged_and_k8s_is_opt_in(defs_for) -> None:
    default = defs_for(None)
    for job in ("ingest_job", "retrain_job"):
        assert default.resolve_job_def(job).executor_def is dg.multi_or_in_process_executor
    on_k8s = defs_for("k8s")
    for job in ("ingest_job", "retrain_job"):
        assert on_k8s.resolve_job_def(job).executor_def is k8s_job_executor
    # the one-step crawl runs in its run pod on Kubernetes as in its run process elsewhere
    assert on_k8s.resolve_job_def("crawl_job").executor_def is dg.in_process_executor


def _asset_tags(defs: dg.Definitions) -> dict[str, dict[str, str]]:
    """The tags of every op the two jobs run, asset checks included (each is a step of its own)."""
    tags = {}
    for job in ("ingest_job", "retrain_job"):
        for node_def in defs.resolve_job_def(job).all_node_defs:
            tags[node_def.name] = dict(node_def.tags)
    return tags


def test_every_step_tag_parses_as_dagster_k8s_config(defs_for) -> None:
    tags = _asset_tags(defs_for(None))
    assert GPU_ASSETS | {"raw_articles", "deployed_model", "model_evaluation_evaluation_gate"} <= set(tags)
    gpu_steps = set()
    for name, op_tags in tags.items():
        assert K8S_CONFIG_TAG in op_tags, f"{name} has no {K8S_CONFIG_TAG} tag"
        cfg = get_user_defined_k8s_config(op_tags)  # dagster-k8s' own parser: raises on a bad shape
        res = cfg.container_config["resources"]
        assert {"cpu", "memory"} <= set(res["requests"]), name
        assert "memory" in res["limits"], name
        if "nvidia.com/gpu" in res["limits"]:
            gpu_steps.add(name)
            assert res["limits"]["nvidia.com/gpu"] == res["requests"]["nvidia.com/gpu"] == "1"
            assert cfg.pod_spec_config["node_selector"] == GPU_NODE_SELECTOR
            assert any(t["key"] == "nvidia.com/gpu" for t in cfg.pod_spec_config["tolerations"])
        else:
            assert "node_selector" not in cfg.pod_spec_config, name
    assert gpu_steps == GPU_ASSETS


def test_a_misshapen_tag_is_rejected_by_the_parser() -> None:
    bad = {K8S_CONFIG_TAG: json.dumps({"container_configs": {"resources": {}}})}
    with pytest.raises(dg.DagsterInvalidConfigError):
        get_user_defined_k8s_config(bad)


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


@pytest.fixture
def run_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> K8sRunLauncher:
    """The K8sRunLauncher of deploy/k8s/dagster.k8s.yaml, built from its processed config; only
    the cluster credentials differ (a kubeconfig that is parsed, never contacted)."""
    for k, v in PG_ENV.items():
        monkeypatch.setenv(k, v)
    _, processed = load_instance(K8S / "dagster.k8s.yaml")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    cfg = {
        **processed["run_launcher_data"],
        "load_incluster_config": False,
        "kubeconfig_file": str(kubeconfig),
    }
    return K8sRunLauncher.from_config_value(None, cfg)


def _step_job(launcher: K8sRunLauncher, step_tags: dict[str, str], step: str) -> tuple[dict, str]:
    """The step Job that K8sStepHandler.launch_step would create for a step with these tags:
    launcher context (run tags excluded, as for steps), then the step's tag on top."""
    run = dg.DagsterRun(job_name="retrain_job", run_id="0f8a1c2e-1111-2222-3333-444455556666")
    context = K8sContainerContext.create_for_run(run, launcher, include_run_tags=False).merge(
        K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(step_tags))
    )
    job = construct_dagster_k8s_job(
        job_config=context.get_k8s_job_config("newsml-pipeline:0.1.0-cuda", launcher),
        args=["dagster", "api", "execute_step"],
        job_name=f"dagster-step-{step.replace('_', '-')}",
        pod_name=f"dagster-step-{step.replace('_', '-')}",
        component="step_worker",
        user_defined_k8s_config=context.run_k8s_config,
        labels={"dagster/op": step},
        env_vars=[{"name": "DAGSTER_RUN_STEP_KEY", "value": step}],
    )
    doc = {"apiVersion": "batch/v1", "kind": "Job", **ApiClient().sanitize_for_serialization(job)}
    return doc, context.namespace  # the Job is created in this namespace


def test_step_jobs_are_valid_kubernetes_and_gpu_steps_land_on_gpu_nodes(defs_for, run_launcher) -> None:
    for name, op_tags in _asset_tags(defs_for("k8s")).items():
        job, namespace = _step_job(run_launcher, op_tags, name)
        kubernetes_validate.validate(job, K8S_VERSION, strict=True)
        pod = job["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        limits = container["resources"]["limits"]
        if name in GPU_ASSETS:
            assert limits["nvidia.com/gpu"] == "1", name
            assert pod["nodeSelector"] == GPU_NODE_SELECTOR
            gpu_taint = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            assert gpu_taint in pod["tolerations"], name
        else:
            assert "nvidia.com/gpu" not in limits and "nodeSelector" not in pod, name
        # What every step needs from the launcher config: settings, Postgres password, NEWSML_HOME.
        assert {"configMapRef": {"name": "newsml-env"}} in container["envFrom"]
        pg = next(e for e in container["env"] if e["name"] == "DAGSTER_PG_PASSWORD")
        assert pg["valueFrom"]["secretKeyRef"] == {"name": "newsml-postgres", "key": "postgresql-password"}
        assert {"name": "newsml-home", "mountPath": "/var/newsml"} in container["volumeMounts"]
        assert pod["serviceAccountName"] == "newsml-dagster"
        assert namespace == "newsml"
