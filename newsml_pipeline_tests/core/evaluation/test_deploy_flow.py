"""End to end on tiny models: train good and shuffled-label candidates, evaluate, gate, deploy,
block, roll back, log the evaluation run, and round-trip the champion pyfunc through MLflow."""

from __future__ import annotations

import random
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import polars as pl
import pytest

from newsml_pipeline.core.evaluation.predictions import ModelPredictions, predict_model_dir
from newsml_pipeline.core.evaluation.report import TAG_TRAINING_RUN, evaluate_models, log_evaluation_run
from newsml_pipeline.core.registry.aliases import get_champion, get_previous
from newsml_pipeline.core.registry.deployments import GateNotPassedError, deploy_candidate, rollback_champion
from newsml_pipeline.core.registry.model_logging import log_pyfunc_model
from newsml_pipeline.core.registry.tracking import configure_mlflow, store_client
from newsml_pipeline.core.serving.predictor import ChampionResolver, Predictor
from newsml_pipeline.core.training.fine_tune import train_classifier
from newsml_pipeline.settings import GateConfig, LabelsConfig, ServingConfig, TrainingConfig
from newsml_pipeline_tests.core.training.toy_data import TOY_LABELS, toy_frame
from testkit.tiny_models import make_tiny_classifier_dir

NAME = "toy-topics"
GATE = GateConfig(min_test_rows=50, bootstrap_samples=200, seed=3)


def _cfg(base: Path, epochs: int) -> TrainingConfig:
    return TrainingConfig(
        base_model=str(base),
        epochs=epochs,
        batch_size=8,
        learning_rate=2e-2,
        max_length=64,
        early_stopping_patience=0,
        logging_steps=50,
        warmup_ratio=0.0,
        device="cpu",
    )


def _shuffled(frame: pl.DataFrame) -> pl.DataFrame:
    labels = frame["label"].to_list()
    random.Random(5).shuffle(labels)
    return frame.with_columns(pl.Series("label", labels))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("flow")
    base = make_tiny_classifier_dir(root, TOY_LABELS)
    good = train_classifier(
        toy_frame(), labels=TOY_LABELS, training_cfg=_cfg(base, 8), output_dir=root / "good"
    )
    bad = train_classifier(
        _shuffled(toy_frame()), labels=TOY_LABELS, training_cfg=_cfg(base, 2), output_dir=root / "bad"
    )
    uri = f"sqlite:///{root / 'mlflow.db'}"
    configure_mlflow(uri, experiment="flow", artifact_root=root / "artifacts")
    runs, versions = {}, {}
    model_ids = {}
    for key, result in (("good", good), ("bad", bad), ("good2", good)):
        with mlflow.start_run() as run:
            # one export is what the precision tests read; good2 shares good's directory (and files)
            info = log_pyfunc_model(
                result.model_dir, registered_model=NAME, max_length=64, export_onnx=key == "good"
            )
        runs[key] = run.info.run_id
        versions[key] = str(info.registered_model_version)
        model_ids[key] = info.model_id
    test = toy_frame(n_per_class=25, seed=7)  # 75 gold rows never seen in training
    return {
        "root": root,
        "uri": uri,
        "good": good,
        "bad": bad,
        "runs": runs,
        "versions": versions,
        "model_ids": model_ids,
        "test": test,
        "client": store_client(uri),
    }


def _majority_baseline(test: pl.DataFrame) -> ModelPredictions:
    return ModelPredictions("baseline:majority", [TOY_LABELS[0]] * test.height, None)


def _evaluate(world: dict, which: str, champion: str | None, out_dir: Path | None = None):  # noqa: ANN202
    test = world["test"]
    cand = predict_model_dir("candidate", world[which].model_dir, test, labels=TOY_LABELS, max_length=64)
    champ = None
    if champion is not None:
        champ = predict_model_dir(
            "champion", world[champion].model_dir, test, labels=TOY_LABELS, max_length=64
        )
    return evaluate_models(
        gold=test["label"].to_list(),
        labels=TOY_LABELS,
        candidate=cand,
        baseline=_majority_baseline(test),
        labeler=None,
        champion=champ,
        gate_cfg=GATE,
        baseline_kind="majority",
        out_dir=out_dir,
    )


