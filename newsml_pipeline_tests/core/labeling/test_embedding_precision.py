"""`labels.embedding_bf16` asks for bf16; the embedder takes it only where bf16 is native."""

from __future__ import annotations

import numpy as np
import pytest

from newsml_pipeline.core.labeling import nlp_cache
from newsml_pipeline.core.labeling.functions import zero_shot
from newsml_pipeline.core.training import device

TEXTS = ["Senate passes the budget bill", "Striker scores twice in the cup final", "Chip maker shares jump"]


@pytest.fixture(scope="module")
def model():
    return nlp_cache.sentence_model(None)


def test_bf16_request_falls_back_to_fp32_where_bf16_is_emulated(model, monkeypatch) -> None:
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    fp32 = zero_shot.embed(TEXTS, model=model, bf16=False)
    asked = zero_shot.embed(TEXTS, model=model, bf16=True)
    np.testing.assert_array_equal(asked, fp32)


def test_bf16_request_is_taken_where_the_cpu_has_native_bf16(model, monkeypatch) -> None:
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    fp32 = zero_shot.embed(TEXTS, model=model, bf16=False)
    bf16 = zero_shot.embed(TEXTS, model=model, bf16=True)
    # bf16 rounding changes the numbers, not the meaning
    assert not np.array_equal(bf16, fp32)
    np.testing.assert_allclose(bf16, fp32, atol=0.05)


def test_native_bf16_check_per_device_type(monkeypatch) -> None:
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(device, "cuda_has_native_bf16", lambda: False)
    assert device.has_native_bf16("cpu") is True
    assert device.has_native_bf16("cuda") is False
    assert device.has_native_bf16("mps") is False
