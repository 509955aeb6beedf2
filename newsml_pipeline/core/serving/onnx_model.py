"""The merged classifier as ONNX (fp32 and int8-dynamic) and an ONNX Runtime backend that serves it.

Export happens once, at registration: the files go into the classifier directory under `onnx/`,
so they travel with the model version's artifacts and every consumer of that version (the
Predictor, `mlflow models serve`, the evaluation) sees the same bytes. The graph takes
`input_ids` and `attention_mask` (batch x sequence, both dynamic) and returns `logits`;
token_type_ids are all zeros for one-segment input, which is what BERT assumes without them.

The fp32 graph is passed through ONNX Runtime's transformer optimizer for BERT (LayerNorm +
residual -> SkipLayerNormalization, bias + GELU -> BiasGelu; python fusions only, so the file
does not depend on the CPU it was written on), then each layer's attention subgraph becomes one
`Attention` kernel (onnxscript's ORT fusions, `fuse_attention`): single-article p50 29.6 -> 17.9
ms and batched 40.2 -> 60.6 articles/s on 2 AVX-512 cores at 128 tokens
(bench/results/onnx_graphs.json). Last, each SkipLayerNormalization is split back into standard
ops, which ONNX Runtime's CPU kernels run faster (`split_skip_layer_norm`). It is checked against
torch after all of it.

int8 is `onnxruntime.quantization.quantize_dynamic` of the fused graph (weights int8 per output
channel, activations quantized per batch at run time, no calibration data) of a copy whose
attention core is one MultiHeadAttention kernel per layer (Q, K, V stay MatMuls, so they are
int8 too): single 13.9 -> 13.1 ms, batched 74.8 -> 87.6 articles/s there (12.7 ms and 92.8
after the split). It is restricted to the encoder's MatMuls: the embedding tables, the pooler and
the classification head stay fp32 (they cost almost nothing and int8 there costs accuracy).
Weights use 7 bits (`reduce_range`): on x86 CPUs without VNNI the u8 x s8 kernels can saturate their 16-bit intermediates with full 8-bit
weights, which on the BBC benchmark cost 0.02 macro-F1; with 7-bit per-channel weights the loss
was within noise (bench/results/serve*.json).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from newsml_pipeline.core.training.inputs import format_input

log = logging.getLogger(__name__)

ONNX_DIR = "onnx"
ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model.int8.onnx"
ONNX_PRECISIONS = {"onnx": ONNX_FP32, "onnx-int8": ONNX_INT8}
OPSET = 18


class OnnxExportError(RuntimeError):
    """The classifier could not be exported / quantized, or the export disagrees with torch."""


@dataclass(frozen=True)
class OnnxFiles:
    fp32: Path
    int8: Path
    max_abs_diff: float  # largest |probability difference| of the fp32 export vs torch on a probe batch
    fused: dict[str, int]  # fused operator -> count in the fp32 graph (empty: the optimizer failed)


def onnx_path(model_dir: str | Path, precision: str) -> Path:
    """Where `precision` (onnx / onnx-int8) lives inside a classifier directory."""
    if precision not in ONNX_PRECISIONS:
        raise ValueError(f"not an ONNX precision: {precision!r}; use one of {sorted(ONNX_PRECISIONS)}")
    return Path(model_dir) / ONNX_DIR / ONNX_PRECISIONS[precision]


def export_onnx(model_dir: str | Path, *, tolerance: float = 1e-3) -> OnnxFiles:
    """Write `<model_dir>/onnx/model.onnx` and `model.int8.onnx`; check fp32 against torch.

    Uses the torch.export-based exporter (`dynamo=True`): the legacy TorchScript tracer bakes the
    attention-mask construction of transformers 5 into constants and gives wrong answers.
    Raises OnnxExportError when the fp32 graph's probabilities differ from torch by > tolerance.
    """
    import torch

    from newsml_pipeline.core.training.model_io import load_classifier

    model_dir = Path(model_dir)
    out_dir = model_dir / ONNX_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model, tokenizer, _ = load_classifier(model_dir, device="cpu")
    model.float().eval()

    class _Logits(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    probe = tokenizer(
        ["A probe article about markets and shares.", "Short one.", "The team won the cup final " * 4],
        padding=True,
        return_tensors="pt",
    )
    wrapper = _Logits(model).eval()
    args = (probe["input_ids"], probe["attention_mask"])
    with torch.inference_mode():
        ref = torch.softmax(wrapper(*args), dim=-1).numpy()
    batch, seq = torch.export.Dim("batch", min=1), torch.export.Dim("seq", min=2)
    fp32 = out_dir / ONNX_FP32
    try:
        torch.onnx.export(
            wrapper,
            args,
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,  # its progress lines went to stdout, into `newsml demo`'s summary
        )
    except Exception as e:
        raise OnnxExportError(f"ONNX export of {model_dir} failed: {e}") from e
    fused = optimize_bert_graph(
        fp32, num_heads=int(model.config.num_attention_heads), hidden_size=int(model.config.hidden_size)
    )
    int8 = out_dir / ONNX_INT8
    # int8 is quantized from its own copy, whose attention core is fused with Q, K, V left as
    # MatMuls (see fuse_attention); then the fp32 graph gets the packed Attention.
    int8_source = out_dir / "model.int8-source.onnx"
    shutil.copyfile(fp32, int8_source)
    try:
        fused_int8 = fuse_attention(int8_source, pack_qkv=False)
        quantize_int8(int8_source, int8)
    finally:
        int8_source.unlink(missing_ok=True)
    fused |= fuse_attention(fp32)
    for path in (fp32, int8):
        split = split_skip_layer_norm(path)
        if split:
            fused[f"SkipLayerNormalization split ({path.name})"] = split
    session = _session(fp32, threads=None)
    got = _softmax(session.run(None, {"input_ids": args[0].numpy(), "attention_mask": args[1].numpy()})[0])
    diff = float(np.abs(got - ref).max())
    if diff > tolerance:
        raise OnnxExportError(
            f"ONNX export of {model_dir} disagrees with torch: max |p diff| {diff:.2e} > {tolerance}"
        )
    log.info(
        "exported %s to ONNX (fp32 %.1f MB, int8 %.1f MB, max |p diff| vs torch %.1e, fused %s, "
        "int8 graph fused %s) in %.1fs",
        model_dir,
        fp32.stat().st_size / 1e6,
        int8.stat().st_size / 1e6,
        diff,
        fused or "nothing",
        fused_int8 or "nothing",
        time.perf_counter() - t0,
    )
    return OnnxFiles(fp32=fp32, int8=int8, max_abs_diff=diff, fused=fused)


def quantize_int8(source: Path, target: Path) -> None:
    """The export's int8 recipe: dynamic quantization of `source`'s encoder MatMuls (per-channel
    7-bit weights; the pooler and the head stay fp32) written to `target`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=_head_nodes(source),
    )


