"""register: Maelstrom's lin-kv: read / write / cas on several independent registers.

Each op acts on one key; its value is a Jepsen independent tuple ``[key, v]``:
``read [k, None]`` → ok ``[k, value-or-None]``, ``write [k, v]``, ``cas [k, [from, to]]``.
Values are drawn from a small range so that cas succeeds often (a cas that always fails
tests little). Each key gets at most ``ops_per_key`` ops, then a fresh key takes its
place: the linearizability search is exponential in concurrency per key, so short
per-key histories keep it tractable while the run stays long. Jepsen's
``independent/concurrent-generator`` gives each key a fixed group of threads; here every
process draws any of the ``active_keys`` keys at random, which keeps the concurrency on a
key at about concurrency / active_keys and needs no coordination between workers.

Checked per key as a linearizable cas-register (Knossos' model; initial value None, an
absent key): `checker.linearizable.check` with ``MODELS["cas-register"]`` and
``nil_read="absent"``: raftnode's get returns nil only for an absent key, so a read of
nil asserts the key holds nothing (a stale read of a fresh key is caught).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from checker.op import Op
from workloads.base import KeyRotation, OpRequest, checker_failed, client_ops, combine
from workloads.client import KVClient
from workloads.outcome import OK, Outcome

READ_FUNCTIONS = frozenset({"read"})


@dataclass(slots=True)
class RegisterWorkload:
    active_keys: int = 5  # keys being worked on at any time
    ops_per_key: int = 100  # then the key is retired and a fresh one takes its place
    value_range: int = 5  # values 0 .. value_range-1
    key_prefix: str = "r"  # KV key of register k is f"{key_prefix}{k}"
    name: str = field(default="register", init=False)
    _keys: KeyRotation = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for option in ("active_keys", "ops_per_key", "value_range"):
            if getattr(self, option) < 1:
                raise ValueError(f"register workload: {option} must be at least 1")
        self._keys = KeyRotation(self.active_keys, self.ops_per_key)

    def config(self) -> dict[str, Any]:
        return {
            "active_keys": self.active_keys,
            "ops_per_key": self.ops_per_key,
            "value_range": self.value_range,
            "key_prefix": self.key_prefix,
        }

    def kv_key(self, key: int) -> str:
        return f"{self.key_prefix}{key}"

    def is_read(self, f: str) -> bool:
        return f in READ_FUNCTIONS

    def next_op(self, rng: random.Random) -> OpRequest:
        key = self._keys.pick(rng)
        kind = rng.randrange(3)
        if kind == 0:
            return OpRequest("read", [key, None])
        if kind == 1:
            return OpRequest("write", [key, rng.randrange(self.value_range)])
        return OpRequest(
            "cas", [key, [rng.randrange(self.value_range), rng.randrange(self.value_range)]]
        )

    async def invoke(self, client: KVClient, request: OpRequest) -> Outcome:
        key, argument = request.value
        if request.f == "read":
            return Outcome(OK, [key, await client.get(self.kv_key(key))])
        if request.f == "write":
            await client.put(self.kv_key(key), argument)
            return Outcome(OK, [key, argument])
        if request.f == "cas":
            expected, new = argument
            await client.cas(self.kv_key(key), expected, new)
            return Outcome(OK, [key, [expected, new]])
        raise ValueError(f"register workload: unknown f {request.f!r}")

    async def setup(self, client: KVClient) -> None:
        return None  # registers start absent (None), as the model's initial value

    def final_ops(self) -> list[OpRequest]:
        return []  # every read is checked for linearizability already

    def check(self, history: list[Op], *, time_limit: float | None = None) -> dict[str, Any]:
        try:
            from checker.linearizable import check as check_linearizable
            from checker.models import MODELS

            result = check_linearizable(
                client_ops(history),
                MODELS["cas-register"],
                init=None,
                time_limit=time_limit,
                independent=True,
                nil_read="absent",
            )
        except Exception as error:  # conventions §2: a raising checker is "unknown"
            result = checker_failed("linearizable", error)
        return combine({"linearizable": result})
