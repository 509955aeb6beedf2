"""A re-executed `candidate_model` resumes the crashed run's checkpoints; other data starts afresh.

The real asset runs on a tiny random BERT over the toy split frame (3 epochs of 11 steps). The
first run crashes right after the epoch-2 checkpoint (a TrainerCallback raising in `on_save`, as
the core resume test does); Dagster's own re-execution from failure (a new run id, the same
splits and config) must find that checkpoint because the work dir is keyed on the training
fingerprint, not on the run id.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dagster as dg
import pytest

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.registry.tracking import store_client
from newsml_pipeline.core.training.fine_tune import training_fingerprint
from newsml_pipeline.definitions import build_resources
from newsml_pipeline.defs.training import candidate_model, split_rows_with_text
from newsml_pipeline.settings import Settings
from newsml_pipeline_tests.core.training.toy_data import TOY_LABELS, toy_frame
from testkit.tiny_models import make_tiny_classifier_dir

CRASH_STEP = 22  # the end of epoch 2 of 3 (84 train rows, batch 8 -> 11 steps per epoch)
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}  # the crash hook lives in this process


class Crash(RuntimeError):
    pass


def train_only_job() -> dg.JobDefinition:
    """candidate_model alone, over the settings of NEWSML_HOME / NEWSML_CONFIG (reconstructable)."""
    defs = dg.Definitions(
        assets=[candidate_model],
        jobs=[dg.define_asset_job("train_only", selection=["candidate_model"])],
        resources=build_resources(Settings.from_env()),
    )
    return defs.resolve_job_def("train_only")


def write_splits(settings: Settings, seed: int) -> None:
    """dataset_splits + raw_articles as the upstream assets leave them, from the toy frame."""
    frame = toy_frame(seed=seed)
    wh = Warehouse(settings.warehouse_path)
    wh.replace_table("raw_articles", frame.select("article_id", "title", "text").with_columns(url=None))
    wh.replace_table("dataset_splits", frame.select("article_id", "split", "label"))


def crash_after_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Trainer built from now on dies right after saving checkpoint-CRASH_STEP."""
    import transformers

    class CrashAfterSave(transformers.TrainerCallback):
        def on_save(self, args, state, control, **kw):  # noqa: ANN001
            if state.global_step >= CRASH_STEP:
                raise Crash("simulated crash after a checkpoint")

    class CrashingTrainer(transformers.Trainer):
        def __init__(self, *a, callbacks=None, **kw):  # noqa: ANN001, ANN002, ANN003
            super().__init__(*a, callbacks=[*(callbacks or []), CrashAfterSave()], **kw)

    monkeypatch.setattr(transformers, "Trainer", CrashingTrainer)


def mlflow_run(settings: Settings, result: dg.ExecutionResult):

    meta = result.asset_materializations_for_node("candidate_model")[0].metadata
    client = store_client(settings.mlflow_tracking_uri())
    run_id = meta["mlflow_run_id"].value
    history = json.loads(Path(client.download_artifacts(run_id, "history.json")).read_text())
    return client.get_run(run_id), history


@pytest.fixture
def settings(make_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    tiny = make_tiny_classifier_dir(tmp_path, TOY_LABELS)
    s = make_settings(
        labels={"categories": [{"name": n, "description": f"{n} news"} for n in TOY_LABELS]},
        training={
            "base_model": str(tiny),
            "epochs": 3,
            "batch_size": 8,
            "learning_rate": 1e-2,
            "max_length": 64,
            "early_stopping_patience": 0,
            "warmup_ratio": 0.0,
            "logging_steps": 5,
            "device": "cpu",
        },
    )
    monkeypatch.setenv("NEWSML_CONFIG", str(s.config_file))
    assert Settings.from_env() == s
    return s


def work_dir_for(settings: Settings) -> Path:
    frame = split_rows_with_text(Warehouse(settings.warehouse_path))
    cfg = settings.config
    return settings.models_dir / f"train-{training_fingerprint(frame, cfg.labels.names, cfg.training)}"


# slow (~1 min): the default set keeps resuming from a checkpoint (core/training/test_training.py::
# test_resume_from_checkpoint) and re-executing a run whose step died (defs/test_retries.py).
@pytest.mark.slow
def test_reexecution_resumes_and_other_data_starts_afresh(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    job = dg.reconstructable(train_only_job)
    (tmp_path / "dagster").mkdir()
    write_splits(settings, seed=0)
    work_dir = work_dir_for(settings)
    with (
        dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance,
        caplog.at_level(logging.INFO, logger="newsml_pipeline"),
    ):
        with monkeypatch.context() as m:
            crash_after_checkpoint(m)
            crashed = dg.execute_job(job, instance, run_config=IN_PROCESS, raise_on_error=False)
        assert not crashed.success
        (failure,) = [e for e in crashed.all_events if e.event_type_value == "STEP_FAILURE"]
        assert "simulated crash after a checkpoint" in str(failure.event_specific_data.error.to_string())
        left = list(settings.models_dir.glob(f"*/checkpoints/checkpoint-{CRASH_STEP}"))
        assert len(left) == 1  # the crash left its checkpoint behind

        caplog.clear()
        options = dg.ReexecutionOptions.from_failure(crashed.run_id, instance)
        with dg.execute_job(job, instance, run_config=IN_PROCESS, reexecution_options=options) as resumed:
            assert resumed.success
            assert resumed.run_id != crashed.run_id
            assert resumed.dagster_run.parent_run_id == crashed.run_id
            run, history = mlflow_run(settings, resumed)
        assert run.data.tags["resumed_from"] == str(left[0])  # the re-execution found it
        assert [h["epoch"] for h in history] == [3.0]  # only the epoch the crash left was trained
        assert run.data.metrics["epochs_run"] == 3.0
        assert f"resuming from checkpoint {left[0]}" in caplog.text
        assert run.data.tags["dagster_run_id"] == resumed.run_id
        assert left[0].parent.parent == work_dir  # keyed on the training fingerprint
        assert not (work_dir / "checkpoints").exists()

        # Crash the same training again, then train on other data: that is another training
        # (other fingerprint, other work dir); it starts from scratch and the stale checkpoints go.
        with monkeypatch.context() as m:
            crash_after_checkpoint(m)
            assert not dg.execute_job(job, instance, run_config=IN_PROCESS, raise_on_error=False).success
        assert (work_dir / "checkpoints" / f"checkpoint-{CRASH_STEP}").is_dir()
        write_splits(settings, seed=1)
        other_dir = work_dir_for(settings)
        assert other_dir != work_dir
        caplog.clear()
        with dg.execute_job(job, instance, run_config=IN_PROCESS) as fresh:
            assert fresh.success
            run, history = mlflow_run(settings, fresh)
        assert run.data.tags["resumed_from"] == ""
        assert "resuming from checkpoint" not in caplog.text
        assert [h["epoch"] for h in history] == [1.0, 2.0, 3.0]
        assert not (work_dir / "checkpoints").exists()  # the other training's stale checkpoints
        assert f"discarding checkpoints of another training's crashed run: {work_dir}" in caplog.text
        assert (work_dir / "model" / "model.safetensors").exists()  # a finished model is kept
        assert (other_dir / "model" / "model.safetensors").exists()
