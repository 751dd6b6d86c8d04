"""Knossos' ``set``: ``add v`` inserts, ``read s`` must see exactly the set ``s``.

A read of nil means what ``nil_read`` says: ``"unknown"`` (Knossos, the default)
constrains nothing; ``"absent"`` says no set is there: nothing was added yet (raftlab's
set workload records an absent key as the empty set). Elements compare as Clojure's ``=``:
``true``, ``1`` and ``1.0`` are three elements.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from checker.models.base import Model, ModelError, freeze, show
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
        if value is None:
            if state and self.nil_absent:
                return None
            return state
        return state if frozenset(value) == state else None

    def step_reason(self, state: frozenset[Any], op: Op) -> str | None:
        if self.step(state, op) is not None:
            return None
        return f"read {show(op.value)} but the set holds {show(state)}"

    def validate(self, op: Op) -> None:
        super().validate(op)
        if op.f == "read" and op.value is not None and not isinstance(op.value, Iterable):
            raise ModelError(f"op index {op.index}: expected a read of a set, got {op.value!r}")

    def is_noop(self, op: Op) -> bool:
        return op.f == "read" and op.value is None and not self.nil_absent

    def read_only(self, op: Op) -> bool:
        return op.f == "read"

    def accepting_states(self, op: Op) -> tuple[Any, ...] | None:
        if op.value is None:
            return (frozenset(),) if self.nil_absent else None
        return (frozenset(op.value),)
