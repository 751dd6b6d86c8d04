"""Knossos' ``set``: ``add v`` inserts, ``read s`` must see exactly the set ``s``.

A read of nil constrains nothing (as for every read here).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from checker.models.base import Model, ModelError, freeze
from checker.op import Op


class SetModel(Model):
    name = "set"
    functions = frozenset({"add", "read"})

    def init(self, value: Any = None) -> frozenset[Any]:
        if value is None:
            return frozenset()
        if not isinstance(value, Iterable) or isinstance(value, str | bytes):
            raise ModelError(f"expected the initial set to be a list or set, got {value!r}")
        return frozenset(freeze(v) for v in value)

    def step(self, state: frozenset[Any], op: Op) -> frozenset[Any] | None:
        value = op.value
        if op.f == "add":
            return state | {value}
        if value is None or frozenset(value) == state:
            return state
        return None

    def validate(self, op: Op) -> None:
        super().validate(op)
        if op.f == "read" and op.value is not None and not isinstance(op.value, Iterable):
            raise ModelError(f"op index {op.index}: expected a read of a set, got {op.value!r}")

    def is_noop(self, op: Op) -> bool:
        return op.f == "read" and op.value is None

    def read_only(self, op: Op) -> bool:
        return op.f == "read"

    def accepting_states(self, op: Op) -> tuple[Any, ...] | None:
        return None if op.value is None else (frozenset(op.value),)
