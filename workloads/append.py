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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from checker.models.base import Model, freeze
from checker.op import Op
from workloads.base import KeyRotation, OpRequest, checker_failed, client_ops, combine
from workloads.client import KVClient
from workloads.outcome import OK, Outcome


class ListAppendModel(Model):
    """A list register: ``append v`` → state + (v,); ``read r`` is possible iff r == state.

    A `checker.models.base.Model`: the search splits the history on the Jepsen ``[k, v]``
    tuples first, so `step` sees the inner values (an element for an append, the whole
    list, frozen to a tuple, for an ok read). States are tuples, hashable for Lowe's
    memoisation. A read whose result is unknown (failed, timed out) constrains nothing.
    A read of nil means what ``nil_read`` says: ``"absent"`` (the workload checks with
    it: raftnode returns nil for an absent key) reads the empty list, ``"unknown"``
    (Knossos') constrains nothing.
    """

    name = "list-append"
    functions = frozenset({"append", "read"})

    def init(self, value: Any = None) -> tuple[Any, ...]:
        return tuple(freeze(value)) if value else ()

    def step(self, state: tuple[Any, ...] | _Unseen, op: Op) -> tuple[Any, ...] | _Unseen | None:
        if op.f == "read" and op.value is None:
            if not self.nil_absent:
                return state  # an unknown result: constrains nothing
            return state if state == () else None  # nil: the key is absent, the list empty
        if state is UNSEEN_LIST:  # a list no read can ever see, whatever is appended
            return state if op.f == "append" else None
        if op.f == "append":
            return (*state, op.value)
        # A list register never holds anything but a list: any other read is inconsistent.
        return state if op.value == state else None

    def is_noop(self, op: Op) -> bool:
        return op.f == "read" and op.value is None and not self.nil_absent

    # The search's pruning hooks (checker.models.base.Model), as for the kv model: with
    # many appends in flight at once (a leader failover), the orders that no later read
    # shows would otherwise each be a configuration of their own.

    def read_only(self, op: Op) -> bool:
        return op.f == "read"

    def accepting_states(self, op: Op) -> tuple[Any, ...] | None:
        if op.value is None:
            return ((),) if self.nil_absent else None
        return (op.value,)

    def read_horizon(self, reads: list[Op]) -> Callable[[Any], Any] | None:
        """A list that is a prefix of no read's list is :data:`UNSEEN_LIST`: appends only
        extend it, so no read can ever accept it or what follows; all such lists (every
        order of appends the reads contradict) make one state."""
        seen = [op.value for op in reads if isinstance(op.value, tuple)]
        if self.nil_absent and any(op.value is None for op in reads):
            seen.append(())  # a nil read sees the empty list
        prefixes = {read[:length] for read in seen for length in range(len(read) + 1)}

        def settle(state: Any) -> Any:
            if state is UNSEEN_LIST or state in prefixes:
                return state
            return UNSEEN_LIST

        return settle

    def unseeable(self, state: Any) -> bool:
        return state is UNSEEN_LIST

    def describe(self, state: Any) -> Any:
        if state is UNSEEN_LIST:
            return "<a list no read can see, even after appends>"
        return super().describe(state)


class _Unseen:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<unseen list>"


UNSEEN_LIST = _Unseen()


@dataclass(slots=True)
class AppendWorkload:
    active_keys: int = 3
    ops_per_key: int = 60  # then a fresh key; appends + reads on one key
    read_fraction: float = 0.5
    key_prefix: str = "l"
    name: str = field(default="append", init=False)
    _keys: KeyRotation = field(init=False, repr=False)
    _next_value: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.active_keys < 1 or self.ops_per_key < 1:
            raise ValueError("append workload: active_keys and ops_per_key must be at least 1")
        if not 0.0 <= self.read_fraction <= 1.0:
            raise ValueError("append workload: read_fraction must be within [0, 1]")
        self._keys = KeyRotation(self.active_keys, self.ops_per_key)

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
        key = self._keys.pick(rng)
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
            # Recorded as returned (an absent key is the empty list): a value that is not
            # a list is the system's doing and the model rejects it.
            return Outcome(OK, [key, [] if found is None else found])
        raise ValueError(f"append workload: unknown f {request.f!r}")

    async def setup(self, client: KVClient) -> None:
        return None

    def final_ops(self) -> list[OpRequest]:
        return [OpRequest("read", [key, None]) for key in sorted(self._keys.counts)]

    def check(self, history: list[Op], *, time_limit: float | None = None) -> dict[str, Any]:
        try:
            from checker.linearizable import check as check_linearizable

            result = check_linearizable(
                client_ops(history),
                ListAppendModel(nil_read="absent"),  # raftnode: nil only for an absent key
                init=None,
                time_limit=time_limit,
                independent=True,
            )
        except Exception as error:
            result = checker_failed("linearizable", error)
        return combine({"linearizable": result})
