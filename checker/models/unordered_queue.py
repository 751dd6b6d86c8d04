"""Knossos' ``unordered-queue``: a multiset; ``dequeue v`` must take a ``v`` that is in it.

As in Knossos, a dequeue that timed out (``info``) carries no value and so never matches:
it is taken not to have happened. (Which element it took is unknown, and a model's step
is deterministic.) The fifo-queue can do better: its dequeue takes the head.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from checker.models.base import FrozenMap, Model, ModelError, freeze, thaw
from checker.op import Op


class UnorderedQueueModel(Model):
    name = "unordered-queue"
    functions = frozenset({"enqueue", "dequeue"})

    def init(self, value: Any = None) -> FrozenMap:
        counts: dict[Any, int] = {}
        if value is not None:
            if not isinstance(value, Iterable) or isinstance(value, str | bytes):
                raise ModelError(f"expected the initial queue to be a list, got {value!r}")
            for item in value:
                item = freeze(item)
                counts[item] = counts.get(item, 0) + 1
        return FrozenMap(counts)  # value -> how many copies are queued

    def step(self, state: FrozenMap, op: Op) -> FrozenMap | None:
        value = op.value
        count = state._items.get(value, 0)
        items = dict(state._items)
        if op.f == "enqueue":
            items[value] = count + 1
            return FrozenMap(items)
        if count == 0:
            return None
        if count == 1:
            del items[value]
        else:
            items[value] = count - 1
        return FrozenMap(items)

    def describe(self, state: FrozenMap) -> list[Any]:
        out: list[Any] = []
        for value, count in state.items():
            out.extend([thaw(value)] * count)
        try:
            return sorted(out)
        except TypeError:
            return out
