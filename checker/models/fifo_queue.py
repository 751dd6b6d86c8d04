"""Knossos' ``fifo-queue``: ``enqueue v`` at the tail, ``dequeue v`` must take ``v`` from the head.

As in Knossos, a dequeue from an empty queue is inconsistent whatever its value (a
worker records a dequeue that found the queue empty as ``fail``). Unlike Knossos, a
dequeue that timed out (``info``, its value unknown: nil) takes whatever is at the head
if it happened, rather than never matching: otherwise one crashed dequeue would make
every history that follows it invalid.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from checker.models.base import Model, ModelError, freeze
from checker.op import Op


class FifoQueueModel(Model):
    name = "fifo-queue"
    functions = frozenset({"enqueue", "dequeue"})

    def init(self, value: Any = None) -> tuple[Any, ...]:
        if value is None:
            return ()
        if not isinstance(value, Iterable) or isinstance(value, str | bytes):
            raise ModelError(f"expected the initial queue to be a list, got {value!r}")
        return tuple(freeze(v) for v in value)

    def step(self, state: tuple[Any, ...], op: Op) -> tuple[Any, ...] | None:
        if op.f == "enqueue":
            return (*state, op.value)
        if state and (state[0] == op.value or (op.value is None and op.type == "info")):
            return state[1:]
        return None
