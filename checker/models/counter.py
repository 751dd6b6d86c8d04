"""A counter: ``add n`` adds ``n`` (negative allowed), ``read v`` must see the total.

Knossos has no counter model; this is the linearizable counter a Jepsen user expects
(Jepsen's own counter checker only bounds reads). The initial value defaults to 0; a read
of nil constrains nothing.
"""

from __future__ import annotations

from typing import Any

from checker.models.base import Model, ModelError
from checker.op import Op


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class CounterModel(Model):
    name = "counter"
    functions = frozenset({"add", "read"})

    def init(self, value: Any = None) -> int | float:
        if value is None:
            return 0
        if not _is_number(value):
            raise ModelError(f"expected the initial counter to be a number, got {value!r}")
        return value

    def step(self, state: int | float, op: Op) -> int | float | None:
        value = op.value
        if op.f == "add":
            return state + value
        if value is None or value == state:
            return state
        return None

    def validate(self, op: Op) -> None:
        super().validate(op)
        if op.f == "add" and not _is_number(op.value):
            raise ModelError(f"op index {op.index}: expected add of a number, got {op.value!r}")

    def is_noop(self, op: Op) -> bool:
        return op.f == "read" and op.value is None

    def read_only(self, op: Op) -> bool:
        return op.f == "read"

    def accepting_states(self, op: Op) -> tuple[Any, ...] | None:
        return None if op.value is None else (op.value,)
