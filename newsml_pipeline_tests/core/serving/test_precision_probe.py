"""serving.precision auto: the precision is chosen where the model serves, by timing it there.

The hardware cases (CPU without AVX-512, CPU with AMX / avx512_bf16, CUDA) are faked by
monkeypatching what the predictor asks the hardware, and which candidate is fastest by slowing
the others down with a sleep, so the tests say what is chosen and why on any machine.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from newsml_pipeline.core.registry.aliases import set_champion
from newsml_pipeline.core.serving import predictor as predictor_mod
from newsml_pipeline.core.serving.precision import allowed_precisions, hardware_candidates, precision_tags
from newsml_pipeline.core.serving.predictor import ChampionResolver, Predictor, TransformerBackend
from newsml_pipeline.core.serving.probe import fastest, probe_batch, time_candidates
from newsml_pipeline.core.training import device as device_info
from newsml_pipeline_tests.core.serving.conftest import LABELS, LABELS_CFG, FixedFallback, serving_cfg
from newsml_pipeline_tests.core.serving.registry_helpers import register_tiny_version, tracking_uri_for

ARTICLES = [{"title": "Cup", "text": "The team won the final."}, {"text": "Shares fell sharply today."}]


def _tags(**f1_ms: tuple[float, float]) -> dict[str, str]:
    return precision_tags(
        {p.replace("_", "-"): {"macro_f1": f1, "ms_per_article": ms} for p, (f1, ms) in f1_ms.items()}
    )


def _deploy(root: Path, name: str, tags: dict[str, str] | None) -> None:
    v = register_tiny_version(root, name, LABELS, seed=5, tags=tags)
    uri = tracking_uri_for(root)
    set_champion(MlflowClient(tracking_uri=uri, registry_uri=uri), name, v, reason="probe test")


def _predictor(root: Path, name: str, **kw) -> Predictor:  # noqa: ANN003
    device = kw.pop("device", None)
    resolver = ChampionResolver(
        tracking_uri=tracking_uri_for(root), registered_model=name, cache_dir=root / "cache"
    )
    return Predictor(
        resolver=resolver,
        labels_cfg=LABELS_CFG,
        serving_cfg=serving_cfg(precision="auto", **kw),
        fallback=FixedFallback,
        device=device,
        max_length=32,
    )


def _slow_down(monkeypatch: pytest.MonkeyPatch, delays: dict[str, float]) -> list[str]:
    """Torch predict_proba sleeps delays[precision] and answers uniform scores instead of running
    the model (whose real bf16-vs-fp32 speed depends on the machine); returns the precisions called."""
    calls: list[str] = []

    def slowed(self: TransformerBackend, titles: list, texts: list) -> np.ndarray:
        calls.append(self.precision)
        time.sleep(delays.get(self.precision, 0.0))
        return np.full((len(texts), len(LABELS)), 1 / len(LABELS))

    monkeypatch.setattr(TransformerBackend, "predict_proba", slowed)
    return calls


# ---------------------------------------------------------------- the rules, pure


def test_hardware_candidates_per_machine_kind() -> None:
    avx2, why = hardware_candidates(device="cpu", native_bf16=False, onnx_available=["onnx", "onnx-int8"])
    assert avx2 == ["fp32", "onnx", "onnx-int8"] and "no native bf16" in why["bf16"]
    amx, _ = hardware_candidates(device="cpu", native_bf16=True, onnx_available=["onnx-int8"])
    assert amx == ["fp32", "bf16", "onnx-int8"]
    cuda, why = hardware_candidates(device="cuda", native_bf16=True, onnx_available=["onnx", "onnx-int8"])
    assert cuda == ["fp32", "bf16", "fp16"] and "CPU execution provider" in why["onnx"]
    t4, _ = hardware_candidates(device="cuda", native_bf16=False)
    assert t4 == ["fp32", "fp16"]


def test_quality_rule_decides_what_is_allowed() -> None:
    measured = {
        "fp32": {"macro_f1": 0.90, "ms_per_article": 9.0},
        "bf16": {"macro_f1": 0.896, "ms_per_article": 99.0},  # slow where registered: still allowed
        "onnx-int8": {"macro_f1": 0.89, "ms_per_article": 1.0},  # fast but loses 0.01 > 0.005
    }
    allowed, why = allowed_precisions(["fp32", "bf16", "fp16", "onnx-int8"], measured, max_f1_loss=0.005)
    assert allowed == ["fp32", "bf16"]
    assert "auto_max_f1_loss" in why["onnx-int8"] and "did not score" in why["fp16"]
    # no tags at all: the torch precisions, as before the tags existed
    allowed, why = allowed_precisions(["fp32", "bf16", "onnx"], {}, max_f1_loss=0.005)
    assert allowed == ["fp32", "bf16"] and "no per-precision evaluation tags" in why["onnx"]


class _Sleeper:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def predict_proba(self, titles: list, texts: list) -> np.ndarray:
        time.sleep(self.seconds)
        return np.zeros((len(texts), 2))


def test_probe_times_candidates_and_is_bounded_by_its_budget() -> None:
    titles, texts = probe_batch(4, max_length=16)
    r = time_candidates(
        ["fp32", "bf16"], {"fp32": _Sleeper(0.03), "bf16": _Sleeper(0.0)}.get, titles, texts, budget_s=5
    )
    assert fastest(r.measured_ms) == "bf16" and r.measured_ms["fp32"] >= 30 / 4 * 0.9

    def build(p: str) -> _Sleeper:
        if p == "onnx":
            raise RuntimeError("broken session")
        return _Sleeper(0.2)

    t0 = time.perf_counter()
    r = time_candidates(["fp32", "onnx", "bf16", "fp16"], build, titles, texts, budget_s=0.3)
    took = time.perf_counter() - t0
    # fp32 is always timed (warm-up + at least one pass), then the budget is spent: nothing else runs
    assert list(r.measured_ms) == ["fp32"] and took < 0.3 + 0.2 + 0.2
    assert "broken session" in r.not_used["onnx"] or "budget" in r.not_used["onnx"]
    assert "budget" in r.not_used["bf16"] and "budget" in r.not_used["fp16"]


def test_probe_batch_is_fixed_and_fills_max_length() -> None:
    assert probe_batch(3, max_length=64) == probe_batch(3, max_length=64)
    titles, texts = probe_batch(3, max_length=64)
    assert len(texts) == 3 and all(len(t.split()) >= 64 for t in texts) and len(set(texts)) == 3


# ---------------------------------------------------------------- the predictor, faked hardware


def test_amx_like_cpu_serves_bf16_when_it_measures_fastest_although_the_tags_say_fp32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registration machine found bf16 slow (hint 50 ms vs 5 ms); here it is the fastest."""
    monkeypatch.setattr(device_info, "has_native_bf16", lambda device_type: True)
    calls = _slow_down(monkeypatch, {"fp32": 0.04})
    _deploy(tmp_path, "amx", _tags(fp32=(0.90, 5.0), bf16=(0.899, 50.0)))
    p = _predictor(tmp_path, "amx")
    choice = p.precision_choice
    assert choice is not None and choice.precision == "bf16" and p._backend.precision == "bf16"  # noqa: SLF001
    assert (
        set(choice.measured_ms) == {"fp32", "bf16"}
        and choice.measured_ms["fp32"] > choice.measured_ms["bf16"]
    )
    assert choice.hint_ms == {"fp32": 5.0, "bf16": 50.0}
    assert calls[0] == "fp32"  # the hint orders the probe: fp32 first
    assert "fastest measured here: bf16" in choice.reason
    health = p.health()
    assert (
        health["precision"]["precision"] == "bf16"
        and health["precision"]["measured_ms"] == choice.measured_ms
    )
    assert [a["model_version"] for a in p.predict(ARTICLES)] == [p.model_version] * 2


