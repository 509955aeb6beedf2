"""MicroBatcher: a lone request runs at once (never waits the window); concurrent ones share a pass."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from newsml_pipeline.core.serving.batching import MicroBatcher


class Recorder:
    """predict_fn that answers each record with its own text and records the batch sizes."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        time.sleep(self.delay_s)
        with self.lock:
            self.calls.append(len(records))
        return [{"echo": r["text"]} for r in records]


def test_a_lone_request_is_not_delayed_by_the_window() -> None:
    rec = Recorder()

    async def main() -> float:
        batcher = MicroBatcher(rec, window_s=2.0, max_articles=32)
        batcher.start()
        try:
            await batcher.submit([{"text": "warm-up"}])
            t0 = time.perf_counter()
            answer = await batcher.submit([{"text": "alone"}])
            elapsed = time.perf_counter() - t0
        finally:
            await batcher.stop()
        assert answer == [{"echo": "alone"}]
        return elapsed

    elapsed = asyncio.run(main())
    assert elapsed < 0.5, f"a lone request waited {elapsed:.3f}s with a 2 s window"
    assert rec.calls == [1, 1]


def test_concurrent_requests_share_a_forward_pass_in_order() -> None:
    rec = Recorder(delay_s=0.2)

    async def main() -> list[list[dict[str, Any]]]:
        batcher = MicroBatcher(rec, window_s=0.05, max_articles=32)
        batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit([{"text": "first"}]))
            await asyncio.sleep(0.05)  # the first pass is running; these queue behind it
            rest = await asyncio.gather(*(batcher.submit([{"text": f"t{i}"}]) for i in range(10)))
            return [await first, *rest]
        finally:
            await batcher.stop()

    answers = asyncio.run(main())
    assert answers[0] == [{"echo": "first"}]
    assert [a[0]["echo"] for a in answers[1:]] == [f"t{i}" for i in range(10)]
    assert rec.calls == [1, 10], rec.calls


def test_max_articles_splits_batches_without_losing_a_request() -> None:
    rec = Recorder(delay_s=0.1)

    async def main() -> list[list[dict[str, Any]]]:
        batcher = MicroBatcher(rec, window_s=0.0, max_articles=4)
        batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit([{"text": "first"}]))
            await asyncio.sleep(0.03)
            rest = await asyncio.gather(*(batcher.submit([{"text": f"t{i}"}] * 3) for i in range(3)))
            return [await first, *rest]
        finally:
            await batcher.stop()

    answers = asyncio.run(main())
    assert [len(a) for a in answers] == [1, 3, 3, 3]
    assert rec.calls == [1, 3, 3, 3], rec.calls
