"""Predictor: champion resolution, auto-labeler fallback, hot reload, rollback, validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from newsml_pipeline.core.registry.aliases import rollback, set_champion
from newsml_pipeline.core.serving.predictor import (
    ChampionResolver,
    InvalidRecordError,
    ModelLoadError,
    Predictor,
    validate_records,
)
from newsml_pipeline_tests.core.serving.conftest import LABELS, LABELS_CFG, FixedFallback, serving_cfg
from newsml_pipeline_tests.core.serving.registry_helpers import register_tiny_version, tracking_uri_for

ARTICLES = [
    {"title": "Shares rise", "text": "The company reported record profit and shares rose."},
    {"text": "The team won the cup final after extra time."},
    {"id": "a3", "title": "New phone", "text": "A new mobile phone with faster broadband was released."},
]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _predictor(root: Path, name: str, cache: Path, clock=None, **kw) -> Predictor:  # noqa: ANN001, ANN003
    resolver = ChampionResolver(tracking_uri=tracking_uri_for(root), registered_model=name, cache_dir=cache)
    return Predictor(
        resolver=resolver,
        labels_cfg=LABELS_CFG,
        serving_cfg=serving_cfg(**kw),
        fallback=FixedFallback,
        clock=clock or Clock(),
    )


def test_no_champion_answers_with_the_auto_labeler_and_says_so(tmp_path: Path) -> None:
    register_tiny_version(tmp_path, "fresh", LABELS, seed=0)  # a version exists but nothing deployed
    p = _predictor(tmp_path, "fresh", tmp_path / "cache")
    out = p.predict(ARTICLES)
    assert [o["model_version"] for o in out] == ["auto-labeler"] * 3
    assert p.health()["model_version"] == "auto-labeler"


def test_champion_is_loaded_hot_swapped_and_rolled_back(tmp_path: Path) -> None:
    name = "swap"
    v1 = register_tiny_version(tmp_path, name, LABELS, seed=1)
    v2 = register_tiny_version(tmp_path, name, LABELS, seed=2)
    uri = tracking_uri_for(tmp_path)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    set_champion(client, name, v1, reason="test")
    clock = Clock()
    p = _predictor(tmp_path, name, tmp_path / "cache", clock=clock, reload_interval_s=10)
    out = p.predict(ARTICLES)
    assert {o["model_version"] for o in out} == {v1}
    for o in out:
        assert set(o["scores"]) == set(LABELS)
        assert sum(o["scores"].values()) == pytest.approx(1.0, abs=1e-4)
        assert o["label"] in LABELS and o["confidence"] == max(o["scores"].values())
    assert out[2]["id"] == "a3" and "id" not in out[0]
    first = [o["scores"] for o in out]

    set_champion(client, name, v2, reason="newer")
    clock.t = 5  # inside the reload interval: still v1
    assert p.predict(ARTICLES[:1])[0]["model_version"] == v1
    clock.t = 11
    out2 = p.predict(ARTICLES)
    assert {o["model_version"] for o in out2} == {v2}
    assert [o["scores"] for o in out2] != first  # a different model really answers

    rollback(client, name)
    clock.t = 22
    assert p.predict(ARTICLES)[0]["model_version"] == v1
    # the first load was cached on disk: the same scores as before
    assert [o["scores"] for o in p.predict(ARTICLES)] == first


def test_batches_give_the_same_answers_as_one_by_one(registry: dict, cache_dir: Path) -> None:
    client = MlflowClient(tracking_uri=registry["uri"], registry_uri=registry["uri"])
    set_champion(client, registry["name"], registry["versions"][0], reason="test")
    p = _predictor(registry["root"], registry["name"], cache_dir, batch_size=2)
    many = [{"title": f"t{i}", "text": ARTICLES[i % 3]["text"] + " x" * i} for i in range(7)]
    together = p.predict(many)
    alone = [p.predict([r])[0] for r in many]
    for a, b in zip(together, alone, strict=True):
        assert a["label"] == b["label"]
        np.testing.assert_allclose(list(a["scores"].values()), list(b["scores"].values()), atol=2e-2)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "empty list"),
        ({"text": "x"}, "expected a list"),
        ([{"text": "  "}], "article 0: field 'text' is empty"),
        ([{"title": "t"}], "'text' is required"),
        ([{"text": "ok"}, {"text": 3}], "article 1: field 'text' must be a string"),
        ([{"text": "ok", "title": ["x"]}], "'title' must be a string"),
        (["just a string"], "expected an object"),
    ],
)
def test_bad_records_are_rejected_with_a_message(records, message: str) -> None:  # noqa: ANN001
    with pytest.raises(InvalidRecordError, match=message):
        validate_records(records)


def test_champion_without_model_files_is_a_clear_error(tmp_path: Path) -> None:
    uri = tracking_uri_for(tmp_path)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("hollow")
    empty = tmp_path / "empty-artifacts"
    empty.mkdir()
    (empty / "notes.txt").write_text("no model here")
    mv = client.create_model_version("hollow", source=str(empty))
    set_champion(client, "hollow", mv.version, reason="test")
    with pytest.raises(ModelLoadError, match="no classifier directory"):
        _predictor(tmp_path, "hollow", tmp_path / "cache")


def _confident_tiny_model(root: Path) -> Path:
    """A tiny classifier trained until it is sure of each ARTICLE's label (not near-uniform scores),
    so an int8 path that loses the signal changes the answers."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from newsml_pipeline.core.training.inputs import format_input
    from testkit.tiny_models import make_tiny_classifier_dir

    texts = [format_input(a.get("title"), a["text"]) for a in ARTICLES]
    model_dir = make_tiny_classifier_dir(root, LABELS, seed=3, texts=texts)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    batch = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    target = torch.tensor([0, 3, 4])  # business, sport, tech
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(200):  # 60 left it at 0.78 once the tiny vocabulary became deterministic
        opt.zero_grad()
        model(**batch, labels=target).loss.backward()
        opt.step()
    model.eval()
    model.save_pretrained(model_dir)
    return model_dir