def test_cpu_without_avx512_never_times_emulated_bf16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(device_info, "has_native_bf16", lambda device_type: False)
    calls = _slow_down(monkeypatch, {})
    _deploy(tmp_path, "avx2", _tags(fp32=(0.90, 5.0), bf16=(0.90, 1.0)))
    p = _predictor(tmp_path, "avx2")
    assert p.precision_choice.precision == "fp32" and "bf16" not in calls
    assert "no native bf16" in p.precision_choice.not_used["bf16"]


def test_a_precision_the_quality_rule_refuses_is_never_timed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(device_info, "has_native_bf16", lambda device_type: True)
    calls = _slow_down(monkeypatch, {"fp32": 0.04})  # bf16 would win the probe ...
    _deploy(tmp_path, "lossy", _tags(fp32=(0.90, 5.0), bf16=(0.88, 1.0)))  # ... but loses 0.02 macro-F1
    p = _predictor(tmp_path, "lossy")
    assert p.precision_choice.precision == "fp32" and "bf16" not in calls
    assert "auto_max_f1_loss" in p.precision_choice.not_used["bf16"]


class _FakeCudaBackend:
    """Stands in for TransformerBackend on a CUDA device (this machine has none): fp16 is fast."""

    built: list[tuple[str | None, str]] = []

    def __init__(
        self, model_dir: Path, *, version: str, device: str | None, precision: str, **_: object
    ) -> None:
        self.version, self.device, self.precision, self.labels = version, device, precision, list(LABELS)
        _FakeCudaBackend.built.append((device, precision))

    def with_precision(self, precision: str) -> _FakeCudaBackend:
        twin = object.__new__(_FakeCudaBackend)
        twin.__dict__.update(self.__dict__, precision=precision)
        return twin

    def predict_proba(self, titles: list, texts: list) -> np.ndarray:
        time.sleep({"fp32": 0.03, "fp16": 0.0}[self.precision])
        return np.full((len(texts), len(LABELS)), 1 / len(LABELS))


def test_cuda_times_fp16_and_fp32_and_leaves_onnx_and_emulated_bf16_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GPU without native bf16 (T4-like): the candidates are fp32 and fp16, loaded once on cuda."""
    monkeypatch.setattr(predictor_mod, "TransformerBackend", _FakeCudaBackend)
    monkeypatch.setattr(device_info, "has_native_bf16", lambda device_type: device_type != "cuda")
    _FakeCudaBackend.built.clear()
    _deploy(tmp_path, "gpu", None)  # no evaluation tags: the torch precisions are allowed
    p = _predictor(tmp_path, "gpu", device="cuda")
    choice = p.precision_choice
    assert (
        choice.device == "cuda" and choice.precision == "fp16" and set(choice.measured_ms) == {"fp32", "fp16"}
    )
    assert _FakeCudaBackend.built == [("cuda", "fp32")]  # one load, the other precision shares it
    assert "no native bf16 on this cuda" in choice.not_used["bf16"]
    assert "CPU execution provider" in choice.not_used["onnx"]


def test_fp16_autocast_is_refused_on_cpu(tmp_path: Path) -> None:
    from newsml_pipeline.core.training.model_io import load_classifier, predict_proba
    from testkit.tiny_models import make_tiny_classifier_dir

    model, tok, _ = load_classifier(make_tiny_classifier_dir(tmp_path, LABELS, seed=1), device="cpu")
    with pytest.raises(ValueError, match="CUDA only"):
        predict_proba(model, tok, ["text"], device="cpu", fp16=True)
