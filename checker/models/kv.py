"""A key-value map with ``get``, ``put`` and ``append`` per key (Porcupine's ``kvModel``).

Ops carry ``value`` ``[key, v]`` (Jepsen's independent tuple): ``put [k v]`` binds ``k``,
``append [k v]`` appends ``v`` to ``k`` (strings concatenate; any other value is appended
to a list), ``get [k v]`` must see ``v``. An absent key reads as ``""`` (or an empty list);
a get whose value is nil constrains nothing. Keys are independent: the search checks each
key apart (P-compositionality), and checking the whole map gives the same verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from checker.models.base import FrozenMap, Model, ModelError, freeze, is_pair
from checker.op import Op

_ABSENT_READS = ("", ())


class KVModel(Model):
    name = "kv"
    functions = frozenset({"get", "put", "append"})
    key_aware = True

    def init(self, value: Any = None) -> FrozenMap:
        if value is None:
            return FrozenMap()
        if not isinstance(value, Mapping):
            raise ModelError(
                f"expected the initial value to be a map {{key: value}}, got {value!r}"
            )
        return FrozenMap((freeze(k), freeze(v)) for k, v in value.items() if v is not None)

    def step(self, state: FrozenMap, op: Op) -> FrozenMap | None:
        key, value = op.value
        items = state._items
        f = op.f
        if f == "get":
            if value is None:
                return state
            current = items.get(key)
            if current is None:
                return state if value in _ABSENT_READS else None
            return state if current == value else None
        updated = dict(items)
        if f == "put":
            updated[key] = value
        else:
            current = items.get(key)
            if isinstance(value, str) and (current is None or isinstance(current, str)):
                updated[key] = value if current is None else current + value
            elif current is None:
                updated[key] = (value,)
            elif isinstance(current, tuple):
                updated[key] = (*current, value)
            else:
                return None  # appending a non-string to a string value: cannot happen
        return FrozenMap(updated)

    def validate(self, op: Op) -> None:
        super().validate(op)
        if not is_pair(op.value):
            raise ModelError(
                f"op index {op.index}: expected a kv value [key value], got {op.value!r}"
            )

    def is_noop(self, op: Op) -> bool:
        return op.f == "get" and op.value[1] is None

    def keys(self, op: Op) -> tuple[Any, ...]:
        return (op.value[0],)

    def restrict(self, state: FrozenMap, keys: Iterable[Any]) -> FrozenMap:
        return state.restrict(keys)