def test_int8_precision_quantizes_and_serves_the_fp32_answers(tmp_path: Path) -> None:
    from torch import nn
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    name = "confident"
    version = register_tiny_version(
        tmp_path, name, LABELS, seed=3, model_dir=_confident_tiny_model(tmp_path / "src")
    )
    client = MlflowClient(tracking_uri=tracking_uri_for(tmp_path), registry_uri=tracking_uri_for(tmp_path))
    set_champion(client, name, version, reason="test")
    answers, models = {}, {}
    for precision in ("fp32", "int8"):
        p = _predictor(tmp_path, name, tmp_path / "cache", precision=precision)
        answers[precision] = p.predict(ARTICLES)
        models[precision] = p._backend.model
    # Quantization happened: every Linear of the int8 model is a dynamic int8 one with qint8 weights.
    linears = [m for m in models["int8"].modules() if isinstance(m, nn.Linear | DynamicQuantizedLinear)]
    assert linears and all(isinstance(m, DynamicQuantizedLinear) for m in linears)
    assert all(str(m.weight().dtype) == "torch.qint8" for m in linears)
    assert not any(isinstance(m, DynamicQuantizedLinear) for m in models["fp32"].modules())
    # The fp32 model is sure (a broken int8 path could not match it by sitting near uniform) ...
    fp32, int8 = answers["fp32"], answers["int8"]
    assert [a["label"] for a in fp32] == ["business", "sport", "tech"]
    assert min(a["confidence"] for a in fp32) > 0.8
    # ... and int8 gives the same labels with scores close to fp32's.
    assert [a["label"] for a in int8] == [a["label"] for a in fp32]
    for a, b in zip(fp32, int8, strict=True):
        np.testing.assert_allclose(list(a["scores"].values()), list(b["scores"].values()), atol=0.05)


def test_auto_labeler_stand_in_groups_dependent_functions_like_the_labeler(monkeypatch) -> None:  # noqa: ANN001
    """zero_shot and transductive read the same embeddings: the stand-in must count them once."""
    from newsml_pipeline.core.labeling import pipeline
    from newsml_pipeline.core.labeling.label_model import DawidSkene
    from newsml_pipeline.core.serving.predictor import AutoLabelerBackend

    rng = np.random.default_rng(0)
    n, k = 60, len(LABELS)
    shared = rng.integers(0, k, n)
    votes = np.stack([rng.integers(0, k, n), shared, shared], axis=1)
    names = ["keywords", "zero_shot", "transductive"]
    monkeypatch.setattr(pipeline, "compute_votes", lambda *a, **kw: (votes, names, {}))
    cfg = LABELS_CFG.model_copy(update={"dependent_functions": [["zero_shot", "transductive"]]})
    proba = AutoLabelerBackend(cfg).predict_proba([None] * n, ["x"] * n)
    grouped = DawidSkene(k=k, groups=[[1, 2]]).fit(votes).predict_proba(votes)
    ungrouped = DawidSkene(k=k).fit(votes).predict_proba(votes)
    assert np.allclose(proba, grouped)
    assert not np.allclose(grouped, ungrouped)  # the test can tell the two apart


class _RecordingBackend:
    """Records the articles of every forward call; scores follow the text length (order check)."""

    version = "rec"
    labels = LABELS

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def predict_proba(self, titles, texts):  # noqa: ANN001, ANN201
        self.calls.append([len(t) for t in texts])
        out = np.zeros((len(texts), len(LABELS)))
        for row, t in enumerate(texts):
            out[row, len(t) % len(LABELS)] = 1.0
        return out


def test_batches_are_grouped_by_length_and_answers_keep_input_order() -> None:
    """A short article shares its forward pass with other short ones (its padding is small), and
    each answer still goes back to its own article."""
    rec = _RecordingBackend()
    p = Predictor(
        resolver=None, labels_cfg=LABELS_CFG, serving_cfg=serving_cfg(batch_size=2), fallback=lambda: rec
    )
    lengths = [500, 10, 400, 20, 300, 30]
    records = [{"id": i, "text": "x" * n} for i, n in enumerate(lengths)]
    out = p.predict(records)
    assert rec.calls == [[500, 400], [300, 30], [20, 10]]
    assert [o["id"] for o in out] == list(range(6))
    assert [o["label"] for o in out] == [LABELS[n % len(LABELS)] for n in lengths]


def test_a_single_request_is_not_padded_to_max_length(registry: dict, cache_dir: Path) -> None:
    """Dynamic padding: one short article runs at its own token count, not serving max_length."""
    client = MlflowClient(tracking_uri=registry["uri"], registry_uri=registry["uri"])
    set_champion(client, registry["name"], registry["versions"][0], reason="test")
    resolver = ChampionResolver(
        tracking_uri=registry["uri"], registered_model=registry["name"], cache_dir=cache_dir
    )
    p = Predictor(
        resolver=resolver,
        labels_cfg=LABELS_CFG,
        serving_cfg=serving_cfg(precision="fp32"),
        fallback=FixedFallback,
        max_length=256,
    )
    widths: list[int] = []
    p._backend.model.register_forward_pre_hook(  # noqa: SLF001
        lambda mod, args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    p.predict([{"title": "Cup", "text": "The team won the final."}])
    p.predict([{"text": "The team won the final. " * 200}])  # a long one is cut at max_length
    assert widths[0] < 20 and widths[1] == 256
