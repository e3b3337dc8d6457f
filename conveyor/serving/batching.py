"""Adaptive micro-batching: concurrent requests for one model run through the transform and
the model together, on one worker thread, while the event loop goes on reading requests.

The batcher waits only for requests it knows are coming: a request counts as coming from
the moment its handler starts until it is queued. A lone client is answered at once; under
load, requests queue up while a batch runs and the next batch takes them all (up to
``max_batch_size`` rows), waiting at most ``batch_wait_ms`` for the stragglers. A request
larger than ``max_batch_size`` runs alone, unsplit. A small request that the version's
compiled path (:mod:`conveyor.serving.compiled`) answers never comes here: it costs less
than the hop to the worker thread; a larger one takes the compiled path here.

Example::

    batcher = Batcher("penguin", max_batch_size=64, wait_s=0.002)
    batcher.start()
    with batcher.coming():
        payload = parse(body)
        outputs = await batcher.submit(servable, payload, rows=len(payload))
    await batcher.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from conveyor.serving.errors import RequestError, Unavailable
from conveyor.serving.servable import Outputs, Payload, Servable

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Item:
    servable: Servable
    payload: Payload
    rows: int
    future: asyncio.Future[Outputs]


class Batcher:
    """Batches one model's requests; ``on_batch(rows)`` is told each batch's size."""

    def __init__(
        self,
        name: str,
        *,
        max_batch_size: int = 64,
        wait_s: float = 0.002,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.name = name
        self.max_batch_size = max_batch_size
        self.wait_s = wait_s
        self._on_batch = on_batch
        self._items: deque[_Item] = deque()
        self._arrived = asyncio.Event()
        self._coming = 0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"conveyor-batch-{name}")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"batch-{self.name}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._items:
            item = self._items.popleft()
            if not item.future.done():
                item.future.set_exception(Unavailable("The server is shutting down."))
        self._executor.shutdown(wait=False, cancel_futures=True)

    @contextlib.contextmanager
    def coming(self) -> Iterator[None]:
        """Mark a request as on its way to :meth:`submit`, so a batch waits for it."""
        self._coming += 1
        try:
            yield
        finally:
            self._coming -= 1

    async def submit(self, servable: Servable, payload: Payload, rows: int) -> Outputs:
        """``payload``'s outputs, computed in a batch with whatever else is queued."""
        if self._task is None or self._task.done():
            raise Unavailable(f"Model {self.name!r} is not accepting requests.")
        future: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
        self._items.append(_Item(servable, payload, rows, future))
        self._arrived.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._items:
                self._arrived.clear()
                await self._arrived.wait()
            batch = await self._collect()
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(self._executor, _compute, batch)
            except Exception as exc:  # a bug, not a bad request: answer, keep batching
                logger.exception("Model %r: a batch failed", self.name)
                error = RequestError(500, f"Model {self.name!r}: {type(exc).__name__}: {exc}")
                results = [error] * len(batch)
            for item, result in zip(batch, results, strict=True):
                if item.future.done():
                    continue
                if isinstance(result, Exception):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)
            if self._on_batch is not None:
                self._on_batch(sum(item.rows for item in batch))

    async def _collect(self) -> list[_Item]:
        batch: list[_Item] = []
        rows = 0
        deadline = time.monotonic() + self.wait_s
        while True:
            while self._items and (not batch or rows + self._items[0].rows <= self.max_batch_size):
                item = self._items.popleft()
                if item.future.done():  # timed out or abandoned while queued
                    continue
                batch.append(item)
                rows += item.rows
            full = rows >= self.max_batch_size or bool(self._items)
            remaining = deadline - time.monotonic()
            if full or self._coming == 0 or remaining <= 0 or not batch:
                return batch
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)


def _compute(batch: list[_Item]) -> list[Outputs | Exception]:
    """Each item's outputs: from the version's compiled path where it answers, else one
    model call per servable in the batch (a swap can leave old and new versions side by
    side in one batch)."""
    results: list[Any] = [None] * len(batch)
    groups: dict[int, list[int]] = {}
    for index, item in enumerate(batch):
        compiled = getattr(item.servable, "compiled", None)
        if compiled is not None:
            results[index] = compiled.answer(item.payload, max_rows=None)
        if results[index] is None:
            groups.setdefault(id(item.servable), []).append(index)
    for indices in groups.values():
        servable = batch[indices[0]].servable
        answers = servable.predict([batch[i].payload for i in indices])
        for i, answer in zip(indices, answers, strict=True):
            results[i] = answer
    return results