def _head_nodes(path: Path) -> list[str]:
    """Names of the nodes that use the pooler's or the classification head's weights (kept fp32).

    The quantizer first rewrites a Gemm `X` as MatMul `X_MatMul` + Add, so both names are listed.
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    head = {i.name for i in graph.initializer if ".pooler." in i.name or "classifier." in i.name}
    nodes = [n for n in graph.node if n.op_type in ("MatMul", "Gemm") and head & set(n.input)]
    return [name for n in nodes for name in (n.name, f"{n.name}_MatMul")]


def optimize_bert_graph(path: Path, *, num_heads: int, hidden_size: int) -> dict[str, int]:
    """Rewrite the BERT graph at `path` in place with ORT's transformer fusions; {op: count} fused.

    opt_level=0 = the python fusions only (no ORT-level rewrites baked in for this CPU: the
    session applies those itself at load). A graph the optimizer cannot handle is kept as exported
    (correct, only slower) and the warning says why; the caller checks the result against torch.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    try:
        optimized = optimize_model(
            str(path), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=0
        )
        stats = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
        optimized.save_model_to_file(str(path))
    except Exception as e:  # a new exporter's graph the fusions do not know: keep the plain export
        log.warning("ONNX Runtime's BERT optimizer failed on %s, keeping the unfused graph: %s", path, e)
        return {}
    return stats


