"""A key-value map with ``get``, ``put`` and ``append`` per key (Porcupine's ``kvModel``).

Ops carry ``value`` ``[key, v]`` (Jepsen's independent tuple): ``put [k v]`` binds ``k``,
``append [k v]`` appends ``v`` to ``k`` (strings concatenate; any other value is appended
to a list), ``get [k v]`` must see ``v``. An absent key reads as ``""`` (or an empty list).
A get whose value is nil means what ``nil_read`` says: ``"unknown"`` (the default)
constrains nothing; ``"absent"`` asserts the key holds nothing (raftnode's ``get``).
Values compare as Clojure's ``=`` (``true``, ``1`` and ``1.0`` differ). Keys are independent: the search checks each
key apart (P-compositionality), and checking the whole map gives the same verdict.

For the search, a key's string value that no get of the key starts with is
:data:`UNSEEN` (:meth:`KVModel.read_horizon`): appends keep it so and gets never see it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
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
    show,
    thaw,
)
from checker.op import Op

_ABSENT_READS = ("", ())


class _Unseen:
    """A string value no read of the key can see, now or after any appends (see read_horizon)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unseen>"


UNSEEN = _Unseen()
UNSEEN_DESCRIPTION = "<a string no read can see, even after appends>"


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
        if current is UNSEEN:  # a string no get of the key can ever see again
            if f == "get":
                return state if value is None and not self.nil_absent else None
            if f == "append":
                return state if isinstance(value, str) else None
        if f == "get":
            if value is None:
                return state if current is None or not self.nil_absent else None
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

    def step_reason(self, state: Items, op: Op) -> str | None:
        if self.step(state, op) is not None:
            return None
        key, value = op.value
        current = items_get(state, key)
        held = "a string no get can see" if current is UNSEEN else show(current)
        if op.f == "get":
            return f"get of key {show(key)} saw {show(value)} but the key holds {held}"
        return f"append of {show(value)} to key {show(key)}, which holds {held}"

    def validate(self, op: Op) -> None:
        super().validate(op)
        if not is_pair(op.value):
            raise ModelError(
                f"op index {op.index}: expected a kv value [key value], got {op.value!r}"
            )

    def is_noop(self, op: Op) -> bool:
        return op.f == "get" and op.value[1] is None and not self.nil_absent

    def keys(self, op: Op) -> tuple[Any, ...]:
        return (op.value[0],)

    def restrict(self, state: Items, keys: Iterable[Any]) -> Items:
        return items_restrict(state, keys)

    def describe(self, state: Items) -> Any:
        return thaw(FrozenMap((k, UNSEEN_DESCRIPTION if v is UNSEEN else v) for k, v in state))

    def read_only(self, op: Op) -> bool:
        return op.f == "get"

    def accepting_states(self, op: Op) -> tuple[Any, ...] | None:
        key, value = op.value
        if value is None:
            return ((),) if self.nil_absent else None
        if value in _ABSENT_READS:
            return ((), ((key, value),))
        return (((key, value),),)

    def blind(self, op: Op) -> bool:
        return op.f == "put"

    def read_horizon(self, reads: list[Op]) -> Callable[[Items], Items] | None:
        """One key's string value that no get of it starts with becomes :data:`UNSEEN`.

        No append can make such a value one a get sees (appends only extend it), so all
        of them behave alike until a put replaces them: the orders of appends that a put
        will erase before any get sees them then make one configuration, not many.
        """
        keys = {op.value[0] for op in reads}
        values = sorted({op.value[1] for op in reads if isinstance(op.value[1], str)})
        if len(keys) != 1:
            return None
        (key,) = keys
        count = len(values)

        def settle(state: Items) -> Items:
            if len(state) != 1:
                return state
            item_key, current = state[0]
            if item_key != key or type(current) is not str:
                return state
            at = bisect_left(values, current)
            if at < count and values[at].startswith(current):
                return state
            return ((key, UNSEEN),)

        return settle
