"""Self-training rounds relabel only confident auto-labelled train rows; rounds=0 is plain training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from newsml_pipeline.core.registry.tracking import store_client
from newsml_pipeline.core.training.self_training import RELABELLED_SOURCE, relabel_confident, self_train
from newsml_pipeline.settings import SelfTrainingConfig
from newsml_pipeline_tests.core.training.test_training import tiny_cfg
from newsml_pipeline_tests.core.training.toy_data import TOY_LABELS, toy_frame
from testkit.tiny_models import make_tiny_classifier_dir

LABELS = ["a", "b", "c"]


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "article_id": [f"x{i}" for i in range(8)],
            "split": ["train", "train", "train", "train", "train", "val", "test", "train"],
            "label": ["a", "a", "b", "c", "c", "a", "a", "b"],
            "label_source": ["auto", "auto", "auto", "auto", "gold", "gold", "gold", "auto"],
        }
    )


def _proba(top: list[int], conf: list[float]) -> np.ndarray:
    out = np.zeros((len(top), len(LABELS)))
    for i, (t, c) in enumerate(zip(top, conf, strict=True)):
        out[i] = (1 - c) / (len(LABELS) - 1)
        out[i, t] = c
    return out


def test_only_confident_auto_train_rows_change_never_val_test_or_gold() -> None:
    frame = _frame()
    # every row's candidate says "b" confidently except x1 (0.6) and x7 (already b)
    proba = _proba([1] * 8, [0.95, 0.6, 0.99, 0.97, 0.99, 0.99, 0.99, 0.99])
    out, counts = relabel_confident(frame, proba, labels=LABELS, min_confidence=0.9, max_share=1.0)
    got = dict(zip(out["article_id"], out["label"], strict=True))
    assert got == {"x0": "b", "x1": "a", "x2": "b", "x3": "b", "x4": "c", "x5": "a", "x6": "a", "x7": "b"}
    src = dict(zip(out["article_id"], out["label_source"], strict=True))
    assert src["x0"] == src["x3"] == RELABELLED_SOURCE and src["x2"] == "auto" and src["x4"] == "gold"
    # relabelled = confident eligible rows (x0, x2, x3, x7); changes = those whose label moved
    assert counts == {"eligible": 5, "relabelled": 4, "changes": 2, "capped": 0}


def test_max_share_keeps_the_most_confident_changes_and_no_class_is_emptied() -> None:
    frame = _frame()
    proba = _proba([1, 1, 1, 1, 1, 1, 1, 1], [0.95, 0.92, 0.5, 0.99, 0.5, 0.5, 0.5, 0.5])
    out, counts = relabel_confident(frame, proba, labels=LABELS, min_confidence=0.9, max_share=0.2)
    # 6 train rows x 0.2 -> one change: x3 (0.99) over x0 (0.95) and x1 (0.92)
    assert out.filter(pl.col("label") != frame["label"])["article_id"].to_list() == ["x3"]
    assert counts["changes"] == 1 and counts["capped"] == 2
    # c has x3 (auto) and x4 (gold) in train: moving x3 leaves gold x4, so it moves; a class whose
    # last train row would move keeps it
    only_c = frame.with_columns(label_source=pl.Series(["auto"] * 4 + ["auto", "gold", "gold", "auto"]))
    only_c = only_c.with_columns(label=pl.Series(["a", "a", "b", "c", "b", "a", "a", "b"]))
    out, counts = relabel_confident(
        only_c, _proba([1] * 8, [0.99] * 8), labels=LABELS, min_confidence=0.9, max_share=1
    )
    assert "c" in out.filter(pl.col("split") == "train")["label"].to_list()
    assert out.filter(pl.col("label") == "a", pl.col("split") == "train").height == 1  # the last a stays


def test_bad_shapes_and_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        relabel_confident(_frame(), np.zeros((3, 3)), labels=LABELS, min_confidence=0.9, max_share=0.2)
    with pytest.raises(ValueError, match="min_confidence"):
        relabel_confident(_frame(), np.zeros((8, 3)), labels=LABELS, min_confidence=0.0, max_share=0.2)


def _noisy_toy() -> pl.DataFrame:
    """The toy frame with a quarter of the train auto-labels wrong, plus label_source."""
    frame = toy_frame(seed=3)
    rng = np.random.default_rng(0)
    flip = (frame["split"] == "train").to_numpy() & (rng.random(frame.height) < 0.25)
    wrong = [TOY_LABELS[(TOY_LABELS.index(lab) + 1) % 3] for lab in frame["label"]]
    return frame.with_columns(
        label=pl.Series(np.where(flip, wrong, frame["label"].to_numpy()).tolist()),
        label_source=pl.Series(np.where((frame["split"] == "train").to_numpy(), "auto", "gold").tolist()),
    )


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_classifier_dir(tmp_path_factory.mktemp("st_base"), TOY_LABELS)


def test_rounds_zero_trains_once_with_the_frame_as_given(base: Path, tmp_path: Path) -> None:
    seen: list[pl.DataFrame] = []
    cfg = tiny_cfg(base, epochs=2)
    assert cfg.self_training == SelfTrainingConfig() and cfg.self_training.rounds == 0  # off by default

    def train(frame, out, run_logger):  # noqa: ANN001
        from newsml_pipeline.core.training.fine_tune import train_classifier

        seen.append(frame)
        return train_classifier(
            frame, labels=TOY_LABELS, training_cfg=cfg, output_dir=out, run_logger=run_logger
        )

    def predict(result, frame):  # noqa: ANN001
        raise AssertionError("rounds=0 never predicts the train pool")

    frame = _noisy_toy()
    st = self_train(
        frame, labels=TOY_LABELS, training_cfg=cfg, output_dir=tmp_path, train_fn=train, predict_fn=predict
    )
    assert len(seen) == 1 and seen[0].equals(frame)
    assert st.selected_round == 0 and [r.round for r in st.rounds] == [0]
    assert st.rounds[0].changes == 0 and st.result.model_dir == tmp_path / "model"


def test_round_one_relabels_only_confident_train_rows_with_the_tiny_model(base: Path, tmp_path: Path) -> None:
    # just above 1/3 (uniform over 3 classes): the tiny model is that sure of some rows whether or
    # not this run of it learned the toy well, so the test does not hang on training luck
    threshold = 0.34
    cfg = tiny_cfg(base, epochs=4, self_training={"rounds": 1, "min_confidence": threshold, "max_share": 0.3})
    frames: list[pl.DataFrame] = []
    probas: list[np.ndarray] = []

    def train(frame, out, run_logger):  # noqa: ANN001
        from newsml_pipeline.core.training.fine_tune import train_classifier

        frames.append(frame)
        return train_classifier(
            frame, labels=TOY_LABELS, training_cfg=cfg, output_dir=out, run_logger=run_logger
        )

    def predict(result, frame):  # noqa: ANN001
        from newsml_pipeline.core.training.self_training import predict_train_rows

        assert set(frame["split"]) == {"train"}  # only the train pool is predicted
        p = predict_train_rows(result.model_dir, frame, labels=TOY_LABELS, max_length=64, batch_size=32)
        probas.append(p)
        return p

    frame = _noisy_toy()
    st = self_train(
        frame, labels=TOY_LABELS, training_cfg=cfg, output_dir=tmp_path, train_fn=train, predict_fn=predict
    )
    assert len(frames) == 2 and [r.round for r in st.rounds] == [0, 1]
    before, after = frames
    held = before.filter(pl.col("split") != "train")
    assert after.filter(pl.col("split") != "train").equals(held)  # val/test never touched
    train_before = before.filter(pl.col("split") == "train")
    train_after = after.filter(pl.col("split") == "train")
    changed = (train_before["label"] != train_after["label"]).to_numpy()
    assert changed.any()
    conf = probas[0].max(axis=1)
    pred = np.array(TOY_LABELS)[probas[0].argmax(axis=1)]
    assert (conf[changed] >= threshold).all() and (
        train_after["label"].to_numpy()[changed] == pred[changed]
    ).all()
    assert changed.sum() <= int(0.3 * train_before.height)
    unsure = conf < threshold
    assert (train_after["label"].to_numpy()[unsure] == train_before["label"].to_numpy()[unsure]).all()
    assert set(train_after.filter(pl.Series(changed))["label_source"]) == {RELABELLED_SOURCE}
    r1 = st.rounds[1]
    assert r1.changes == changed.sum() == r1.changed_from_auto and r1.eligible == train_before.height
    assert r1.model_dir.endswith("self_training/round-1/model")
    best = max(st.rounds, key=lambda r: (r.val_macro_f1, -r.round))
    assert st.selected_round == best.round


def test_gold_train_rows_are_never_relabelled(base: Path, tmp_path: Path) -> None:
    frame = _noisy_toy()
    gold_ids = frame.filter(pl.col("split") == "train")["article_id"].to_list()[::3]
    frame = frame.with_columns(
        label_source=pl.when(pl.col("article_id").is_in(gold_ids))
        .then(pl.lit("gold"))
        .otherwise(pl.col("label_source"))
    )
    cfg = tiny_cfg(base, epochs=1, self_training={"rounds": 1, "min_confidence": 0.01, "max_share": 1.0})
    frames: list[pl.DataFrame] = []

    def train(f, out, run_logger):  # noqa: ANN001
        from newsml_pipeline.core.training.fine_tune import train_classifier

        frames.append(f)
        return train_classifier(f, labels=TOY_LABELS, training_cfg=cfg, output_dir=out)

    # a "candidate" that confidently calls every article politics
    def predict(result, f):  # noqa: ANN001
        return np.tile([0.0, 0.0, 1.0], (f.height, 1))

    self_train(
        frame, labels=TOY_LABELS, training_cfg=cfg, output_dir=tmp_path, train_fn=train, predict_fn=predict
    )
    after = frames[1]
    gold_after = after.filter(pl.col("article_id").is_in(gold_ids))
    assert gold_after.equals(frame.filter(pl.col("article_id").is_in(gold_ids)))
    auto_after = after.filter(pl.col("split") == "train", ~pl.col("article_id").is_in(gold_ids))
    # gold rows keep every class in train, so every auto row may (and does) move
    assert set(auto_after["label"]) == {"politics"}


def test_train_and_log_records_each_round_in_mlflow(base: Path, tmp_path: Path) -> None:

    from newsml_pipeline.core.registry.model_logging import train_and_log
    from newsml_pipeline.settings import MlflowConfig

    cfg = tiny_cfg(base, epochs=2, self_training={"rounds": 1, "min_confidence": 0.4, "max_share": 0.3})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logged = train_and_log(
        _noisy_toy(),
        labels=TOY_LABELS,
        training_cfg=cfg,
        mlflow_cfg=MlflowConfig(experiment="st", registered_model="st-model"),
        tracking_uri=uri,
        artifact_root=tmp_path / "art",
        work_dir=tmp_path / "work",
        export_onnx=False,  # what is tested is the metrics / rounds, not the serving files
    )
    assert [r["round"] for r in logged.self_training] == [0, 1]
    assert sum(r["selected"] for r in logged.self_training) == 1
    client = store_client(uri)
    run = client.get_run(logged.run_id)
    assert (
        run.data.params["self_training_rounds"] == "1"
        and run.data.params["self_training_min_confidence"] == "0.4"
    )
    val = client.get_metric_history(logged.run_id, "self_training_val_macro_f1")
    assert sorted(h.step for h in val) == [0, 1]
    changes = {h.step: h.value for h in client.get_metric_history(logged.run_id, "self_training_changes")}
    assert changes[0] == 0 and changes[1] == logged.self_training[1]["changes"]
    # the epochs of round 1 follow those of round 0 in the per-epoch history
    assert sorted(h.step for h in client.get_metric_history(logged.run_id, "epoch_val_macro_f1")) == [
        1,
        2,
        3,
        4,
    ]
    selected = next(r for r in logged.self_training if r["selected"])
    assert str(logged.train_result.model_dir) == selected["model_dir"]
