"""Knossos' ``cas-register``: read, write and compare-and-set ``cas [expected new]``.

A cas takes effect only when the register holds ``expected`` (nil compares equal to an
empty register); a read of nil constrains nothing. Failed operations are dropped by the
search, so a cas that failed asserts nothing here (the ``etcd`` model differs).
"""

from __future__ import annotations

from typing import Any

from checker.models.base import Model, ModelError, freeze, is_pair, none_to_nil
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
            if value is None or value == state:
                return state
            return None
        if f == "write":
            return none_to_nil(value)
        expected, new = value
        if none_to_nil(expected) == state:
            return none_to_nil(new)
        return None

    def is_noop(self, op: Op) -> bool:
        return op.f == "read" and op.value is None

    def validate(self, op: Op) -> None:
        super().validate(op)
        if op.f == "cas" and not is_pair(op.value):
            raise ModelError(
                f"op index {op.index}: expected a cas value [expected new], got {op.value!r}"
            )

    def read_only(self, op: Op) -> bool:
        return op.f == "read"

    def accepting_states(self, op: Op) -> tuple[Any, ...] | None:
        return None if op.value is None else (op.value,)

    def blind(self, op: Op) -> bool:
        return op.f == "write"