def split_skip_layer_norm(path: Path) -> int:
    """Rewrite each com.microsoft SkipLayerNormalization at `path` (in place) as the standard
    Add (bias) + Add (residual) + LayerNormalization; the number rewritten.

    The fusions above produce it, but ONNX Runtime's CPU kernel for it is the slow way to compute
    it: on 2 AVX-512 cores at 32 x 128 x 384 it took 5.4 ms against 1.9-2.1 ms for the standard
    ops (17 % of an int8 forward in bench/onnx_graphs.py's profile, which times the graph both ways). The session
    disables ORT's SkipLayerNormFusion so that it does not put the slow kernel back at load.
    A node whose mean / inv-std outputs are used is left as it is."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 17:  # LayerNormalization is a standard op from opset 17
        return 0
    graph = model.graph
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    nodes: list[Any] = []
    split = 0
    for node in graph.node:
        outputs = list(node.output) + [""] * (4 - len(node.output))
        if (
            node.op_type != "SkipLayerNormalization"
            or node.domain != "com.microsoft"
            or any(o and o in used for o in outputs[1:3])
        ):
            nodes.append(node)
            continue
        inputs = list(node.input) + [""] * (5 - len(node.input))
        x, skip, gamma, beta, bias = inputs[:5]
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-12)
        base = node.name or f"SkipLayerNorm_{split}"
        if bias:
            nodes.append(helper.make_node("Add", [x, bias], [f"{base}/biased"], name=f"{base}/add_bias"))
            x = f"{base}/biased"
        total = outputs[3] or f"{base}/sum"
        nodes.append(helper.make_node("Add", [x, skip], [total], name=f"{base}/add_skip"))
        nodes.append(
            helper.make_node(
                "LayerNormalization",
                [total, gamma, beta] if beta else [total, gamma],
                [outputs[0]],
                name=f"{base}/layer_norm",
                axis=-1,
                epsilon=eps,
            )
        )
        split += 1
    if split:
        del graph.node[:]
        graph.node.extend(nodes)
        onnx.save(model, str(path))
    return split


def fuse_attention(path: Path, *, pack_qkv: bool = True) -> dict[str, int]:
    """Rewrite each layer's attention subgraph at `path` in place with onnxscript's ORT fusions,
    which know the torch.export graph (ORT's own BERT optimizer above does not match it): one
    kernel instead of ~20 small ops per layer. {op: n} fused, or {} (the graph is kept as it was,
    correct and slower) when the rewrite does not apply.

    pack_qkv=True (the fp32 graph): com.microsoft `Attention`, the Q, K and V projections packed
    into one GEMM whose weights are concatenated once here rather than at every call.
    pack_qkv=False (the graph int8 is quantized from): `MultiHeadAttention` over the separate Q, K
    and V MatMuls, so the quantizer makes int8 kernels of exactly the MatMuls it did before the
    fusion (a packed `Attention` it would keep in fp32, or turn into QAttention)."""
    import onnx_ir as ir
    from onnxscript.optimizer import fold_constants

    quiet = [logging.getLogger(n) for n in ("onnxscript", "onnx_ir")]
    levels = [q.level for q in quiet]
    for q in quiet:  # one INFO line per folded constant otherwise, into every training run's log
        q.setLevel(logging.WARNING)
    op = "Attention" if pack_qkv else "MultiHeadAttention"
    try:
        model = ir.load(str(path))
        if pack_qkv:
            from onnxscript.rewriter.ort_fusions import optimize_for_ort

            model, stats = optimize_for_ort(model)
            n = int(stats.get("attention", 0))
        else:
            n = _fuse_mha_core(model)
        if n:
            fold_constants(model, input_size_limit=1 << 24, output_size_limit=1 << 24)
            ir.save(model, str(path))
    except Exception as e:  # an exporter's graph the rules do not know: keep the unfused one
        log.warning("%s fusion failed on %s, keeping the unfused graph: %s", op, path, e)
        return {}
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)
    return {op: n} if n else {}


def _fuse_mha_core(model: Any) -> int:
    """onnxscript's `fuse_xformers` up to MultiHeadAttention (scaled dot-product attention, then
    MHA), without its bias and QKV-packing steps; the MultiHeadAttention nodes made."""
    import onnx_ir as ir
    from onnx_ir.passes import common as common_passes
    from onnxscript.optimizer import optimize
    from onnxscript.rewriter import rewrite
    from onnxscript.rewriter.ort_fusions import ORT_PATTERN_REWRITE_RULES, shape_optimization
    from onnxscript.rewriter.ort_fusions.mha import fuse_mha1, fuse_mha2
    from onnxscript.rewriter.ort_fusions.sdpa import fuse_sdpa

    common_passes.ShapeInferencePass()(model)
    optimize(model)
    shape_optimization.rules.apply_to_model(model)
    optimize(model)
    if not fuse_sdpa(model, apply_shape_inference=True):
        return 0
    n = fuse_mha1(model) + fuse_mha2(model)
    optimize(model)
    rewrite(model, ORT_PATTERN_REWRITE_RULES)
    ir.passes.Sequential(
        common_passes.LiftConstantsToInitializersPass(lift_all_constants=False, size_limit=1),
        common_passes.RemoveInitializersFromInputsPass(),
        common_passes.ShapeInferencePass(),
    )(model)
    return int(n)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float32) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _session(path: Path, *, threads: int | None, profile_prefix: str | None = None) -> Any:
    """The serving session; `profile_prefix`: ONNX Runtime's per-node profiler on (benchmarks)."""
    import onnxruntime as ort

    from newsml_pipeline.core.training.device import available_cores

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or available_cores()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Worker threads sleep between runs instead of spinning: on a small machine a spinning pool
    # takes the cores from the event loop and the tokenizer (measured: single-article p50 -30%
    # on 2 busy cores, batched throughput up too).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    # split_skip_layer_norm's standard ops stay standard: ORT's fused kernel is slower on CPU.
    return ort.InferenceSession(
        str(path),
        sess_options=opts,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=["SkipLayerNormFusion"],
    )


