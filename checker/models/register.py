"""Knossos' ``register``: ``write v`` sets the value, ``read v`` must see it.

A read whose value is nil constrains nothing (Knossos: an unknown read result); the
initial value defaults to nil.
"""

from __future__ import annotations

from typing import Any

from checker.models.base import Model, ModelError, freeze, none_to_nil
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
        if value is None or value == state:
            return state
        return None

    def is_noop(self, op: Op) -> bool:
        return op.f == "read" and op.value is None

    def validate(self, op: Op) -> None:
        super().validate(op)
        if op.f == "write" and op.type == "ok" and op.value is None:
            raise ModelError(f"op index {op.index}: a write needs a value, got nil")

    def read_only(self, op: Op) -> bool:
        return op.f == "read"

    def accepting_states(self, op: Op) -> tuple[Any, ...] | None:
        return None if op.value is None else (op.value,)

    def blind(self, op: Op) -> bool:
        return op.f == "write"
