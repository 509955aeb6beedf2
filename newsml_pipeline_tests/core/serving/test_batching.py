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


def test_queue_deadline_sheds_fast_instead_of_letting_the_queue_grow() -> None:
    """20 one-article requests at once, 0.1 s per forward pass, a 0.25 s deadline: without the
    deadline the last one waits ~2 s; with it nobody waits much past the deadline, the late ones
    get Overloaded (503 upstream), and once the rate is known new arrivals are refused at once."""
    from newsml_pipeline.core.serving.batching import Overloaded

    rec = Recorder(delay_s=0.1)
    shed: list[str] = []

    async def timed(batcher: MicroBatcher, i: int) -> tuple[float, object]:
        t0 = time.perf_counter()
        try:
            out: object = await batcher.submit([{"text": str(i)}])
        except Overloaded as e:
            out = e
        return time.perf_counter() - t0, out

    async def main() -> tuple[list, list]:
        batcher = MicroBatcher(rec, window_s=0.0, max_articles=1, deadline_s=0.25, on_shed=shed.append)
        batcher.start()
        try:
            first = await asyncio.gather(*(timed(batcher, i) for i in range(20)))
            # now the rate is known: a burst is refused on arrival beyond what fits the deadline
            second = await asyncio.gather(*(timed(batcher, 100 + i) for i in range(6)))
        finally:
            await batcher.stop()
        return first, second

    first, second = asyncio.run(main())
    served = [t for t, out in first if not isinstance(out, Overloaded)]
    refused = [out for _, out in first if isinstance(out, Overloaded)]
    assert 2 <= len(served) <= 5 and len(refused) == 20 - len(served)
    assert max(t for t, _ in first) < 0.25 + 0.1 + 0.15  # deadline + one pass + slack, never ~2 s
    assert {e.reason for e in refused} == {"expired"}
    admitted = [t for t, out in second if not isinstance(out, Overloaded)]
    at_once = [(t, out) for t, out in second if isinstance(out, Overloaded)]
    assert admitted and at_once and all(out.reason == "admission" for _, out in at_once)
    assert all(t < 0.05 for t, _ in at_once)  # refused on arrival, not after queueing
    assert all(out.retry_after_s > 0 for _, out in at_once)
    assert len(shed) == len(refused) + len(at_once)
    assert sum(rec.calls) == len(served) + len(admitted)


def test_no_deadline_means_no_shedding() -> None:
    rec = Recorder(delay_s=0.02)

    async def main() -> list:
        batcher = MicroBatcher(rec, window_s=0.0, max_articles=1, deadline_s=0.0)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit([{"text": str(i)}]) for i in range(10)))
        finally:
            await batcher.stop()

    assert len(asyncio.run(main())) == 10 and sum(rec.calls) == 10
