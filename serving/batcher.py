"""Single predictions scored together: building a DataFrame and running a pandas/torch scorer costs
about the same for 1 row as for 100, so requests that arrive while the scorer is busy wait for it and
are then scored in ONE call. No fixed delay is added: a request that finds the scorer idle is scored
at once. Scoring runs on one dedicated thread, so the event loop keeps reading and validating
requests meanwhile and the scorer is never called from two threads at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")
R = TypeVar("R")


class Busy(Exception):
    """More requests wait for the scorer than the queue holds: answer 503 and let the client retry."""


class MicroBatcher(Generic[In, Out]):
    """`await submit(item)` -> `score([...items])[i]`; `score` must return one result per item, in order.

    An exception from `score` is raised in every request of that batch. At most `max_waiting` rows
    (single items and the rows of whole-batch calls) wait at once; a request that would pass it
    raises `Busy` (one batch alone is always admitted: its size has its own limit).
    """

    def __init__(
        self, score: Callable[[list[In]], list[Out]], max_rows: int = 256, max_waiting: int = 20_000
    ) -> None:
        self.score, self.max_rows, self.max_waiting = score, max_rows, max_waiting
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="scorer")
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.calls = self.rows = 0  # for /model and the benchmark: mean rows per scorer call
        self.waiting = 0  # rows accepted and not yet answered

    def admit(self, rows: int = 1) -> None:
        """Raise `Busy` when `rows` more would pass the limit (call it before parsing a request, with
        1, to refuse work that cannot be taken before paying for it)."""
        if self.waiting and self.waiting + rows > self.max_waiting:
            raise Busy(
                f"{self.waiting:,} rows are waiting for the scorer and {rows:,} more would pass "
                f"LOANS_SERVE_MAX_WAITING_ROWS ({self.max_waiting:,})"
            )

    async def submit(self, item: In) -> Out:
        self.admit()
        self.waiting += 1
        try:
            return await self._submit(item)
        finally:
            self.waiting -= 1

    async def _submit(self, item: In) -> Out:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Out] = loop.create_future()
        self._pending.append((item, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def call(self, fn: Callable[[list[In]], R], items: list[In]) -> R:
        """`fn(items)` on the scorer thread, queued behind any call under way (for /predict/batch)."""

        def counted(items: list[In]) -> R:
            self.calls, self.rows = self.calls + 1, self.rows + len(items)
            return fn(items)

        self.admit(len(items))
        self.waiting += len(items)
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, counted, items)
        finally:
            self.waiting -= len(items)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def _count(self, items: list[In]) -> list[Out]:
        self.calls, self.rows = self.calls + 1, self.rows + len(items)
        return self.score(items)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_rows], self._pending[self.max_rows :]
                try:
                    results = await loop.run_in_executor(self.executor, self._count, [i for i, _ in batch])
                except Exception as exc:  # delivered to each request of the batch, which raises it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():  # a client that went away leaves a cancelled future
                        future.set_result(result)
        finally:
            self._drainer = None
