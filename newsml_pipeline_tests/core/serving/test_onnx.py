"""ONNX export + ONNX Runtime serving + how `auto` picks a precision (tiny random model, offline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from newsml_pipeline.core.registry.aliases import set_champion
from newsml_pipeline.core.serving.onnx_model import OnnxBackend, export_onnx, onnx_path
from newsml_pipeline.core.serving.precision import choose_precision, parse_precision_tags, precision_tags
from newsml_pipeline.core.serving.predictor import ChampionResolver, ModelLoadError, Predictor
from newsml_pipeline.core.training.inputs import format_input
from newsml_pipeline.core.training.model_io import load_classifier, predict_proba
from newsml_pipeline_tests.core.serving.conftest import LABELS, LABELS_CFG, FixedFallback, serving_cfg
from newsml_pipeline_tests.core.serving.registry_helpers import register_tiny_version, tracking_uri_for
from testkit.tiny_models import make_tiny_classifier_dir

TEXTS = [
    format_input("Shares rise", "The company reported record profit and shares rose."),
    format_input(None, "The team won the cup final after extra time in a match the coach called great."),
    format_input("New phone", "A new mobile phone with faster broadband was released " * 20),
    format_input("Vote", "parliament"),
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # seed 3 saturated (all rows within 1e-5) once the tiny vocabulary became deterministic
    model_dir = sharpened_tiny_dir(tmp_path_factory.mktemp("onnx"), seed=2)
    export_onnx(model_dir)
    return model_dir


def sharpened_tiny_dir(root: Path, *, seed: int) -> Path:
    """The tiny random model with its head scaled up: a random init answers ~uniformly whatever
    the input, so an export that ignored its input would pass a tolerance check; with the scaled
    head, different articles get clearly different probabilities."""
    import torch

    model_dir = make_tiny_classifier_dir(root, LABELS, seed=seed)
    model, _, _ = load_classifier(model_dir, device="cpu")
    with torch.no_grad():
        model.classifier.weight.mul_(400.0)
    model.save_pretrained(model_dir)
    return model_dir


def test_export_writes_fp32_and_int8_and_they_agree_with_torch_fp32(exported: Path) -> None:
    fp32, int8 = onnx_path(exported, "onnx"), onnx_path(exported, "onnx-int8")
    assert fp32.stat().st_size > 0 and int8.stat().st_size > 0
    model, tok, _ = load_classifier(exported, device="cpu")
    ref = predict_proba(model, tok, TEXTS, batch_size=2, max_length=64, device="cpu", bf16=False)
    assert np.abs(ref - ref[0]).max() > 5e-3  # inputs really move the answer (see sharpened_tiny_dir)
    onnx = OnnxBackend(exported, version="t", precision="onnx", max_length=64, batch_size=2)
    got = onnx.predict_texts(TEXTS)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    q = OnnxBackend(exported, version="t", precision="onnx-int8", max_length=64, batch_size=2)
    got8 = q.predict_texts(TEXTS)
    np.testing.assert_allclose(got8.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got8, ref, atol=0.05)
    assert (got8.argmax(axis=1) == ref.argmax(axis=1)).all()
    assert onnx.labels == LABELS


def test_missing_onnx_file_is_a_clear_error(tmp_path: Path) -> None:
    plain = make_tiny_classifier_dir(tmp_path, LABELS, seed=1)
    with pytest.raises(ModelLoadError, match="registered without an ONNX export"):
        OnnxBackend(plain, version="1", precision="onnx")


@pytest.mark.parametrize(
    ("measured", "expected"),
    [
        # int8 is fastest and within 0.005 -> int8
        ({"fp32": (0.900, 10), "onnx": (0.900, 6), "onnx-int8": (0.897, 3)}, "onnx-int8"),
        # int8 loses 0.006 > 0.005 -> next fastest that qualifies
        ({"fp32": (0.900, 10), "onnx": (0.900, 6), "onnx-int8": (0.894, 3)}, "onnx"),
        # exactly 0.005 loss still qualifies
        ({"fp32": (0.900, 10), "onnx-int8": (0.895, 3)}, "onnx-int8"),
        # a precision that scores higher but is slower than fp32 is not chosen
        ({"fp32": (0.900, 10), "bf16": (0.910, 12)}, "fp32"),
        # no fp32 reference -> no choice
        ({"onnx": (0.9, 1)}, None),
    ],
)
def test_choose_precision_obeys_the_loss_rule(measured: dict, expected: str | None) -> None:
    m = {p: {"macro_f1": f1, "ms_per_article": ms} for p, (f1, ms) in measured.items()}
    assert choose_precision(m, max_f1_loss=0.005) == expected
    assert parse_precision_tags(precision_tags(m)) == m


def _predictor(root: Path, name: str, cache: Path, **kw) -> Predictor:  # noqa: ANN003
    resolver = ChampionResolver(tracking_uri=tracking_uri_for(root), registered_model=name, cache_dir=cache)
    return Predictor(
        resolver=resolver, labels_cfg=LABELS_CFG, serving_cfg=serving_cfg(**kw), fallback=FixedFallback
    )


def test_predictor_serves_onnx_and_auto_reads_the_version_tags(tmp_path: Path) -> None:
    measured = {
        "fp32": {"macro_f1": 0.90, "ms_per_article": 10.0},
        "onnx": {"macro_f1": 0.90, "ms_per_article": 5.0},
        "onnx-int8": {"macro_f1": 0.85, "ms_per_article": 2.0},  # too lossy for auto
    }
    name = "onnx-news"
    v = register_tiny_version(tmp_path, name, LABELS, seed=4, with_onnx=True, tags=precision_tags(measured))
    uri = tracking_uri_for(tmp_path)
    set_champion(MlflowClient(tracking_uri=uri, registry_uri=uri), name, v, reason="onnx test")
    articles = [{"title": "Cup", "text": "The team won."}, {"text": "Shares fell sharply today."}]
    answers = {}
    for precision in ("fp32", "onnx", "onnx-int8", "auto"):
        p = _predictor(tmp_path, name, tmp_path / "cache", precision=precision)
        answers[precision] = p.predict(articles)
        if precision != "auto":
            assert p._backend.precision == precision  # noqa: SLF001
    # auto: int8 is refused by the quality rule and never timed; of the rest (timed here, the
    # tags' speeds are only a hint) the fastest serves.
    choice = p.precision_choice
    assert "onnx-int8" not in choice.measured_ms and "auto_max_f1_loss" in choice.not_used["onnx-int8"]
    assert {"fp32", "onnx"} <= set(choice.measured_ms)
    assert p._backend.precision == choice.precision == min(choice.measured_ms, key=choice.measured_ms.get)  # noqa: SLF001
    for a, b in zip(answers["fp32"], answers["onnx"], strict=True):
        assert a["label"] == b["label"]
        np.testing.assert_allclose(list(a["scores"].values()), list(b["scores"].values()), atol=1e-4)


def test_auto_without_tags_serves_torch(registry: dict, tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=registry["uri"], registry_uri=registry["uri"])
    set_champion(client, registry["name"], registry["versions"][0], reason="test")
    p = _predictor(registry["root"], registry["name"], tmp_path / "cache", precision="auto")
    # torch only (fp32, and bf16 where the CPU has it natively), whichever was faster here
    assert p._backend.precision in ("fp32", "bf16")  # noqa: SLF001
    assert set(p.precision_choice.measured_ms) <= {"fp32", "bf16"}
    assert p.precision_choice.not_used["fp16"] == "fp16 autocast is CUDA only"


def test_export_is_the_fused_graph_and_int8_leaves_embeddings_pooler_and_head_fp32(exported: Path) -> None:
    """ORT's BERT fusions and the attention fusions really ran on both graphs (the agreement with
    torch above, padded batches included, is checked on them), and int8 covers the encoder
    MatMuls only."""
    import onnx

    fp32 = onnx.load(str(onnx_path(exported, "onnx")), load_external_data=False)
    ops = [n.op_type for n in fp32.graph.node]
    assert "BiasGelu" in ops, sorted(set(ops))
    # every residual + LayerNorm is the standard ops again (split_skip_layer_norm), in both graphs:
    # two per layer plus the embeddings' own
    assert "SkipLayerNormalization" not in ops and ops.count("LayerNormalization") == 2 * 2 + 1
    # one fused Attention kernel per layer (the tiny model has two), and no per-call Concat of the
    # Q/K/V weights left in front of them
    assert ops.count("Attention") == 2, sorted(set(ops))
    inits = {i.name for i in fp32.graph.initializer}
    attention = [n for n in fp32.graph.node if n.op_type == "Attention"]
    assert all(n.input[1] in inits for n in attention), "the packed QKV weights are not constants"
    int8 = onnx.load(str(onnx_path(exported, "onnx-int8")), load_external_data=False)
    nodes = int8.graph.node
    ops8 = [n.op_type for n in nodes]
    # the int8 graph's attention core is one MultiHeadAttention per layer (the tiny model has two)
    # with Q, K and V left as MatMuls, so those are int8 as well: 6 MatMulIntegers per layer
    assert ops8.count("MultiHeadAttention") == 2, sorted(set(ops8))
    assert ops8.count("MatMulInteger") == 2 * 6, sorted(set(ops8))
    assert "Attention" not in ops8 and "QAttention" not in ops8
    assert "SkipLayerNormalization" not in ops8 and ops8.count("LayerNormalization") == 2 * 2 + 1
    quantized = {i for n in nodes for i in n.input if i.endswith("_quantized")}
    assert quantized, "no quantized weights in the int8 graph"
    assert not [q for q in quantized if "embeddings" in q or "pooler" in q or "classifier" in q], quantized
    fp32_head = [
        n for n in nodes if n.op_type in ("MatMul", "Gemm") and any("classifier." in i for i in n.input)
    ]
    assert fp32_head, "the classification head is missing from the int8 graph"


@pytest.mark.parametrize("bias", [True, False])
def test_split_skip_layer_norm_computes_what_the_fused_kernel_did(tmp_path: Path, bias: bool) -> None:
    """The split graph gives ORT's SkipLayerNormalization answer (bias + residual + LayerNorm), and
    the session does not fuse it back into the slow kernel."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from newsml_pipeline.core.serving.onnx_model import _session, split_skip_layer_norm

    rng = np.random.default_rng(0)
    hidden = 16
    weights = {n: rng.normal(size=hidden).astype(np.float32) for n in ("gamma", "beta", "bias")}
    inputs = ["x", "skip", "gamma", "beta"] + (["bias"] if bias else [])
    graph = helper.make_graph(
        [
            helper.make_node(
                "SkipLayerNormalization", inputs, ["y"], name="sln", domain="com.microsoft", epsilon=1e-5
            ),
            helper.make_node("Mul", ["y", "y"], ["out"]),  # a consumer downstream
        ],
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["b", "s", hidden]) for n in ("x", "skip")],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, n) for n, v in weights.items() if n != "bias" or bias],
    )
    path = tmp_path / "sln.onnx"
    onnx.save(
        helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
        ),
        str(path),
    )
    feeds = {n: rng.normal(size=(2, 3, hidden)).astype(np.float32) for n in ("x", "skip")}
    fused = _session(path, threads=1).run(None, feeds)[0]
    assert split_skip_layer_norm(path) == 1
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert "SkipLayerNormalization" not in ops and "LayerNormalization" in ops, ops
    session = _session(path, threads=1, profile_prefix=str(tmp_path / "profile"))
    np.testing.assert_allclose(session.run(None, feeds)[0], fused, rtol=1e-5, atol=1e-5)
    # the kernels that ran (ORT's profiler): ORT did not fuse the standard ops back at load
    events = json.loads(Path(session.end_profiling()).read_text())
    ran = {e["args"]["op_name"] for e in events if e.get("cat") == "Node" and "op_name" in e.get("args", {})}
    assert "LayerNormalization" in ran and "SkipLayerNormalization" not in ran, ran
    total = feeds["x"] + feeds["skip"] + (weights["bias"] if bias else 0)
    mean, var = total.mean(-1, keepdims=True), total.var(-1, keepdims=True)
    expected = ((total - mean) / np.sqrt(var + 1e-5) * weights["gamma"] + weights["beta"]) ** 2
    np.testing.assert_allclose(fused, expected, rtol=1e-4, atol=1e-4)
    assert split_skip_layer_norm(path) == 0  # nothing left to split
