"""append: list-append on a few keys, whole-list reads, each key a linearizable list.

``append [k, v]`` appends the unique integer ``v`` to the list at key ``k``;
``read [k, None]`` → ok ``[k, [v…]]`` (an absent key reads as the empty list). Because
every value is unique, a read shows exactly which appends took effect and in which
order, so the check is strong: per key, the history must be linearizable against a list
register (`ListAppendModel`): append adds at the end, a read returns the whole list.
Lost, duplicated (sessions broken) or reordered appends and stale reads all fail it.

Keys are replaced after ``ops_per_key`` ops to keep each key's search small, as in the
register workload. Final reads (after healing) read every key used.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from checker.op import Op
from workloads.base import OpRequest, checker_failed, client_ops, combine
from workloads.client import KVClient
from workloads.outcome import OK, Outcome


class ListAppendModel:
    """A list register: ``append [k, v]`` → state + (v,); ``read [k, r]`` iff r == state.

    The checker's model interface (ARCHITECTURE.md "Checker"): ``init(value)`` → state,
    ``step(state, op)`` → next state or None when the op cannot happen in that state;
    states are hashable (tuples). ``op.value`` is the value of the op's completion
    (``[k, v]`` for appends; ``[k, list]`` for ok reads), or only the element / list once
    the checker has split independent keys; both are accepted.
    """

    name = "list-append"

    @staticmethod
    def init(value: Any = None) -> tuple[Any, ...]:
        return tuple(value) if value else ()

    @staticmethod
    def step(state: tuple[Any, ...], op: Any) -> tuple[Any, ...] | None:
        value = getattr(op, "value", None)
        if op.f == "append":
            element = value[1] if isinstance(value, list | tuple) and len(value) == 2 else value
            return (*state, element)
        if op.f == "read":
            if value is None:
                return state  # a read whose result is unknown constrains nothing
            observed = value[1] if _is_keyed_read(value) else value
            observed = () if observed is None else tuple(observed)
            return state if observed == state else None
        return None


def _is_keyed_read(value: Any) -> bool:
    # [k, [..]] or [k, None] from an unsplit history; a bare list of ints otherwise.
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and (value[1] is None or isinstance(value[1], list | tuple))
    )


@dataclass(slots=True)
class AppendWorkload:
    active_keys: int = 3
    ops_per_key: int = 60  # then a fresh key; appends + reads on one key
    read_fraction: float = 0.5
    key_prefix: str = "l"
    name: str = field(default="append", init=False)
    _slots: list[int] = field(default_factory=list, init=False, repr=False)
    _counts: dict[int, int] = field(default_factory=dict, init=False, repr=False)
    _next_key: int = field(default=0, init=False, repr=False)
    _next_value: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.active_keys < 1 or self.ops_per_key < 1:
            raise ValueError("append workload: active_keys and ops_per_key must be at least 1")
        if not 0.0 <= self.read_fraction <= 1.0:
            raise ValueError("append workload: read_fraction must be within [0, 1]")
        self._slots = list(range(self.active_keys))
        self._next_key = self.active_keys

    def config(self) -> dict[str, Any]:
        return {
            "active_keys": self.active_keys,
            "ops_per_key": self.ops_per_key,
            "read_fraction": self.read_fraction,
            "key_prefix": self.key_prefix,
        }

    def kv_key(self, key: int) -> str:
        return f"{self.key_prefix}{key}"

    def is_read(self, f: str) -> bool:
        return f == "read"

    def next_op(self, rng: random.Random) -> OpRequest:
        slot = rng.randrange(len(self._slots))
        key = self._slots[slot]
        used = self._counts.get(key, 0) + 1
        self._counts[key] = used
        if used >= self.ops_per_key:
            self._slots[slot] = self._next_key
            self._next_key += 1
        if rng.random() < self.read_fraction:
            return OpRequest("read", [key, None])
        value = self._next_value
        self._next_value += 1
        return OpRequest("append", [key, value])

    async def invoke(self, client: KVClient, request: OpRequest) -> Outcome:
        key, argument = request.value
        if request.f == "append":
            await client.append(self.kv_key(key), argument)
            return Outcome(OK, [key, argument])
        if request.f == "read":
            found = await client.get(self.kv_key(key))
            return Outcome(OK, [key, [] if found is None else list(found)])
        raise ValueError(f"append workload: unknown f {request.f!r}")

    async def setup(self, client: KVClient) -> None:
        return None

    def final_ops(self) -> list[OpRequest]:
        return [OpRequest("read", [key, None]) for key in sorted(self._counts)]

    def check(self, history: list[Op], *, time_limit: float | None = None) -> dict[str, Any]:
        try:
            from checker.linearizable import check as check_linearizable

            result = check_linearizable(
                client_ops(history), ListAppendModel, init=None, time_limit=time_limit
            )
        except Exception as error:
            result = checker_failed("linearizable", error)
        return combine({"linearizable": result})
