"""Knossos' ``multi-register``: registers by key, read and written in transactions.

An op is ``f: "txn"`` with ``value`` ``[[read k v] [write k v] ...]`` (Elle's ``r``/``w``
are accepted too), applied in order: a write binds ``k``, a read must see ``v``. A read
of nil means what ``nil_read`` says: ``"unknown"`` (Knossos, the default) constrains
nothing, ``"absent"`` says the register holds nothing (never written, or written nil). The initial value is a map ``{k: v}`` or nil (all
keys nil). Keys touched together are checked together; keys never touched together are
independent (the search splits them into components).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from checker.models.base import (
    FrozenMap,
    Items,
    Model,
    ModelError,
    freeze,
    items_from,
    items_get,
    items_restrict,
    items_set,
    show,
    thaw,
)
from checker.op import Op

_READS = frozenset({"read", "r"})
_WRITES = frozenset({"write", "w"})


class MultiRegisterModel(Model):
    name = "multi-register"
    functions = frozenset({"txn"})
    key_aware = True

    def init(self, value: Any = None) -> Items:
        if value is None:
            return ()
        if not isinstance(value, Mapping):
            raise ModelError(f"expected the initial value to be a map {{k: v}}, got {value!r}")
        return items_from((freeze(k), freeze(v)) for k, v in value.items())

    def step(self, state: Items, op: Op) -> Items | None:
        absent = self.nil_absent
        for micro_f, key, value in op.value:
            if micro_f in _READS:
                if (value is not None or absent) and items_get(state, key) != value:
                    return None
            else:
                state = items_set(state, key, value)
        return state

    def step_reason(self, state: Items, op: Op) -> str | None:
        absent = self.nil_absent
        for micro_f, key, value in op.value:
            if micro_f in _READS:
                held = items_get(state, key)
                if (value is not None or absent) and held != value:
                    return f"read {show(key)} = {show(value)} but {show(key)} holds {show(held)}"
            else:
                state = items_set(state, key, value)
        return None

    def validate(self, op: Op) -> None:
        super().validate(op)
        micro_ops = op.value
        if not isinstance(micro_ops, tuple | list):
            raise ModelError(
                f"op index {op.index}: expected a txn value [[read k v] [write k v] ...], got {micro_ops!r}"
            )
        for micro in micro_ops:
            if (
                not isinstance(micro, tuple | list)
                or len(micro) != 3
                or micro[0] not in _READS | _WRITES
            ):
                raise ModelError(
                    f"op index {op.index}: expected each txn step to be [read k v] or [write k v], got {micro!r}"
                )

    def is_noop(self, op: Op) -> bool:
        if self.nil_absent:
            return False
        return all(micro[0] in _READS and micro[2] is None for micro in op.value)

    def keys(self, op: Op) -> tuple[Any, ...]:
        return tuple(dict.fromkeys(micro[1] for micro in op.value))

    def restrict(self, state: Items, keys: Iterable[Any]) -> Items:
        return items_restrict(state, keys)

    def describe(self, state: Items) -> Any:
        return thaw(FrozenMap(state))

    def read_only(self, op: Op) -> bool:
        return all(micro[0] in _READS for micro in op.value)
