"""`deployed_model`: move the MLflow alias `champion` to a candidate that passed the gate.

The gate decision travels in model_evaluation's value (the same one `evaluation_gate` reports):
when it failed, deployed_model yields no output (`output_required=False`), so the asset is not
materialized, the run succeeds, and an AssetObservation on deployed_model records the verdict and
its reasons. defs/evaluation.py says why a blocked gate does not fail the run.
"""

import getpass
import logging
from collections.abc import Iterator
from datetime import timedelta

import dagster as dg

from newsml_pipeline.core.evaluation.gate import GateDecision
from newsml_pipeline.core.registry.deployments import deploy_candidate
from newsml_pipeline.defs.placement import LIGHT_STEP
from newsml_pipeline.defs.resources import MlflowResource, WarehouseResource
from newsml_pipeline.defs.retries import TRANSIENT_RETRY, retry_transient_only

log = logging.getLogger(__name__)

DEPLOYMENTS_TABLE = "deployments"


@dg.asset(
    group_name="deployment",
    kinds={"mlflow"},
    op_tags=LIGHT_STEP,
    # Not materialized when the gate blocked the candidate: a verdict, the run still succeeds.
    output_required=False,
    retry_policy=TRANSIENT_RETRY,  # network / shared-service faults (defs/retries.py)
    # Retrained weekly (and on drift); a champion older than two weeks means retrains keep failing.
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=timedelta(days=15), warn_window=timedelta(days=8)
    ),
    description=(
        "The model version that serves now: registry alias `champion` on the candidate's version (the "
        "former champion becomes `previous`) when evaluation_gate passed; every deployment "
        "is recorded in the deployments table; a blocked candidate leaves it unmaterialized (the run succeeds, "
        "an observation says why). `newsml rollback` moves the alias back."
    ),
)
@retry_transient_only
def deployed_model(
    context: dg.AssetExecutionContext,
    mlflow: MlflowResource,
    warehouse: WarehouseResource,
    model_evaluation: dict,
) -> Iterator[dg.Output[dict]]:
    candidate = model_evaluation["candidate"]
    gate = model_evaluation["gate"]
    if not gate["passed"]:
        reasons = list(gate["reasons"])
        context.log.info(
            "gate blocked candidate version %s: not deployed (%s)", candidate["version"], "; ".join(reasons)
        )
        context.log_event(
            dg.AssetObservation(
                asset_key=context.asset_key,
                metadata={
                    "verdict": "blocked: not deployed",
                    "candidate_version": str(candidate["version"]),
                    "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in reasons)),
                },
            )
        )
        return
    decision = GateDecision(
        passed=bool(gate["passed"]),
        reasons=list(gate["reasons"]),
        checks=dict(gate.get("checks", {})),
        intervals=dict(gate.get("intervals", {})),
    )
    cand_scores = model_evaluation["scores"]["candidate"]
    metrics = {k: float(cand_scores[k]) for k in ("accuracy", "macro_f1") if k in cand_scores}
    row = deploy_candidate(
        mlflow.client(),
        registered_model=candidate["registered_model"],
        version=candidate["version"],
        decision=decision,
        metrics=metrics,
        deployed_by=f"dagster run {context.run_id} ({getpass.getuser()})",
        training_run_id=candidate["run_id"],
        evaluation_run_id=model_evaluation.get("evaluation_run_id"),
    )
    warehouse.get().append(DEPLOYMENTS_TABLE, row)
    rec = row.to_dicts()[0]
    context.log.info("champion is now %s version %s", candidate["registered_model"], candidate["version"])
    yield dg.Output(
        {"registered_model": candidate["registered_model"], "version": str(candidate["version"]), **metrics},
        metadata={
            "champion_version": str(candidate["version"]),
            "previous_version": str(rec.get("previous_version") or "none"),
            "model_uri": f"models:/{candidate['registered_model']}@champion",
            "mlflow_model_version": dg.MetadataValue.url(mlflow.model_version_url(candidate["version"])),
            "reason": rec.get("reason", ""),
            **{k: dg.MetadataValue.float(v) for k, v in metrics.items()},
        },
    )