def test_gate_deploys_good_blocks_shuffled_and_rollback_restores(world: dict, tmp_path: Path) -> None:
    client, v = world["client"], world["versions"]
    good = _evaluate(world, "good", None, out_dir=tmp_path)
    assert good.gate.passed, good.gate.reasons
    row = deploy_candidate(
        client,
        registered_model=NAME,
        version=v["good"],
        decision=good.gate,
        metrics={"macro_f1": good.scores["candidate"].macro_f1},
        deployed_by="test",
    )
    assert row["version"][0] == v["good"] and row["previous_version"][0] is None
    assert str(get_champion(client, NAME).version) == v["good"]

    bad = _evaluate(world, "bad", "good")
    assert not bad.gate.passed
    assert (
        not bad.gate.checks["gain_over_baseline"]["passed"] or not bad.gate.checks["min_class_f1"]["passed"]
    )
    assert not bad.gate.checks["no_drop_vs_champion"]["passed"]
    with pytest.raises(GateNotPassedError, match="did not pass the gate"):
        deploy_candidate(client, registered_model=NAME, version=v["bad"], decision=bad.gate)
    assert str(get_champion(client, NAME).version) == v["good"]  # the alias did not move

    # the same gate, inputs and seed give the same verdict and intervals
    assert _evaluate(world, "bad", "good").gate == bad.gate

    again = _evaluate(world, "good", "good")  # equal to the champion: no drop, passes
    assert again.gate.passed
    deploy_candidate(client, registered_model=NAME, version=v["good2"], decision=again.gate)
    assert (str(get_champion(client, NAME).version), str(get_previous(client, NAME).version)) == (
        v["good2"],
        v["good"],
    )
    restored, demoted, row = rollback_champion(client, registered_model=NAME, reason="test")
    assert (str(restored.version), str(demoted.version)) == (v["good"], v["good2"])
    assert row["action"][0] == "rollback"
    assert str(get_champion(client, NAME).version) == v["good"]


def test_too_few_gold_rows_fail_the_gate(world: dict) -> None:
    test = world["test"].head(20)
    cand = predict_model_dir("candidate", world["good"].model_dir, test, labels=TOY_LABELS, max_length=64)
    res = evaluate_models(
        gold=test["label"].to_list(),
        labels=TOY_LABELS,
        candidate=cand,
        baseline=_majority_baseline(test),
        labeler=None,
        champion=None,
        gate_cfg=GATE,
        baseline_kind="majority",
    )
    assert not res.gate.passed
    assert any("too few gold test rows: 20 < gate.min_test_rows=50" in r for r in res.gate.reasons)


def test_evaluation_run_is_logged_and_linked(world: dict, tmp_path: Path) -> None:
    res = _evaluate(world, "good", None, out_dir=tmp_path)
    run_id = log_evaluation_run(
        res,
        tracking_uri=world["uri"],
        experiment="flow",
        training_run_id=world["runs"]["good"],
        artifact_root=world["root"] / "artifacts",
    )
    run = world["client"].get_run(run_id)
    assert run.data.tags[TAG_TRAINING_RUN] == world["runs"]["good"]
    assert run.data.metrics["candidate_macro_f1"] == pytest.approx(res.scores["candidate"].macro_f1)
    assert "candidate_vs_baseline_low" in run.data.metrics
    files = {f.path for f in world["client"].list_artifacts(run_id, "confusion")}
    assert "confusion/confusion_candidate.png" in files


def test_evaluation_metrics_land_on_the_candidates_logged_model(world: dict, tmp_path: Path) -> None:
    """MLflow 3: the model page shows the evaluation's macro-F1, named with the test set it was
    measured on, and the evaluation run lists the model and the test set as its inputs."""
    res = _evaluate(world, "good", None, out_dir=tmp_path)
    model_id = world["model_ids"]["good"]
    run_id = log_evaluation_run(
        res,
        tracking_uri=world["uri"],
        experiment="flow",
        training_run_id=world["runs"]["good"],
        artifact_root=world["root"] / "artifacts",
        model_id=model_id,
        test_rows=world["test"],
    )
    model = world["client"].get_logged_model(model_id)
    on_model = {m.key: m for m in model.metrics}
    assert on_model["candidate_macro_f1"].value == pytest.approx(res.scores["candidate"].macro_f1)
    assert on_model["candidate_macro_f1"].run_id == run_id
    assert on_model["candidate_macro_f1"].dataset_name == "dataset_splits.test"
    assert "baseline_macro_f1" not in on_model  # only the candidate's own scores belong to it
    inputs = world["client"].get_run(run_id).inputs
    assert [m.model_id for m in inputs.model_inputs] == [model_id]
    [test_set] = inputs.dataset_inputs
    assert test_set.dataset.name == "dataset_splits.test"
    assert test_set.dataset.digest == on_model["candidate_macro_f1"].dataset_digest
    assert "| **sport** |" in res.summary_markdown() or "sport" in res.confusion_tables()["candidate"]


