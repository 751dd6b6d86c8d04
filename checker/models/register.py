"""Knossos' ``register``: ``write v`` sets the value, ``read v`` must see it.

A read of nil means what the model's ``nil_read`` says: ``"unknown"`` (Knossos, the
default) constrains nothing; ``"absent"`` (raftlab's own histories) asserts the register
holds nothing. The initial value defaults to nil.
"""

from __future__ import annotations

from typing import Any

from checker.models.base import NIL, Model, ModelError, freeze, none_to_nil, show
from checker.op import Op


class RegisterModel(Model):
    name = "register"
    functions = frozenset({"read", "write"})

    def init(self, value: Any = None) -> Any:
        return none_to_nil(freeze(value))

    def step(self, state: Any, op: Op) -> Any:
        value = op.value
        if op.f == "write":
            return none_to_nil(value)
        if value is None:
            if state is NIL or not self.nil_absent:
                return state
            return None
        return state if value == state else None

    def step_reason(self, state: Any, op: Op) -> str | None:
        if self.step(state, op) is not None:
            return None
        return f"read {show(op.value)} but the register holds {show(state)}"

    def is_noop(self, op: Op) -> bool:
        return op.f == "read" and op.value is None and not self.nil_absent

    def validate(self, op: Op) -> None:
        super().validate(op)
        if op.f == "write" and op.type == "ok" and op.value is None:
            raise ModelError(f"op index {op.index}: a write needs a value, got nil")

    def read_only(self, op: Op) -> bool:
        return op.f == "read"

    def accepting_states(self, op: Op) -> tuple[Any, ...] | None:
        if op.value is None:
            return (NIL,) if self.nil_absent else None
        return (op.value,)

    def blind(self, op: Op) -> bool:
        return op.f == "write"
