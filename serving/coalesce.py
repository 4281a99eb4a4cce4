"""Adaptive batching on the event loop: requests for one model that arrive while the service is busy are
scored together in one call.

The service scores inline on its event loop (the work is CPU-bound under one GIL). While one batch is being
scored, the next requests wait in their sockets; when the loop is free they are read and validated within a
few turns and join one pending batch, which runs once no more arrive. An idle service therefore answers a
lone request at once (a few loop turns later, microseconds), and a loaded one answers many per model call:
the detector's fixed cost per call (scikit-learn's input checks and neighbour-search set-up, torch's
dispatch) is most of a 60-minute window's work, so 8 windows together cost about half of 8 alone. It is the
adaptive batching of model servers such as Triton or Ray Serve, in the one process this service is.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

# Loop turns to wait, at most, for more requests to join a batch, and turns without a new one that end it.
MAX_TURNS = 16
QUIET_TURNS = 2


class Coalescer:
    """``await submit(key, item)`` returns ``run(items)[i]`` for the item, where ``run`` scores all the items
    pending under ``key`` (up to ``max_batch``) in one call. ``run`` returns one result per item, in order;
    an exception in that list is raised to that item's caller only, and one raised by ``run`` to all."""

    def __init__(self, run: Callable[[Any, list], list], max_batch: int):
        self.run = run
        self.max_batch = max(1, max_batch)
        self._pending: dict[Any, list[tuple[Any, asyncio.Future]]] = {}
        self._flushing: set[asyncio.Task] = set()  # the loop holds tasks weakly: keep each until it is done

    async def submit(self, key, item):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        batch = self._pending.get(key)
        if batch is None:
            batch = self._pending[key] = []
            task = loop.create_task(self._flush(key, batch))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        batch.append((item, future))
        if len(batch) >= self.max_batch:  # full: the next request starts a new batch
            self._pending.pop(key, None)
        return await future

    async def _flush(self, key, batch: list) -> None:
        seen, quiet = len(batch), 0
        for _ in range(MAX_TURNS):
            if len(batch) >= self.max_batch or quiet >= QUIET_TURNS:
                break
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(batch) == seen else 0
            seen = len(batch)
        if self._pending.get(key) is batch:
            del self._pending[key]
        items = [item for item, _ in batch]
        try:
            results = self.run(key, items)
        except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the failure
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results):
            if future.done():  # the caller went away (client disconnected)
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