def test_champion_pyfunc_round_trips_and_matches_the_predictor(world: dict, tmp_path: Path) -> None:
    client, v = world["client"], world["versions"]
    from newsml_pipeline.core.registry.aliases import set_champion

    set_champion(client, NAME, v["good"], reason="pyfunc test")
    mlflow.set_registry_uri(world["uri"])
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    test = world["test"].head(6)
    out = model.predict(pd.DataFrame({"title": test["title"].to_list(), "text": test["text"].to_list()}))
    assert list(out.columns) == ["label", "confidence", "scores"]
    predictor = Predictor(
        resolver=ChampionResolver(tracking_uri=world["uri"], registered_model=NAME, cache_dir=tmp_path),
        labels_cfg=LabelsConfig(categories=[{"name": n, "description": n} for n in TOY_LABELS]),
        serving_cfg=ServingConfig(),
        max_length=64,
    )
    answers = predictor.predict(
        [{"title": t, "text": x} for t, x in zip(test["title"], test["text"], strict=True)]
    )
    assert [a["model_version"] for a in answers] == [v["good"]] * 6
    assert out["label"].tolist() == [a["label"] for a in answers]
    np.testing.assert_allclose(out["confidence"].to_numpy(), [a["confidence"] for a in answers], atol=1e-4)
    assert np.mean(out["label"].to_numpy() == np.array(test["label"].to_list())) > 0.8


def test_per_precision_f1_is_measured_tagged_and_auto_obeys_the_loss_rule(
    world: dict, tmp_path: Path
) -> None:
    from newsml_pipeline.core.evaluation.precisions import measure_precisions
    from newsml_pipeline.core.registry.aliases import set_champion
    from newsml_pipeline.core.serving.precision import TAG_CHOSEN, choose_precision, parse_precision_tags

    model_dir = world["good"].model_dir
    assert (model_dir / "onnx" / "model.onnx").exists()  # log_pyfunc_model exported it at registration
    res = _evaluate(world, "good", None)
    res.precisions = measure_precisions(
        model_dir, world["test"], labels=TOY_LABELS, max_length=64, batch_size=16, device="cpu"
    )
    assert {"fp32", "onnx", "onnx-int8"} <= set(res.precisions)
    ref = res.precisions["fp32"]["macro_f1"]
    assert ref == pytest.approx(res.scores["candidate"].macro_f1, abs=0.02)  # same rows, same model
    assert abs(res.precisions["onnx"]["macro_f1"] - ref) < 1e-9  # fp32 export: same answers
    chosen = res.auto_precision
    assert chosen is not None and res.precisions[chosen]["macro_f1"] >= ref - 0.005
    faster_ok = [
        p
        for p, m in res.precisions.items()
        if m["macro_f1"] >= ref - 0.005 and m["ms_per_article"] < res.precisions[chosen]["ms_per_article"]
    ]
    assert faster_ok == []  # nothing faster qualified
    assert "| precision | macro-F1 |" in res.summary_markdown()
    assert "precision_onnx_int8_macro_f1" in res.metrics()

    version = world["versions"]["good"]
    log_evaluation_run(
        res,
        tracking_uri=world["uri"],
        experiment="flow",
        training_run_id=world["runs"]["good"],
        artifact_root=world["root"] / "artifacts",
        registered_model=NAME,
        model_version=version,
    )
    tags = world["client"].get_model_version(NAME, version).tags
    assert tags[TAG_CHOSEN] == chosen
    assert choose_precision(parse_precision_tags(tags), max_f1_loss=0.005) == chosen
    set_champion(world["client"], NAME, version, reason="auto precision test")
    predictor = Predictor(
        resolver=ChampionResolver(tracking_uri=world["uri"], registered_model=NAME, cache_dir=tmp_path),
        labels_cfg=LabelsConfig(categories=[{"name": n, "description": n} for n in TOY_LABELS]),
        serving_cfg=ServingConfig(precision="auto"),
        max_length=64,
    )
    # The serving process times the allowed precisions on its own hardware (issue 28): the
    # registration's choice is a hint, so the answer is the fastest of its own probe among the
    # precisions the quality rule allows, not necessarily `chosen` (fp32 and onnx are close here).
    served = predictor.precision_choice
    assert served is not None and predictor._backend.precision == served.precision  # noqa: SLF001
    allowed = {p for p, m in res.precisions.items() if m["macro_f1"] >= ref - 0.005}
    assert set(served.measured_ms) <= allowed and served.precision in allowed
    assert served.precision == min(served.measured_ms, key=served.measured_ms.get)
    assert served.hint_ms[chosen] == pytest.approx(res.precisions[chosen]["ms_per_article"], rel=1e-3)
