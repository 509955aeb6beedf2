"""Micro-batching: concurrent requests that arrive within a short window share one forward pass.

A transformer on a CPU answers 16 articles in far less than 16 times one article's time, so under
load the server gathers whatever is queued (up to `max_articles`) and runs a single `predict` in
one inference thread; each request gets its own slice of the answers back.

Batches form by themselves: while one forward pass runs, the requests that arrive queue up and
the next pass takes them all. So a lone request is never held back: it runs as soon as it is
read. `window_s` only applies when other requests are already queued beside the first one (traffic
is concurrent): then the batcher waits up to that long for their stragglers.
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


@dataclass
class _Pending:
    records: list[dict[str, Any]]
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Gathers queued requests into one `predict_fn` call; start() inside a running event loop.

    `on_batch(n_requests, n_articles)` is called for every forward pass (metrics).
    """

    def __init__(
        self,
        predict_fn: PredictFn,
        *,
        window_s: float,
        max_articles: int,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        if max_articles < 1:
            raise ValueError(f"max_articles must be >= 1, got {max_articles}")
        self.predict_fn = predict_fn
        self.window_s = max(0.0, window_s)
        self.max_articles = max_articles
        self.on_batch = on_batch
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
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(list(records), fut))
        return await fut

    async def _gather(self) -> list[_Pending]:
        assert self._queue is not None
        if self._carry is not None:
            first, self._carry = self._carry, None
        else:
            first = await self._queue.get()
        batch, n = [first], len(first.records)
        # Let the loop queue the requests it has already read (concurrent clients) before deciding.
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
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
            try:
                answers = await loop.run_in_executor(self._pool, self.predict_fn, records)
                if len(answers) != len(records):
                    raise RuntimeError(f"predict returned {len(answers)} answers for {len(records)} articles")
            except Exception as e:  # every request of the batch gets the error (500 upstream)
                log.exception("batch of %d articles failed", len(records))
                for p in live:
                    if not p.future.done():
                        p.future.set_exception(e)
                continue
            if self.on_batch is not None:
                self.on_batch(len(live), len(records))
            start = 0
            for p in live:
                part = answers[start : start + len(p.records)]
                start += len(p.records)
                if not p.future.done():
                    p.future.set_result(part)
