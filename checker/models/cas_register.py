"""Knossos' ``cas-register``: read, write and compare-and-set ``cas [expected new]``.

A cas takes effect only when the register holds ``expected`` (nil compares equal to an
empty register). A read of nil means what the model's ``nil_read`` says: ``"unknown"``
(Knossos, the default) constrains nothing; ``"absent"`` (raftlab's own histories, where
a get of an absent key returns nil) asserts the register holds nothing. Failed operations
are dropped by the search, so a cas that failed asserts nothing here (the ``etcd`` model
differs).
"""

from __future__ import annotations

from typing import Any

from checker.models.base import NIL, Model, ModelError, freeze, is_pair, none_to_nil, show
from checker.op import Op


class CasRegisterModel(Model):
    name = "cas-register"
    functions = frozenset({"read", "write", "cas"})

    def init(self, value: Any = None) -> Any:
        return none_to_nil(freeze(value))

    def step(self, state: Any, op: Op) -> Any:
        f = op.f
        value = op.value
        if f == "read":
            if value is None:
                if state is NIL or not self.nil_absent:
                    return state
                return None
            return state if value == state else None
        # (none_to_nil inlined: this is the search's step for every write and cas.)
        if f == "write":
            return NIL if value is None else value
        expected, new = value
        if (NIL if expected is None else expected) == state:
            return NIL if new is None else new
        return None

    def step_reason(self, state: Any, op: Op) -> str | None:
        if self.step(state, op) is not None:
            return None
        if op.f == "read":
            return f"read {show(op.value)} but the register holds {show(state)}"
        expected, new = op.value
        return f"cas from {show(expected)} to {show(new)} but the register holds {show(state)}"

    def is_noop(self, op: Op) -> bool:
        return op.f == "read" and op.value is None and not self.nil_absent

    def validate(self, op: Op) -> None:
        f = op.f
        if f not in self.functions:
            super().validate(op)  # raises, naming the functions
        if f == "cas" and not is_pair(op.value):
            raise ModelError(
                f"op index {op.index}: expected a cas value [expected new], got {op.value!r}"
            )

    def read_only(self, op: Op) -> bool:
        return op.f == "read"

    def accepting_states(self, op: Op) -> tuple[Any, ...] | None:
        if op.value is None:
            return (NIL,) if self.nil_absent else None
        return (op.value,)

    def blind(self, op: Op) -> bool:
        return op.f == "write"
