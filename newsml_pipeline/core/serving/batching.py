"""Micro-batching: concurrent requests that arrive within a short window share one forward pass.

A transformer on a CPU answers 16 articles in far less than 16 times one article's time, so under
load the server gathers whatever is queued (up to `max_articles`) and runs a single `predict` in
one inference thread; each request gets its own slice of the answers back.

Batches form by themselves: while one forward pass runs, the requests that arrive queue up and
the next pass takes them all. So a lone request is never held back: it runs as soon as it is
read. `window_s` only applies when other requests are already queued beside the first one (traffic
is concurrent): then the batcher waits up to that long for their stragglers.

Under more load than the model can answer, the queue would grow without bound and every request
would wait longer than any client does. With `deadline_s` > 0 the batcher sheds instead
(`Overloaded`, a 503 with Retry-After upstream): a request whose estimated wait (the running
batch's remaining time + the batches queued ahead x the recent seconds per batch) is over the
deadline is refused at once, and one that has queued past the deadline when its turn comes
is refused rather than run late. So a client hears back within about deadline + one batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

PredictFn = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


class Overloaded(RuntimeError):
    """The request would wait past the queue deadline: answer 503 with Retry-After."""

    def __init__(self, reason: str, *, retry_after_s: float, message: str) -> None:
        self.reason = reason  # "admission" (refused on arrival) or "expired" (queued too long)
        self.retry_after_s = retry_after_s
        super().__init__(message)


@dataclass
class _Pending:
    records: list[dict[str, Any]]
    future: asyncio.Future = field(repr=False)
    enqueued: float = 0.0


class MicroBatcher:
    """Gathers queued requests into one `predict_fn` call; start() inside a running event loop.

    `on_batch(n_requests, n_articles)` is called for every forward pass and `on_shed(reason)`
    for every request refused by the deadline (metrics). deadline_s = 0: never shed.
    """

    def __init__(
        self,
        predict_fn: PredictFn,
        *,
        window_s: float,
        max_articles: int,
        on_batch: Callable[[int, int], None] | None = None,
        deadline_s: float = 0.0,
        on_shed: Callable[[str], None] | None = None,
    ) -> None:
        if max_articles < 1:
            raise ValueError(f"max_articles must be >= 1, got {max_articles}")
        self.predict_fn = predict_fn
        self.window_s = max(0.0, window_s)
        self.max_articles = max_articles
        self.on_batch = on_batch
        self.deadline_s = max(0.0, deadline_s)
        self.on_shed = on_shed
        self._waiting_articles = 0  # queued (and carried) articles not yet in a batch
        self._batch_s: float | None = None  # seconds per forward pass, moving average
        self._running_until: float | None = None  # expected end of the batch in flight
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task | None = None
        self._carry: _Pending | None = None  # a request too big to join the last batch: it leads the next
        # One thread: inference is serialised anyway (the predictor holds a lock), and the event
        # loop stays free to accept and queue the next requests while a batch runs.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="newsml-infer")

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="newsml-microbatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=True)

    async def submit(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Answers for `records` (already validated), in order; raises what predict_fn raised."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.submit before start()")
        loop = asyncio.get_running_loop()
        wait = self.estimated_wait_s()
        if self.deadline_s and wait > self.deadline_s:
            self._shed("admission")
            raise Overloaded(
                "admission",
                retry_after_s=wait,
                message=f"estimated queue wait {wait:.2f}s exceeds serving.queue_deadline_ms="
                f"{self.deadline_s * 1000:g}",
            )
        fut = loop.create_future()
        self._waiting_articles += len(records)
        self._queue.put_nowait(_Pending(list(records), fut, enqueued=loop.time()))  # unbounded: never waits
        return await fut

    def estimated_wait_s(self) -> float:
        """Seconds a request arriving now would queue: the running batch's rest + the batches
        ahead at the recent seconds per batch (0 before the first batch: nothing is known yet).

        Per batch, not per article: a batch of 32 costs far less than 32 single ones, and under
        sustained load (where shedding matters) batches are full, so the average is a full one's."""
        if self._batch_s is None:
            return 0.0
        now = asyncio.get_running_loop().time()
        running = max(0.0, self._running_until - now) if self._running_until is not None else 0.0
        batches_ahead = -(-self._waiting_articles // self.max_articles)  # ceil
        return running + batches_ahead * self._batch_s

    def _shed(self, reason: str) -> None:
        if self.on_shed is not None:
            self.on_shed(reason)

    def _take(self, item: _Pending, now: float) -> bool:
        """Account for `item` leaving the queue; False (and the 503 set) when it queued too long."""
        self._waiting_articles -= len(item.records)
        waited = now - item.enqueued
        if not self.deadline_s or waited <= self.deadline_s or item.future.done():
            return True
        self._shed("expired")
        item.future.set_exception(
            Overloaded(
                "expired",
                retry_after_s=self.estimated_wait_s(),
                message=f"queued {waited:.2f}s, past serving.queue_deadline_ms={self.deadline_s * 1000:g}",
            )
        )
        return False

    async def _gather(self) -> list[_Pending]:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:  # the first request that has not queued past the deadline leads the batch
            if self._carry is not None:
                first, self._carry = self._carry, None
            else:
                first = await self._queue.get()
            if self._take(first, loop.time()):
                break
        batch, n = [first], len(first.records)
        # Let the loop queue the requests it has already read (concurrent clients) before deciding.
        await asyncio.sleep(0)
        deadline = loop.time() + self.window_s
        while n < self.max_articles:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - loop.time()
                if len(batch) == 1 or left <= 0:  # alone: no waiting for company that is not coming
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), timeout=left)
                except TimeoutError:
                    break
            if n + len(item.records) > self.max_articles:
                self._carry = item  # too big to join: it starts the next batch
                break
            if not self._take(item, loop.time()):
                continue
            batch.append(item)
            n += len(item.records)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            live = [p for p in batch if not p.future.done()]  # timed-out requests are dropped
            if not live:
                continue
            records = [r for p in live for r in p.records]
            started = loop.time()
            if self._batch_s is not None:
                self._running_until = started + self._batch_s
            try:
                answers = await loop.run_in_executor(self._pool, self.predict_fn, records)
                if len(answers) != len(records):
                    raise RuntimeError(f"predict returned {len(answers)} answers for {len(records)} articles")
                took = loop.time() - started
                self._batch_s = took if self._batch_s is None else 0.7 * self._batch_s + 0.3 * took
            except Exception as e:  # every request of the batch gets the error (500 upstream)
                log.exception("batch of %d articles failed", len(records))
                for p in live:
                    if not p.future.done():
                        p.future.set_exception(e)
                continue
            finally:
                self._running_until = None
            if self.on_batch is not None:
                self.on_batch(len(live), len(records))
            start = 0
            for p in live:
                part = answers[start : start + len(p.records)]
                start += len(p.records)
                if not p.future.done():
                    p.future.set_result(part)
