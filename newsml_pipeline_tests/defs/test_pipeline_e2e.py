"""The whole chain as Dagster runs it: ingest_job, then retrain_job and its gate.

A tiny random BERT stands in for MiniLM as training.base_model so this runs in about a minute;
labeling still uses the real labeling functions (spaCy + packaged MiniLM embeddings) on real
BBC articles. The first retrain is blocked by the gate (a random tiny model cannot beat the
zero-shot baseline), so the champion alias must not move; with a permissive gate the second
retrain deploys, and scoring then uses the champion.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from newsml_pipeline.core.data.warehouse import Warehouse
from newsml_pipeline.core.registry.tracking import store_client
from newsml_pipeline.definitions import build_definitions
from testkit.tiny_models import make_tiny_classifier_dir

LABELS = ["business", "entertainment", "politics", "sport", "tech"]


@pytest.fixture
def bbc_inbox(tmp_path: Path, bbc_rows: list[dict]) -> Path:
    """60 articles per class, gold labels carried, no dates (they land in today's partition)."""
    picked: dict[str, int] = {}
    folder = tmp_path / "inbox"
    folder.mkdir()
    with open(folder / "bbc.jsonl", "w", encoding="utf-8") as fh:
        for r in bbc_rows:
            if r.get("duplicate_of") or picked.get(r["label"], 0) >= 60:
                continue
            picked[r["label"]] = picked.get(r["label"], 0) + 1
            fh.write(
                json.dumps({"id": r["id"], "title": r["title"], "text": r["text"], "label": r["label"]})
                + "\n"
            )
    return folder


def _run(defs: dg.Definitions, job: str, instance: dg.DagsterInstance, partition: str | None = None):
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance, partition_key=partition, raise_on_error=False
    )


def _checks(result) -> dict[str, bool]:
    out = {}
    for ev in result.all_events:
        if ev.event_type_value == "ASSET_CHECK_EVALUATION":
            out[ev.event_specific_data.check_name] = ev.event_specific_data.passed
    return out


# slow (~1 min, in-process): the default set keeps the blocked verdict (defs/test_gate_verdict.py),
# a deployment and rescoring (e2e/test_loop_closes.py, newsroom/test_demo.py) through the
# multiprocess executor, and the MLflow logged-model metrics (core/evaluation/test_deploy_flow.py).
@pytest.mark.slow
def test_ingest_then_retrain_blocked_then_deployed(make_settings, bbc_inbox: Path, tmp_path: Path) -> None:
    tiny = make_tiny_classifier_dir(tmp_path, LABELS)
    common = dict(
        sources=[{"name": "bbc", "kind": "local", "path": str(bbc_inbox)}],
        training={"base_model": str(tiny), "epochs": 1, "batch_size": 16, "max_length": 64},
        splits={"min_per_class_eval": 2},
    )
    settings = make_settings(**common, gate={"min_test_rows": 20})
    instance = dg.DagsterInstance.ephemeral()
    today = datetime.now(UTC).date().isoformat()

    defs = build_definitions(settings)
    ingest = _run(defs, "ingest_job", instance, today)
    assert ingest.success
    wh = Warehouse(settings.warehouse_path)
    # 300 picked; BBC repeats a few texts under another title, and those collapse to one row
    assert 295 <= len(wh.read("raw_articles")) <= 300
    labeled = wh.read("labeled_articles")
    assert labeled["label"].is_not_null().mean() > 0.8
    scored = wh.read("scored_articles")
    assert set(scored["model_version"].to_list()) == {"auto-labeler"}  # no champion yet
    # the labeller's best class similarity reaches the drift stream (signal no_fit), per article
    labeled_fit = wh.read("labeled_articles").select("article_id", "class_fit")
    assert labeled_fit["class_fit"].null_count() == 0
    fits = scored.select("article_id", "class_fit").join(labeled_fit, on="article_id", suffix="_l")
    assert fits.height == scored.height and (fits["class_fit"] == fits["class_fit_l"]).all()

    blocked = _run(defs, "retrain_job", instance)
    assert _checks(blocked)["evaluation_gate"] is False
    assert blocked.success  # a blocked candidate is a verdict, not a failed run
    mats = (
        {e.asset_key.to_user_string() for e in blocked.get_asset_materialization_events()}
        if hasattr(blocked, "get_asset_materialization_events")
        else {
            m.asset_key.to_user_string()
            for n in ("candidate_model", "model_evaluation", "deployed_model")
            for m in blocked.asset_materializations_for_node(n)
        }
    )
    assert {"candidate_model", "model_evaluation"} <= mats
    assert "deployed_model" not in mats
    # The evaluation shows real tables (typed columns) and pictures, not Markdown tables.
    eval_md = blocked.asset_materializations_for_node("model_evaluation")[0].metadata
    models = eval_md["models"].value
    assert {r.data["model"] for r in models.records} >= {"candidate", "baseline"}
    assert {c.name: c.type for c in models.schema.columns}["macro_f1"] == "float"
    assert eval_md["bootstrap_intervals"].value.records[0].data["comparison"] == "candidate vs baseline"
    for key in ("confusion_candidate", "per_class_f1_chart"):
        assert eval_md[key].value.startswith(f"![{key}](data:image/png;base64,iVBOR")
    assert "onnx-int8" in {r.data["precision"] for r in eval_md["serving_precisions"].value.records}
    # dataset_splits shows the train rows it dropped as likely labeler mistakes, and they are gone
    split_md = blocked.asset_materializations_for_node("dataset_splits")[0].metadata
    dropped = split_md["label_issues_dropped"].value
    report = split_md["report"].value["label_issues"]
    assert report["enabled"] is True and report["dropped"] == dropped
    assert report["train_rows_checked"] > 100
    examples = report["examples"]
    assert len(examples) == min(dropped, 20)
    split_ids = set(wh.read("dataset_splits")["article_id"].to_list())
    assert not {e["article_id"] for e in examples} & split_ids
    import mlflow

    client = store_client(settings.mlflow_tracking_uri())
    name = settings.config.mlflow.registered_model
    assert len(client.search_model_versions(f"name='{name}'")) == 1
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias(name, "champion")

    permissive = make_settings(
        **common, gate={"min_test_rows": 20, "min_gain_over_baseline": -1.0, "min_class_f1": 0.0}
    )
    defs2 = build_definitions(permissive)
    deployed = _run(defs2, "retrain_job", instance)
    assert deployed.success, [e.message for e in deployed.all_events if e.is_failure]
    assert _checks(deployed)["evaluation_gate"] is True
    champion = client.get_model_version_by_alias(name, "champion")
    assert str(champion.version) == "2"
    # MLflow 3: the candidate's logged model carries its evaluation, its training run the splits
    cand = deployed.output_for_node("candidate_model")
    on_model = {m.key: m for m in client.get_logged_model(cand["model_id"]).metrics}
    evaluated = deployed.output_for_node("model_evaluation")["scores"]["candidate"]["macro_f1"]
    assert on_model["candidate_macro_f1"].value == pytest.approx(evaluated)
    assert on_model["candidate_macro_f1"].dataset_name == "dataset_splits.test"
    inputs = client.get_run(cand["run_id"]).inputs.dataset_inputs
    assert {t.value for i in inputs for t in i.tags if t.key == "mlflow.data.context"} == {
        "train",
        "val",
        "test",
    }
    assert len(wh.read("deployments")) == 1

    rescored = _run(defs2, "ingest_job", instance, today)
    assert rescored.success
    assert set(wh.read("scored_articles")["model_version"].to_list()) == {"2"}
