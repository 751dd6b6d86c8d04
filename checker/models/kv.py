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

from checker.models.base import (
    FrozenMap,
    Items,
    Model,
    ModelError,
    freeze,
    is_pair,
    items_from,
    items_get,
    items_restrict,
    items_set,
    thaw,
)
from checker.op import Op

_ABSENT_READS = ("", ())


class KVModel(Model):
    name = "kv"
    functions = frozenset({"get", "put", "append"})
    key_aware = True

    def init(self, value: Any = None) -> Items:
        if value is None:
            return ()
        if not isinstance(value, Mapping):
            raise ModelError(
                f"expected the initial value to be a map {{key: value}}, got {value!r}"
            )
        return items_from((freeze(k), freeze(v)) for k, v in value.items())

    def step(self, state: Items, op: Op) -> Items | None:
        key, value = op.value
        f = op.f
        if len(state) == 1 and state[0][0] == key:  # the common case: one key per component
            current = state[0][1]
        else:
            current = items_get(state, key)
        if f == "get":
            if value is None:
                return state
            if current is None:
                return state if value in _ABSENT_READS else None
            return state if current == value else None
        if f == "put":
            new = value
        elif isinstance(value, str) and (current is None or isinstance(current, str)):
            new = value if current is None else current + value
        elif current is None:
            new = (value,)
        elif isinstance(current, tuple):
            new = (*current, value)
        else:
            return None  # appending a non-string to a string: cannot happen
        if not state or (len(state) == 1 and state[0][0] == key):
            return ((key, new),)
        return items_set(state, key, new)

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

    def restrict(self, state: Items, keys: Iterable[Any]) -> Items:
        return items_restrict(state, keys)

    def describe(self, state: Items) -> Any:
        return thaw(FrozenMap(state))

    def read_only(self, op: Op) -> bool:
        return op.f == "get"

    def accepting_states(self, op: Op) -> tuple[Any, ...] | None:
        key, value = op.value
        if value is None:
            return None
        if value in _ABSENT_READS:
            return ((), ((key, value),))
        return (((key, value),),)

    def blind(self, op: Op) -> bool:
        return op.f == "put"

    def reachable(self, state: Items, op: Op) -> bool:
        """Can ``get [k v]`` still hold after appends alone? Only if the value so far starts ``v``.

        Appends only extend a key's value (a string by concatenation, a list by one more
        element; appending a non-string to a string cannot happen), so once the value is
        not a prefix of ``v`` no append can make it ``v``: only a put could.
        """
        key, value = op.value
        if len(state) == 1 and state[0][0] == key:
            current = state[0][1]
        else:
            current = items_get(state, key)
        if isinstance(current, str):
            return isinstance(value, str) and value.startswith(current)
        if isinstance(current, tuple):
            return isinstance(value, tuple) and value[: len(current)] == current
        return True  # absent (anything may follow) or a put's scalar: not pruned
