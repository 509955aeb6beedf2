"""Category names are the user's: `Sci/Tech`, `World`, `Economy & business` run through the real
config loader, labeller, splits, metrics and MLflow logging; slugs appear only in metric keys."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from newsml_pipeline.core.evaluation.metrics import score_predictions
from newsml_pipeline.core.labeling.pipeline import label_articles
from newsml_pipeline.core.registry.model_logging import train_and_log
from newsml_pipeline.settings import ConfigError, MlflowConfig, category_slug, load_config
from newsml_pipeline_tests.core.labeling.test_pipeline import bbc_frame
from newsml_pipeline_tests.core.training.test_training import tiny_cfg
from newsml_pipeline_tests.core.training.toy_data import toy_frame
from testkit.tiny_models import make_tiny_classifier_dir

USER_NAMES = {"tech": "Sci/Tech", "politics": "World", "business": "Economy & business", "sport": "Sport"}


def _categories(names: list[str]) -> list[dict]:
    desc = {
        "Sci/Tech": (
            "science, technology, computers and the internet",
            ["technology", "software", "internet", "computer", "phone", "online", "digital", "users"],
        ),
        "World": (
            "governments, politics and elections",
            ["government", "president", "minister", "election", "party", "leader", "talks", "police"],
        ),
        "Economy & business": (
            "companies, markets and the economy",
            ["company", "market", "shares", "economy", "profit", "bank", "investors", "sales"],
        ),
        "Sport": (
            "sport results and athletes",
            ["match", "team", "player", "season", "coach", "win", "champion", "league"],
        ),
    }
    return [
        {"name": n, "description": desc.get(n, ("other", []))[0], "keywords": desc.get(n, ("", []))[1]}
        for n in names
    ]


def _write(tmp_path: Path, names: list[str]) -> Path:
    path = tmp_path / "labels.yaml"
    path.write_text(yaml.safe_dump({"labels": {"categories": _categories(names)}}), encoding="utf-8")
    return path


def test_slugs() -> None:
    assert category_slug("Sci/Tech") == "sci_tech"
    assert category_slug("Economy & business") == "economy_business"
    assert category_slug("World") == "world"
    assert category_slug("sci-tech") == "sci_tech"
    assert category_slug("Économie") == "économie"
    assert category_slug("???") == "x3f3f3f"


def test_user_names_load_and_clashing_slugs_are_refused(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, list(USER_NAMES.values())))
    assert cfg.labels.names == ["Sci/Tech", "World", "Economy & business", "Sport"]
    assert cfg.labels.slugs["Economy & business"] == "economy_business"
    # Two names with one key form would overwrite each other's MLflow metrics: an error at load.
    with pytest.raises(ConfigError, match=r"Sci/Tech.*Sci-Tech.*sci_tech"):
        load_config(_write(tmp_path, ["Sci/Tech", "Sci-Tech", "World"]))
    with pytest.raises(ConfigError, match="non-empty"):
        load_config(_write(tmp_path, ["  ", "World"]))
    with pytest.raises(ConfigError, match="whitespace"):
        load_config(_write(tmp_path, ["World ", "Sport"]))


def test_labeller_uses_and_matches_user_names(bbc_rows, tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, list(USER_NAMES.values())))
    rows = [r for r in bbc_rows if r["label"] in USER_NAMES]
    raw = bbc_frame(rows, per_class=15, mapping=USER_NAMES)
    labeled, report = label_articles(raw, labels_cfg=cfg.labels)
    assert set(labeled["label"].drop_nulls()) <= set(USER_NAMES.values())
    assert set(report["class_distribution"]) == set(USER_NAMES.values())
    # Gold labels written as the user's names are matched as written: every row counts as gold.
    assert report["gold_rows"] == raw.height
    assert report["accuracy_vs_gold"] >= 0.75, report
    assert set(report["accuracy_vs_gold_per_class"]) == set(USER_NAMES.values())
    # The keyword function reads a name's words: "Sci/Tech" alone (no keywords) still votes.
    only_names = load_config(_write(tmp_path, list(USER_NAMES.values()))).labels.model_copy(
        update={
            "functions": ["keywords"],
            "categories": [c.model_copy(update={"keywords": []}) for c in cfg.labels.categories],
        }
    )
    tech = raw.filter(pl.col("gold_label") == "Sci/Tech").with_columns(
        pl.lit("New tech for schools").alias("title")
    )
    lab, _ = label_articles(tech, labels_cfg=only_names)
    assert (lab["label"] == "Sci/Tech").all()


def test_metric_keys_are_slugs_and_map_back(tmp_path: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    names = {"sport": "Sport", "tech": "Sci/Tech", "politics": "Economy & business"}
    frame = toy_frame(n_per_class=20).with_columns(pl.col("label").replace_strict(names))
    labels = list(names.values())
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logged = train_and_log(
        frame,
        labels=labels,
        training_cfg=tiny_cfg(make_tiny_classifier_dir(tmp_path, labels), epochs=1),
        mlflow_cfg=MlflowConfig(experiment="names", registered_model="names-model"),
        tracking_uri=uri,
        artifact_root=tmp_path / "mlartifacts",
        work_dir=tmp_path / "work",
        export_onnx=False,  # what is tested is the metrics / rounds, not the serving files
    )
    run = MlflowClient(tracking_uri=uri, registry_uri=uri).get_run(logged.run_id)
    assert {"test_f1_sci_tech", "test_f1_economy_business", "test_f1_sport"} <= set(run.data.metrics)
    assert json.loads(run.data.params["labels"]) == labels
    assert not (logged.train_result.model_dir / "onnx").exists()  # export_onnx=False: none written
    assert json.loads(run.data.params["class_slugs"])["economy_business"] == "Economy & business"
    # Evaluation metrics (the evaluation run's keys) take the same slugs and MLflow accepts them.
    scores = score_predictions(
        ["Sci/Tech", "Sport", "Economy & business"], ["Sci/Tech", "Sport", "Sport"], labels=labels
    )
    flat = scores.flat_metrics(prefix="candidate_")
    assert "candidate_f1_economy_business" in flat and "candidate_recall_sci_tech" in flat
    assert scores.per_class["Economy & business"].f1 == 0.0  # people read names in per_class
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run_id = client.create_run(run.info.experiment_id).info.run_id
    client.log_batch(run_id, metrics=[mlflow.entities.Metric(k, float(v), 0, 0) for k, v in flat.items()])
    assert set(flat) <= set(client.get_run(run_id).data.metrics)
