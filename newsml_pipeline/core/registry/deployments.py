"""One row per deployment or rollback, for the `deployments` warehouse table (audit trail).

The lead's asset writes the row with `Warehouse.upsert(..., key="deployment_id")` (or append);
this module only builds it, so the row's shape is tested without a warehouse.
"""

from __future__ import annotations

import getpass
import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from newsml_pipeline.core.evaluation.gate import GateDecision
from newsml_pipeline.core.registry.aliases import rollback, set_champion

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

DEPLOYMENTS: dict[str, pl.DataType] = {
    "deployment_id": pl.String(),
    "action": pl.String(),  # deploy / rollback
    "registered_model": pl.String(),
    "version": pl.String(),  # the version that serves after this action
    "previous_version": pl.String(),  # the version that served before (nullable)
    "deployed_at": pl.Datetime("us", "UTC"),
    "deployed_by": pl.String(),  # user, or "dagster:<run_id>"
    "reason": pl.String(),
    "metrics": pl.String(),  # JSON object name -> number (gate metrics at deployment)
    "training_run_id": pl.String(),  # nullable
    "evaluation_run_id": pl.String(),  # nullable
}


def deployment_record(
    *,
    action: Literal["deploy", "rollback"],
    registered_model: str,
    version: str | int,
    previous_version: str | int | None,
    reason: str,
    metrics: dict[str, float] | None = None,
    deployed_by: str | None = None,
    deployed_at: datetime | None = None,
    training_run_id: str | None = None,
    evaluation_run_id: str | None = None,
) -> pl.DataFrame:
    """A one-row frame with the DEPLOYMENTS columns: who/when/why, the version and its metrics."""
    if action not in ("deploy", "rollback"):
        raise ValueError(f"action must be 'deploy' or 'rollback', got {action!r}")
    if not reason.strip():
        raise ValueError("a deployment needs a reason (what made it happen)")
    when = deployed_at or datetime.now(UTC)
    if when.tzinfo is None:
        raise ValueError("deployed_at must be timezone-aware (UTC)")
    row = {
        "deployment_id": uuid.uuid4().hex,
        "action": action,
        "registered_model": registered_model,
        "version": str(version),
        "previous_version": None if previous_version is None else str(previous_version),
        "deployed_at": when.astimezone(UTC),
        "deployed_by": deployed_by or getpass.getuser(),
        "reason": reason,
        "metrics": json.dumps({k: float(v) for k, v in (metrics or {}).items()}, sort_keys=True),
        "training_run_id": training_run_id,
        "evaluation_run_id": evaluation_run_id,
    }
    return pl.DataFrame([row], schema=DEPLOYMENTS)


class GateNotPassedError(RuntimeError):
    """Deployment was asked for a candidate whose gate failed; the message carries the reasons."""


def deploy_candidate(
    client: Any,
    *,
    registered_model: str,
    version: str | int,
    decision: GateDecision,
    metrics: dict[str, float] | None = None,
    deployed_by: str | None = None,
    training_run_id: str | None = None,
    evaluation_run_id: str | None = None,
) -> pl.DataFrame:
    """Make a gated candidate the champion and return its deployment row.

    Refuses (GateNotPassedError, aliases untouched) when the gate failed: the blocking asset
    check should already stop the run, this keeps any other caller from bypassing the rule.
    """
    if not decision.passed:
        raise GateNotPassedError(
            f"{registered_model} version {version} did not pass the gate: " + "; ".join(decision.reasons)
        )
    reason = "; ".join(decision.reasons)
    new, previous = set_champion(client, registered_model, version, reason=reason, metrics=metrics)
    return deployment_record(
        action="deploy",
        registered_model=registered_model,
        version=new.version,
        previous_version=None if previous is None else previous.version,
        reason=reason,
        metrics=metrics,
        deployed_by=deployed_by,
        training_run_id=training_run_id,
        evaluation_run_id=evaluation_run_id,
    )


def rollback_champion(
    client: Any, *, registered_model: str, reason: str = "manual rollback", deployed_by: str | None = None
) -> tuple[ModelVersion, ModelVersion, pl.DataFrame]:
    """`rollback` plus its deployment row: (restored, demoted, row)."""
    restored, demoted = rollback(client, registered_model, reason=reason)
    row = deployment_record(
        action="rollback",
        registered_model=registered_model,
        version=restored.version,
        previous_version=demoted.version,
        reason=reason,
        deployed_by=deployed_by,
        training_run_id=restored.run_id,
    )
    return restored, demoted, row
