"""One MLflow run per training with params, per-epoch metrics, artifacts and a registered pyfunc."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from newsml_pipeline.core.registry.model_logging import LoggedModel, train_and_log
from newsml_pipeline.core.registry.tracking import configure_mlflow, default_tracking_uri, store_client
from newsml_pipeline.core.training.inputs import format_input
from newsml_pipeline.core.training.model_io import load_classifier, predict_proba
from newsml_pipeline.settings import MlflowConfig
from newsml_pipeline_tests.core.training.test_training import tiny_cfg
from newsml_pipeline_tests.core.training.toy_data import TOY_LABELS, toy_frame
from testkit.tiny_models import make_tiny_classifier_dir

MODEL_NAME = "toy-topic-classifier"


@pytest.fixture(scope="module")
def mlflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def logged(mlflow_home: Path) -> LoggedModel:
    base = make_tiny_classifier_dir(mlflow_home, TOY_LABELS)
    return train_and_log(
        toy_frame(),
        labels=TOY_LABELS,
        training_cfg=tiny_cfg(base, epochs=3),
        mlflow_cfg=MlflowConfig(experiment="toy", registered_model=MODEL_NAME),
        tracking_uri=f"sqlite:///{mlflow_home / 'mlflow.db'}",
        artifact_root=mlflow_home / "mlartifacts",
        work_dir=mlflow_home / "work",
        tags={
            "dagster_run_id": "run-123",
            "partition_window": "2026-01-01..2026-03-31",
            "git_commit": "abc123",
        },
        data_window="2026-01-01..2026-03-31",
    )


def _client(home: Path):

    uri = f"sqlite:///{home / 'mlflow.db'}"
    return store_client(uri)


def test_run_has_params_metrics_tags_and_artifacts(logged: LoggedModel, mlflow_home: Path) -> None:
    client = _client(mlflow_home)
    run = client.get_run(logged.run_id)
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert p["lora_r"] == "16" and p["max_length"] == "64" and json.loads(p["labels"]) == TOY_LABELS
    assert p["n_train"] == "84" and p["n_test"] == "18"
    m = run.data.metrics
    assert 0 <= m["val_macro_f1"] <= 1 and 0 <= m["test_macro_f1"] <= 1
    assert m["samples_per_s"] > 0 and m["train_seconds"] > 0 and m["peak_memory_mb"] > 0
    assert "test_f1_sport" in m
    val_history = client.get_metric_history(logged.run_id, "epoch_val_macro_f1")
    assert sorted(h.step for h in val_history) == [1, 2, 3]
    assert m["val_macro_f1"] == pytest.approx(max(h.value for h in val_history))  # the best epoch is kept
    assert len(client.get_metric_history(logged.run_id, "epoch_train_loss")) == 3
    t = run.data.tags
    assert t["dagster_run_id"] == "run-123" and t["mlflow.source.git.commit"] == "abc123"
    assert t["partition_window"] == "2026-01-01..2026-03-31" and t["device"].startswith("cpu")
    names = {a.path for a in client.list_artifacts(logged.run_id)}
    assert {"README.md", "label_map.json", "history.json", "train_result.json"} <= names
    assert run.info.artifact_uri.startswith((mlflow_home / "mlartifacts").as_uri())
    assert logged.run_url_path == f"#/experiments/{logged.experiment_id}/runs/{logged.run_id}"


def test_model_is_registered_as_a_new_version_without_alias(logged: LoggedModel, mlflow_home: Path) -> None:
    client = _client(mlflow_home)
    mv = client.get_model_version(MODEL_NAME, logged.version)
    assert mv.run_id == logged.run_id
    assert logged.model_uri == f"models:/{MODEL_NAME}/{logged.version}"
    assert client.get_registered_model(MODEL_NAME).aliases == {}
    import mlflow

    info = mlflow.models.get_model_info(logged.logged_model_uri)
    assert info.run_id == logged.run_id and info.signature is not None
    # the default (serving.precision auto may pick ONNX): the export travels with the version
    assert (logged.train_result.model_dir / "onnx" / "model.int8.onnx").is_file()


def test_pyfunc_round_trips_through_the_registry(logged: LoggedModel, mlflow_home: Path) -> None:
    import mlflow

    configure_mlflow(f"sqlite:///{mlflow_home / 'mlflow.db'}", experiment="toy")
    pyfunc = mlflow.pyfunc.load_model(logged.model_uri)
    sig = pyfunc.metadata.get_input_schema()
    assert sig.input_names() == ["text", "title"]
    frame = toy_frame().filter(pl.col("split") == "test")
    df = pd.DataFrame({"title": frame["title"].to_list(), "text": frame["text"].to_list()})
    out = pyfunc.predict(df)
    assert list(out.columns) == ["label", "confidence", "scores"] and len(out) == len(df)
    assert set(out["label"]) <= set(TOY_LABELS)
    scores = [json.loads(s) for s in out["scores"]]
    assert all(set(s) == set(TOY_LABELS) for s in scores)
    # the registry copy predicts what the saved model directory predicts
    model, tok, labels = load_classifier(logged.train_result.model_dir)
    direct = predict_proba(
        model, tok, [format_input(t, x) for t, x in zip(df["title"], df["text"], strict=True)], max_length=64
    )
    assert out["label"].tolist() == [labels[i] for i in direct.argmax(1)]
    np.testing.assert_allclose(out["confidence"].to_numpy(), direct.max(1), atol=1e-3)
    # title is optional
    only_text = pyfunc.predict(pd.DataFrame({"text": ["match team player league"]}))
    assert len(only_text) == 1
    with pytest.raises(Exception, match="text"):
        pyfunc.predict(pd.DataFrame({"body": ["x"]}))


def test_default_tracking_uri_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert default_tracking_uri(tmp_path) == "http://mlflow.example:5000"


def test_failed_training_marks_the_run_failed(mlflow_home: Path, tmp_path: Path) -> None:
    from newsml_pipeline.core.training.inputs import DatasetError

    base = make_tiny_classifier_dir(tmp_path, TOY_LABELS)
    frame = toy_frame().filter(~((pl.col("label") == "tech") & (pl.col("split") == "train")))
    with pytest.raises(DatasetError):
        train_and_log(
            frame,
            labels=TOY_LABELS,
            training_cfg=tiny_cfg(base, epochs=1),
            mlflow_cfg=MlflowConfig(experiment="toy-failed", registered_model=MODEL_NAME),
            tracking_uri=f"sqlite:///{mlflow_home / 'mlflow.db'}",
            artifact_root=mlflow_home / "mlartifacts",
            work_dir=tmp_path / "work",
            tags={},
        )
    client = _client(mlflow_home)
    exp = client.get_experiment_by_name("toy-failed")
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_run_lists_the_three_splits_as_dataset_inputs(logged: LoggedModel, mlflow_home: Path) -> None:
    """MLflow's run page shows what the model was trained, early-stopped and scored on."""
    inputs = _client(mlflow_home).get_run(logged.run_id).inputs.dataset_inputs
    by_context = {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset for i in inputs}
    assert set(by_context) == {"train", "val", "test"}
    frame = toy_frame()
    for split, ds in by_context.items():
        assert ds.name == f"dataset_splits.{split}" and ds.digest
        assert json.loads(ds.profile)["num_rows"] == frame.filter(pl.col("split") == split).height
    assert len({ds.digest for ds in by_context.values()}) == 3
    assert logged.model_id and logged.logged_model_uri.endswith(logged.model_id)