class OnnxBackend:
    """ONNX Runtime over `<model_dir>/onnx/<file>`; the same tokenizer, input text and sorting by
    length as the torch backend, so answers differ only by numerics."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        version: str,
        precision: str = "onnx",
        max_length: int = 256,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> None:
        from transformers import AutoConfig, AutoTokenizer

        from newsml_pipeline.core.training.model_io import read_labels

        self.model_dir = Path(model_dir)
        self.version = version
        self.precision = precision
        self.max_length = max_length
        self.batch_size = batch_size
        path = onnx_path(self.model_dir, precision)
        if not path.exists():
            from newsml_pipeline.core.serving.predictor import ModelLoadError

            raise ModelLoadError(
                f"serving.precision={precision} but {path} does not exist: this model version was "
                "registered without an ONNX export; use fp32/bf16 or re-register it"
            )
        t0 = time.perf_counter()
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.labels = read_labels(self.model_dir, AutoConfig.from_pretrained(self.model_dir))
        self.session = _session(path, threads=threads)
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        log.info("loaded %s (%s) in %.1fs", path, version, time.perf_counter() - t0)

    def predict_texts(self, texts: list[str]) -> np.ndarray:
        """[n, k] probabilities for already formatted model inputs, rows in input order."""
        n_classes = len(self.labels)
        if not texts:
            return np.zeros((0, n_classes), dtype=np.float32)
        clipped = [(t or "")[: self.max_length * 12] for t in texts]
        ids = self.tokenizer(clipped, truncation=True, max_length=self.max_length, padding=False)["input_ids"]
        order = np.argsort([len(x) for x in ids], kind="stable")[::-1]
        out = np.empty((len(texts), n_classes), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            width = max(len(ids[i]) for i in idx)
            input_ids = np.full((len(idx), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                input_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            logits = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
            out[idx] = _softmax(logits)
        return out

    def predict_proba(self, titles: list[str | None], texts: list[str]) -> np.ndarray:
        return self.predict_texts([format_input(t, x) for t, x in zip(titles, texts, strict=True)])
