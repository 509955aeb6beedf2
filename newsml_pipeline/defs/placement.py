"""Where each step runs: the executor chosen by NEWSML_EXECUTOR, and each asset's Kubernetes pod size.

The default (unset or `multiprocess`) leaves Dagster's own default executor: every step a subprocess
on the machine of the run, as on a laptop. `NEWSML_EXECUTOR=k8s` runs each step as its own Kubernetes
Job through `dagster_k8s.k8s_job_executor` (the `scale` extra), so the steps that put a model on CUDA
land on a GPU node and the rest on ordinary nodes. The `dagster-k8s/config` op tags below say which:
other executors ignore them, so they cost nothing off Kubernetes.

Concurrency pools (`model_step_pool`): where the deployment has GPUs, every step that puts a model
on CUDA shares the one-slot `gpu` pool, so two models never fight for one device. On a CPU-only
machine that pool would only make a day's labelling and scoring wait behind a training, so there
only the training keeps a pool of its own (`training`: two trainings never share a checkpoint
dir) and the other model steps have none. Whether there are GPUs is decided when the definitions
load, without importing torch: `NEWSML_GPU` (`yes` / `no`, default `auto`: yes under
`NEWSML_EXECUTOR=k8s`, whose GPU steps each get a GPU node, or where an NVIDIA driver is visible).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

EXECUTOR_ENV = "NEWSML_EXECUTOR"
EXECUTORS = ("multiprocess", "k8s")

K8S_CONFIG_TAG = "dagster-k8s/config"

GPU_ENV = "NEWSML_GPU"
GPU_POOL = "gpu"
# The pool a model step keeps on a CPU-only machine (none for steps not listed).
CPU_POOLS = {"candidate_model": "training"}
_YES = ("1", "true", "yes", "on")
_NO = ("0", "false", "no", "off")

# Nodes of a GPU pool carry this label (NVIDIA GPU feature discovery / the GPU operator set it) and
# usually a `nvidia.com/gpu` NoSchedule taint that keeps CPU work off them; GPU steps tolerate it.
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def _k8s_tags(
    *,
    cpu: str,
    memory: str,
    memory_limit: str,
    gpus: int = 0,
) -> dict[str, Any]:
    """One `dagster-k8s/config` op tag: container resources (and GPU placement when gpus > 0)."""
    requests: dict[str, Any] = {"cpu": cpu, "memory": memory}
    limits: dict[str, Any] = {"memory": memory_limit}
    config: dict[str, Any] = {}
    if gpus:
        # Kubernetes schedules extended resources by their limit; requests must equal it if given.
        requests["nvidia.com/gpu"] = str(gpus)
        limits["nvidia.com/gpu"] = str(gpus)
        config["pod_spec_config"] = {
            "node_selector": dict(GPU_NODE_SELECTOR),
            "tolerations": [dict(t) for t in GPU_TOLERATIONS],
        }
    config["container_config"] = {"resources": {"requests": requests, "limits": limits}}
    return {K8S_CONFIG_TAG: config}


# Sized for ~100k articles a day with splits.window_days: 14 (~1.4M articles, ~3 GB of text: the
# BBC corpus averages 2,262 characters of title + text); the default 90-day window holds ~6x that and needs the
# memory of GPU_STEP and WINDOW_STEP raised accordingly, or a shorter window.
#
# Training, evaluation, scoring and labelling load MiniLM on CUDA when torch sees a GPU
# (core/training/device.py, core/training/model_io.py, core/labeling/nlp_cache.py): one GPU each.
# Training and evaluation read the whole window's text beside the model.
GPU_STEP = _k8s_tags(cpu="4", memory="16Gi", memory_limit="24Gi", gpus=1)
# dataset_splits: the whole window in polars plus the cross-fitted TF-IDF label-issue model.
WINDOW_STEP = _k8s_tags(cpu="4", memory="16Gi", memory_limit="24Gi")
# raw_articles: fetching is network-bound (per-host politeness), extraction CPU-bound.
CRAWL_STEP = _k8s_tags(cpu="4", memory="4Gi", memory_limit="8Gi")
# Small table rebuilds, registry calls and the gate (label_feedback, deployed_model, evaluation_gate).
LIGHT_STEP = _k8s_tags(cpu="500m", memory="1Gi", memory_limit="2Gi")


def executor_from_env(environ: Mapping[str, str] | None = None) -> dg.ExecutorDefinition | None:
    """The executor for every job: None keeps Dagster's default (multiprocess), `k8s` one Job per step."""
    env = os.environ if environ is None else environ
    name = (env.get(EXECUTOR_ENV) or "multiprocess").strip().lower()
    if name == "multiprocess":
        return None
    if name == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError as e:  # the scale extra is not installed
            raise ImportError(
                f"{EXECUTOR_ENV}=k8s needs dagster-k8s: pip install 'newsml_pipeline[scale]'"
            ) from e
        return k8s_job_executor
    raise ValueError(f"{EXECUTOR_ENV}={env.get(EXECUTOR_ENV)!r} is not one of {', '.join(EXECUTORS)}")


def nvidia_driver_visible() -> bool:
    """An NVIDIA driver on this machine (its CLI, or a GPU under /proc), and CUDA not hidden."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return shutil.which("nvidia-smi") is not None or (gpus.is_dir() and any(gpus.iterdir()))


def deployment_has_gpus(
    environ: Mapping[str, str] | None = None, *, driver_visible: Callable[[], bool] = nvidia_driver_visible
) -> bool:
    """NEWSML_GPU yes/no, else (auto) the k8s executor or a visible NVIDIA driver; never imports torch."""
    env = os.environ if environ is None else environ
    value = (env.get(GPU_ENV) or "auto").strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    if value != "auto":
        raise ValueError(f"{GPU_ENV}={env.get(GPU_ENV)!r} is not one of auto, yes, no")
    if (env.get(EXECUTOR_ENV) or "").strip().lower() == "k8s":
        return True
    return driver_visible()


def model_step_pool(
    step: str,
    environ: Mapping[str, str] | None = None,
    *,
    driver_visible: Callable[[], bool] = nvidia_driver_visible,
) -> str | None:
    """The concurrency pool of a step that puts a model on CUDA when torch sees one (module docstring)."""
    if deployment_has_gpus(environ, driver_visible=driver_visible):
        return GPU_POOL
    return CPU_POOLS.get(step)
