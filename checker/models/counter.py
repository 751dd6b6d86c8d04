"""A counter: ``add n`` adds ``n`` (negative allowed), ``read v`` must see the total.

Knossos has no counter model; this is the linearizable counter a Jepsen user expects
(Jepsen's own counter checker only bounds reads). The initial value defaults to 0. A read
of nil constrains nothing under ``nil_read="unknown"`` (the default); under ``"absent"``
it says the counter holds nothing, which never happens (it always holds a number).
Numbers keep their kind as in Clojure: ``1 + 1.0`` is the float ``2.0``, which a read of
the integer ``2`` does not see.
"""

from __future__ import annotations

from typing import Any

from checker.models.base import Model, ModelError, freeze, show
from checker.op import Op
from checker.values import is_number, number


class CounterModel(Model):
    name = "counter"
    functions = frozenset({"add", "read"})

    def init(self, value: Any = None) -> Any:
        if value is None:
            return 0
        value = freeze(value)
        if not is_number(value):
            raise ModelError(f"expected the initial counter to be a number, got {value!r}")
        return value

    def step(self, state: Any, op: Op) -> Any:
        value = op.value
        if op.f == "add":
            return freeze(number(state) + number(value))
        if value is None:
            return None if self.nil_absent else state
        return state if value == state else None

    def step_reason(self, state: Any, op: Op) -> str | None:
        if self.step(state, op) is not None:
            return None
        return f"read {show(op.value)} but the counter holds {show(state)}"

    def validate(self, op: Op) -> None:
        super().validate(op)
        if op.f == "add" and not is_number(op.value):
            raise ModelError(f"op index {op.index}: expected add of a number, got {op.value!r}")

    def is_noop(self, op: Op) -> bool:
        return op.f == "read" and op.value is None and not self.nil_absent

    def read_only(self, op: Op) -> bool:
        return op.f == "read"

    def accepting_states(self, op: Op) -> tuple[Any, ...] | None:
        if op.value is None:
            return () if self.nil_absent else None
        return (op.value,)
