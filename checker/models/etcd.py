"""The register of Porcupine's etcd corpus (``porcupine_test.go``'s ``etcdModel``).

It differs from Knossos' cas-register where Jepsen's etcd test recorded more:

- a ``read`` that returned nil saw the key *absent*: the register must be nil (initially
  it is);
- a ``cas`` that failed with ``error`` ``"cas_mismatch"`` asserts the value differed from
  the expected one (``"not_found"``: the key was absent); any other failed op is dropped;
- a read that timed out (``info``) constrains nothing; a write or cas that timed out may
  or may not have happened (the search's rule for every ``info`` op).

:func:`checker.importers.read_jepsen_log` produces exactly these ops from the logs.
"""

from __future__ import annotations

from typing import Any

from checker.models.base import NIL, Model, ModelError, freeze, is_pair, none_to_nil
from checker.op import Op

# Definite cas failures that still say something about the value (raftlab's client codes).
CAS_MISMATCH = "cas_mismatch"
NOT_FOUND = "not_found"
_OBSERVED_FAILURES = frozenset({CAS_MISMATCH, NOT_FOUND})


class EtcdModel(Model):
    name = "etcd"
    functions = frozenset({"read", "write", "cas"})

    def init(self, value: Any = None) -> Any:
        return none_to_nil(freeze(value))

    def step(self, state: Any, op: Op) -> Any:
        f = op.f
        if f == "read":
            if op.type == "info" or none_to_nil(op.value) == state:
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

    def validate(self, op: Op) -> None:
        super().validate(op)
        if op.f == "cas" and not is_pair(op.value):
            raise ModelError(
                f"op index {op.index}: expected a cas value [expected new], got {op.value!r}"
            )

    def is_noop(self, op: Op) -> bool:
        return op.f == "read" and op.type == "info"

    def observes_failure(self, op: Op) -> bool:
        return op.f == "cas" and op.error in _OBSERVED_FAILURES

    def read_only(self, op: Op) -> bool:
        return op.f == "read" or op.type == "fail"

    def accepting_states(self, op: Op) -> tuple[Any, ...] | None:
        if op.f == "read" and op.type == "ok":
            return (none_to_nil(op.value),)
        return None  # a failed cas holds in every state but one

    def blind(self, op: Op) -> bool:
        return op.f == "write"
