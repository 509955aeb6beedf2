"""Reading deploy/ the way its consumers do: kustomize's resource list, Dagster's instance loader, click.

Nothing here talks to a cluster or a database: the checks are offline, so CI runs them everywhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
# The oldest Kubernetes minor still in wide support when this was written; manifests must pass it.
K8S_VERSION = "1.31"

# Env values the instance configs read; any placeholder does, nothing connects.
PG_ENV = {
    "DAGSTER_PG_HOST": "db.example",
    "DAGSTER_PG_PORT": "6543",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "p@ss word",
}


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def _generated_configmaps(kust: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """ConfigMaps of configMapGenerator (`files: [key=path]` or `[path]`), as kustomize builds them."""
    assert kust.get("generatorOptions", {}).get("disableNameSuffixHash") is True
    for gen in kust.get("configMapGenerator", []):
        data = {}
        for entry in gen.get("files", []):
            key, _, path = entry.rpartition("=") if "=" in entry else (Path(entry).name, "", entry)
            data[key] = (K8S / path).read_text()
        yield {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data}


def rendered_documents() -> list[dict[str, Any]]:
    """Every object `kubectl apply -k deploy/k8s` would send, namespaced like kustomize does."""
    kust = kustomization()
    docs: list[dict[str, Any]] = []
    for rel in kust["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / rel).read_text()) if d]
    docs += list(_generated_configmaps(kust))
    for d in docs:
        if d["kind"] != "Namespace":
            d["metadata"]["namespace"] = kust["namespace"]
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]


def configurable_classes(ref: Any) -> dict[str, Any]:
    """The ConfigurableClassData fields of an InstanceRef (storage, launcher, compute logs...)."""
    from dagster._serdes.config_class import ConfigurableClassData

    return {name: value for name, value in ref._asdict().items() if isinstance(value, ConfigurableClassData)}


def validate_class_config(data: Any) -> Mapping[str, Any]:
    """What ConfigurableClassData.rehydrate checks, without building the object (no DB, no cluster):
    the class exists and the config passes its own `config_type()`."""
    from dagster._config import process_config, resolve_to_config_type
    from dagster._core.errors import DagsterInvalidConfigError

    klass = getattr(importlib.import_module(data.module_name), data.class_name)
    result = process_config(resolve_to_config_type(klass.config_type()), data.config_dict)
    if not result.success:
        raise DagsterInvalidConfigError(
            f"Errors whilst loading configuration for {data.module_name}.{data.class_name}.",
            result.errors,
            data.config_dict,
        )
    return result.value


def load_instance(path: Path) -> tuple[Any, dict[str, Mapping[str, Any]]]:
    """Load an instance yaml exactly as DAGSTER_HOME would (top-level schema, queue and pool checks),
    then every configurable class's own config schema. Returns the ref and the processed configs."""
    from dagster._core.instance.ref import InstanceRef

    ref = InstanceRef.from_dir(str(path.parent), config_filename=path.name)
    processed = {name: validate_class_config(data) for name, data in configurable_classes(ref).items()}
    return ref, processed


def cli_params(argv: list[str]) -> dict[str, Any]:
    """Parse a container command with the real CLI (click), without running it: unknown options,
    bad values and missing files fail here as they would in the pod."""
    from dagster._cli import cli as dagster_cli
    from dagster._daemon.cli import cli as daemon_cli
    from dagster_webserver.cli import cli as webserver_cli
    from mlflow.cli import cli as mlflow_cli

    roots = {"dagster": dagster_cli, "dagster-daemon": daemon_cli, "dagster-webserver": webserver_cli}
    roots["mlflow"] = mlflow_cli
    program, *rest = argv
    assert program in roots, f"no known CLI for {program!r}"
    cmd: click.Command = roots[program]
    path = [program]
    while isinstance(cmd, click.Group):
        name = rest.pop(0)
        sub = cmd.get_command(click.Context(cmd), name)
        assert sub is not None, f"{' '.join(path)} has no command {name!r}"
        cmd, path = sub, [*path, name]
    return cmd.make_context(" ".join(path), rest).params
