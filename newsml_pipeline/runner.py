"""`newsml run`: execute the pipeline's jobs once from a shell, recorded in the Dagster instance.

The runs go into the instance of `newsml_pipeline.instance` (DAGSTER_HOME, else the repo's
dagster.yaml when it is in the working directory, else `$NEWSML_HOME/dagster`), so they appear in
`dagster dev` exactly like scheduled runs. `--retrain` runs in this process, past the instance's
run queue, so it refuses to start while a retrain_job run is queued or running there.
"""

import logging
import os
import sys
from datetime import UTC, datetime
from typing import IO

import dagster as dg

from newsml_pipeline.definitions import build_definitions
from newsml_pipeline.instance import open_instance, retrains_in_progress
from newsml_pipeline.settings import Settings

log = logging.getLogger(__name__)


class RetrainInProgress(RuntimeError):
    """`newsml run --retrain` found another retrain_job run queued or running in the instance."""


def _summarise(result: dg.ExecuteInProcessResult) -> list[str]:
    lines = []
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            rows = mat.metadata.get("dagster/row_count")
            n = f"{rows.value} rows" if rows is not None else ""
            lines.append(
                f"  materialized {mat.asset_key.to_user_string()} {mat.partition or ''} {n}".rstrip()
            )
            errors = mat.metadata.get("source_errors")
            if errors is not None and errors.value:
                lines.append(
                    f"    {errors.value} source error(s): see the asset's `sources` metadata in the UI"
                )
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            ev = event.event_specific_data
            status = "passed" if ev.passed else "FAILED"
            lines.append(f"  check {ev.asset_key.to_user_string()}:{ev.check_name} {status}")
        elif event.event_type_value == "STEP_FAILURE":
            lines.append(f"  step {event.step_key} FAILED: {event.event_specific_data.error.message.strip()}")
    return lines


def run_pipeline(
    *,
    day: str | None = None,
    retrain: bool = False,
    settings: Settings | None = None,
    out: IO[str] | None = None,
) -> bool:
    """Run ingest_job for `day` (UTC today by default), then retrain_job if asked, then the same
    for the entity task when the config has an `entities:` section. True = all ok."""
    out = out or sys.stdout
    day = day or datetime.now(UTC).date().isoformat()
    settings = settings or Settings.from_env()
    instance = open_instance(settings.home)
    if retrain:
        busy = retrains_in_progress(instance)
        if busy:
            raise RetrainInProgress(
                f"a retrain_job run is already queued or running in the Dagster instance at "
                f"{os.environ['DAGSTER_HOME']} (run {', '.join(busy)}); retrains never overlap: wait "
                "for it to finish (see `dagster dev`) and run `newsml run --retrain` again"
            )
    defs = build_definitions(settings)
    ok = True
    jobs = [("ingest_job", day)] + ([("retrain_job", None)] if retrain else [])
    if (settings or Settings.from_env()).config.entities is not None:  # the entity task rides along
        jobs += [("entity_ingest_job", day)] + ([("entity_retrain_job", None)] if retrain else [])
    for name, partition in jobs:
        print(f"running {name}" + (f" for partition {partition}" if partition else ""), file=out, flush=True)
        result = defs.resolve_job_def(name).execute_in_process(
            partition_key=partition, instance=instance, raise_on_error=False
        )
        for line in _summarise(result):
            print(line, file=out)
        print(
            f"{name}: {'success' if result.success else 'FAILURE'} (run id {result.run_id})",
            file=out,
            flush=True,
        )
        ok = ok and result.success
        if not result.success:
            break
    return ok
