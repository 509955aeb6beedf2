"""Which allowed precision is fastest on *this* machine: a short timed probe at start and reload.

The evaluation measured each precision's speed on the machine that trained, but serving runs
elsewhere: an AMX CPU runs bf16 several times faster than fp32, an AVX2 one runs it slower, a GPU
prefers fp16/bf16. So the serving process builds each allowed candidate, runs one warm-up and up
to `timed_passes` forward passes of a fixed probe batch, and serves the fastest (best pass: the
other work on a shared machine only ever adds time). The probe is bounded by `budget_s`: each
candidate gets an equal share of it for its timed passes (at least one), and a candidate not
reached within the budget is not timed (the speed hint from registration orders the candidates,
so the likely winners are timed first); the first candidate is always timed. On a slow machine
that is one warm-up and one timed pass each: a bigger model takes longer, never unboundedly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from newsml_pipeline.core.serving.precision import PRECISIONS

log = logging.getLogger(__name__)

# Fixed newsy text, so every probe on every machine runs the same token sequences.
_PROBE_WORDS = (
    "shares in the company rose sharply after it reported record profit for the year while the "
    "government said the economy grew faster than expected and the central bank kept interest "
    "rates on hold the team won the cup final after extra time and the minister announced a new "
    "policy on technology and broadband as the film festival opened with a premiere"
).split()


class _Scorer(Protocol):
    def predict_proba(self, titles: list[str | None], texts: list[str]) -> np.ndarray: ...


def probe_batch(n: int, *, max_length: int) -> tuple[list[str | None], list[str]]:
    """`n` fixed (title, text) pairs long enough to fill `max_length` tokens (served articles
    are mostly truncated at max_length, so that is the shape worth timing)."""
    words = len(_PROBE_WORDS)
    titles: list[str | None] = []
    texts: list[str] = []
    for i in range(n):
        rotated = _PROBE_WORDS[i % words :] + _PROBE_WORDS[: i % words]
        body = (rotated * (max_length // words + 1))[:max_length]
        titles.append(" ".join(rotated[:6]).capitalize())
        texts.append(" ".join(body) + ".")
    return titles, texts


@dataclass
class PrecisionChoice:
    """What serves and why: what /health, /metrics and `newsml status` show."""

    precision: str
    reason: str
    device: str
    measured_ms: dict[str, float] = field(default_factory=dict)  # ms/article on the probe, here
    hint_ms: dict[str, float] = field(default_factory=dict)  # ms/article from registration tags
    not_used: dict[str, str] = field(default_factory=dict)  # precision -> why it was not a candidate
    probe: str = ""
    probe_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ProbeResult:
    measured_ms: dict[str, float]
    not_used: dict[str, str]
    backends: dict[str, Any]
    seconds: float


def time_candidates(
    order: Sequence[str],
    build: Callable[[str], _Scorer],
    titles: list[str | None],
    texts: list[str],
    *,
    budget_s: float,
    timed_passes: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> ProbeResult:
    """Build and time each precision in `order`; ms per article of its best timed pass.

    A candidate that fails to build or to run is left out with the error as its reason (logged):
    the others can still serve. The budget is checked before each candidate and between passes.
    """
    t0 = clock()
    share = budget_s / max(1, len(order))
    measured: dict[str, float] = {}
    not_used: dict[str, str] = {}
    backends: dict[str, Any] = {}
    for i, precision in enumerate(order):
        if i > 0 and clock() - t0 >= budget_s:
            not_used[precision] = f"not timed: the probe budget of {budget_s:g}s was spent"
            continue
        try:
            began = clock()
            backend = build(precision)
            backend.predict_proba(titles, texts)  # warm-up: kernel choice, allocations, caches
            passes = []
            for _ in range(max(1, timed_passes)):
                start = clock()
                backend.predict_proba(titles, texts)
                passes.append(clock() - start)
                if clock() - began >= share or clock() - t0 >= budget_s:
                    break
        except Exception as e:  # a broken candidate must not stop the others from serving
            log.warning("precision %s could not be probed, leaving it out: %s", precision, e)
            not_used[precision] = f"failed on the probe: {type(e).__name__}: {e}"[:300]
            continue
        measured[precision] = round(min(passes) * 1000 / max(1, len(texts)), 4)
        backends[precision] = backend
    return ProbeResult(measured, not_used, backends, clock() - t0)


def fastest(measured_ms: Mapping[str, float]) -> str:
    """The precision with the lowest ms/article (ties: the order of PRECISIONS, fp32 first)."""
    if not measured_ms:
        raise ValueError("no precision was timed")
    return min(measured_ms, key=lambda p: (measured_ms[p], PRECISIONS.index(p) if p in PRECISIONS else 99))


def describe(measured_ms: Mapping[str, float], chosen: str) -> str:
    """`fastest measured here: bf16 2.10 ms/article (fp32 6.20, onnx 4.00)`."""
    others = ", ".join(
        f"{p} {ms:.2f}" for p, ms in sorted(measured_ms.items(), key=lambda x: x[1]) if p != chosen
    )
    return f"fastest measured here: {chosen} {measured_ms[chosen]:.2f} ms/article" + (
        f" ({others})" if others else " (the only allowed candidate)"
    )
