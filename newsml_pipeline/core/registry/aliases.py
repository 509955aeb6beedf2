"""Champion / previous aliases in the MLflow model registry: deploy, roll back, look up.

Serving always loads `models:/<name>@champion`. Deploying moves `champion` to the new version and
`previous` to the version it replaced. Each deployed version is tagged with the version it
replaced (`newsml.replaced_version`), so rolling back twice walks further back in history
instead of bouncing back to the bad model.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mlflow costs ~1 s to import: loaded by the functions that talk to the registry
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

CHAMPION = "champion"
PREVIOUS = "previous"
TAG_REPLACED = "newsml.replaced_version"
TAG_DEPLOYED_AT = "newsml.deployed_at"
TAG_REASON = "newsml.deploy_reason"
TAG_METRICS = "newsml.deploy_metrics"
TAG_ROLLED_BACK_AT = "newsml.rolled_back_at"


class RollbackError(RuntimeError):
    """There is nothing to roll back to (no champion or no `previous` alias)."""


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def get_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version an alias points at, or None when the alias (or the registered model) is absent."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as e:
        # Missing model -> RESOURCE_DOES_NOT_EXIST; missing alias -> INVALID_PARAMETER_VALUE "... not found".
        if e.error_code == "RESOURCE_DOES_NOT_EXIST" or (
            e.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(e)
        ):
            return None
        raise


def get_champion(client: MlflowClient, name: str) -> ModelVersion | None:
    """The serving version (alias `champion`), or None before the first deployment."""
    return get_alias(client, name, CHAMPION)


def get_previous(client: MlflowClient, name: str) -> ModelVersion | None:
    return get_alias(client, name, PREVIOUS)


def set_champion(
    client: MlflowClient,
    name: str,
    version: str | int,
    *,
    reason: str,
    metrics: dict[str, float] | None = None,
) -> tuple[ModelVersion, ModelVersion | None]:
    """Make `version` the champion; the former champion becomes `previous`.

    Returns (new champion, former champion or None). Setting the version that already serves is
    a no-op for the aliases (returns (it, None)) so a retried deployment cannot lose `previous`.
    """
    version = str(version)
    new = client.get_model_version(name, version)  # raises with MLflow's message if it does not exist
    current = get_champion(client, name)
    if current is not None and str(current.version) == version:
        log.info("%s version %s is already the champion; aliases unchanged", name, version)
        return new, None
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS, current.version)
        client.set_model_version_tag(name, version, TAG_REPLACED, str(current.version))
    client.set_model_version_tag(name, version, TAG_DEPLOYED_AT, _now_iso())
    client.set_model_version_tag(name, version, TAG_REASON, reason[:5000])
    if metrics:
        client.set_model_version_tag(name, version, TAG_METRICS, json.dumps(metrics, sort_keys=True))
    client.set_registered_model_alias(name, CHAMPION, version)
    log.info(
        "%s: champion -> version %s (was %s): %s",
        name,
        version,
        None if current is None else current.version,
        reason,
    )
    return client.get_model_version(name, version), current


def rollback(
    client: MlflowClient, name: str, *, reason: str = "manual rollback"
) -> tuple[ModelVersion, ModelVersion]:
    """Move `champion` back to `previous`. Returns (restored, demoted).

    `previous` then points at the version the restored one had replaced (if any), so a second
    rollback goes one step further back; with no such version the alias is removed.
    """
    from mlflow.exceptions import MlflowException

    demoted = get_champion(client, name)
    if demoted is None:
        raise RollbackError(f"registered model {name!r} has no '{CHAMPION}' alias: nothing to roll back")
    restored = get_previous(client, name)
    if restored is None:
        raise RollbackError(
            f"registered model {name!r} has no '{PREVIOUS}' alias: champion is version "
            f"{demoted.version} and there is no earlier deployment to roll back to"
        )
    client.set_registered_model_alias(name, CHAMPION, restored.version)
    client.set_model_version_tag(name, demoted.version, TAG_ROLLED_BACK_AT, _now_iso())
    client.set_model_version_tag(name, restored.version, TAG_DEPLOYED_AT, _now_iso())
    client.set_model_version_tag(
        name, restored.version, TAG_REASON, f"rollback from {demoted.version}: {reason}"
    )
    older = (restored.tags or {}).get(TAG_REPLACED)
    older_mv = None
    if older and older != str(demoted.version):
        try:
            older_mv = client.get_model_version(name, older)
        except MlflowException:
            log.warning(
                "%s: version %s recorded as replaced by %s no longer exists", name, older, restored.version
            )
    if older_mv is not None:
        client.set_registered_model_alias(name, PREVIOUS, older_mv.version)
    else:
        client.delete_registered_model_alias(name, PREVIOUS)
    log.info("%s: rolled back champion %s -> %s (%s)", name, demoted.version, restored.version, reason)
    return client.get_model_version(name, restored.version), demoted
