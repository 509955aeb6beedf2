"""Pick the device, mixed precision and CPU thread count for training and inference.

`auto` means: CUDA when present (bf16 where the GPU supports it, else fp16), else the CPU with
bf16 autocast where it has native bf16 instructions (avx512_bf16 / AMX), else fp32.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psutil
import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cuda", "cpu" or "mps"
    precision: str  # "fp32", "bf16" or "fp16"
    threads: int  # torch intra-op threads (CPU)

    def describe(self) -> str:
        name = torch.cuda.get_device_name(0) if self.device == "cuda" else self.device
        return f"{name} ({self.precision}, {self.threads} threads)"


@cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 dot-product instructions, where bf16 autocast is fast."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return any(f in flags for f in (" avx512_bf16", " amx_bf16"))


def cuda_has_native_bf16() -> bool:
    """True when the GPU computes in bf16 natively (Ampere and later). Plain
    `is_bf16_supported()` also says yes where bf16 is only emulated (slow, e.g. on a T4), where
    fp16 with loss scaling is the right choice."""
    return bool(torch.cuda.is_bf16_supported(including_emulation=False))


def has_native_bf16(device_type: str) -> bool:
    """Whether bf16 autocast on `device_type` ("cpu", "cuda", ...) runs on native bf16 units.
    Emulated bf16 is slower than fp32 (4-5x measured on an AVX2-only CPU), so callers that were
    asked for bf16 fall back to fp32 where this is False."""
    if device_type == "cuda":
        return cuda_has_native_bf16()
    if device_type == "cpu":
        return cpu_has_native_bf16()
    return False


def available_cores() -> int:
    """Cores this process may use (respects CPU affinity / container limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def choose_device(
    device: str = "auto", precision: str = "auto", *, threads: int | None = None
) -> DeviceChoice:
    """Resolve config values into a concrete device; raises ValueError for an unavailable device."""
    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("training.device is 'cuda' but torch sees no CUDA device")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("training.device is 'mps' but torch sees no MPS device")
    if device not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or mps")
    if precision == "auto":
        if device == "cuda":
            precision = "bf16" if cuda_has_native_bf16() else "fp16"
        elif device == "cpu":
            # fp32 even where bf16 is native: bf16 training was 1.5x faster on an avx512_bf16 CPU
            # (bench/results/precision.json) and ~12 % on an AMX one, but never better and up to
            # 0.8 points worse (bench/learners.py full_ft vs full_ft_fp32), and on AMX a bf16
            # candidate missed the gate that its fp32 twin passed. bf16 stays one key away.
            precision = "fp32"
        else:
            precision = "fp32"
    if precision == "fp16" and device == "cpu":
        raise ValueError("fp16 training is not supported on CPU; use precision bf16 or fp32")
    n = threads or available_cores()
    return DeviceChoice(device=device, precision=precision, threads=n)


def apply_threads(choice: DeviceChoice) -> None:
    """Set torch's intra-op threads for CPU work (a no-op change when already equal)."""
    if choice.device == "cpu" and torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
        logger.info("torch threads set to %d", choice.threads)


class PeakMemory:
    """Peak memory while the block runs: CUDA allocator peak on GPU, sampled process RSS on CPU.

    Sampling (every `interval_s`) rather than ru_maxrss so that several trainings in one process
    (the benchmark) each get their own peak.
    """

    def __init__(self, device: str, *, interval_s: float = 0.2) -> None:
        self.device = device
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        proc = psutil.Process()
        while True:
            self.peak_mb = max(self.peak_mb, proc.memory_info().rss / 2**20)
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> PeakMemory:
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        else:
            self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
