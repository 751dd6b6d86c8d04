"""The register of Porcupine's etcd corpus (``porcupine_test.go``'s ``etcdModel``).

It differs from Knossos' cas-register where Jepsen's etcd test recorded more:

- a ``read`` that returned nil saw the key *absent*: the register must be nil (initially
  it is) — the model's default ``nil_read`` is ``"absent"``; built with
  ``nil_read="unknown"`` such a read constrains nothing, as in Knossos;
- a ``cas`` that failed with ``error`` ``"cas_mismatch"`` asserts the value differed from
  the expected one (``"not_found"``: the key was absent); any other failed op is dropped;
- a read that timed out (``info``) constrains nothing; a write or cas that timed out may
  or may not have happened (the search's rule for every ``info`` op).

:func:`checker.importers.read_jepsen_log` produces exactly these ops from the logs.
"""

from __future__ import annotations

from typing import Any

from checker.models.base import (
    NIL,
    NIL_ABSENT,
    Model,
    ModelError,
    freeze,
    is_pair,
    none_to_nil,
    show,
)
from checker.op import Op

# Definite cas failures that still say something about the value (raftlab's client codes).
CAS_MISMATCH = "cas_mismatch"
NOT_FOUND = "not_found"
_OBSERVED_FAILURES = frozenset({CAS_MISMATCH, NOT_FOUND})


class EtcdModel(Model):
    name = "etcd"
    functions = frozenset({"read", "write", "cas"})
    default_nil_read = NIL_ABSENT

    def init(self, value: Any = None) -> Any:
        return none_to_nil(freeze(value))

    def step(self, state: Any, op: Op) -> Any:
        f = op.f
        if f == "read":
            if op.type == "info" or none_to_nil(op.value) == state:
                return state
            if op.value is None and not self.nil_absent:
                return state
            return None
        if f == "write":
            return none_to_nil(op.value)
        expected, new = op.value
        expected = none_to_nil(expected)
        if op.type == "fail":
            if op.error == NOT_FOUND:
                return state if state is NIL else None
            return state if expected != state else None
        return none_to_nil(new) if expected == state else None

    def step_reason(self, state: Any, op: Op) -> str | None:
        if self.step(state, op) is not None:
            return None
        if op.f == "read":
            return f"read {show(op.value)} but the register holds {show(state)}"
        expected, new = op.value
        if op.type == "fail":
            if op.error == NOT_FOUND:
                return f"cas failed with {NOT_FOUND} but the register holds {show(state)}"
            return f"cas from {show(expected)} failed but the register holds {show(state)}"
        return f"cas from {show(expected)} to {show(new)} but the register holds {show(state)}"

    def validate(self, op: Op) -> None:
        super().validate(op)
        if op.f == "cas" and not is_pair(op.value):
            raise ModelError(
                f"op index {op.index}: expected a cas value [expected new], got {op.value!r}"
            )

    def is_noop(self, op: Op) -> bool:
        if op.f != "read":
            return False
        return op.type == "info" or (op.value is None and not self.nil_absent)

    def observes_failure(self, op: Op) -> bool:
        return op.f == "cas" and op.error in _OBSERVED_FAILURES

    def read_only(self, op: Op) -> bool:
        return op.f == "read" or op.type == "fail"

    def accepting_states(self, op: Op) -> tuple[Any, ...] | None:
        if op.f == "read" and op.type == "ok":
            if op.value is None and not self.nil_absent:
                return None
            return (none_to_nil(op.value),)
        return None  # a failed cas holds in every state but one

    def blind(self, op: Op) -> bool:
        return op.f == "write"
