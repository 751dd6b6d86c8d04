"""What the transactional workloads share (``list-append``, ``rw-register``; Elle's).

An op is Jepsen's ``f: "txn"`` whose ``value`` is a list of 1 to ``max_txn_length``
micro-ops ``[f, k, v]`` over integer keys; the completion carries the micro-ops with the
reads filled in. Keys rotate (`KeyRotation`): ``key_count`` keys are in use at once and a
key retires after ``ops_per_key`` micro-ops, so each key's version order stays short (as
Elle's ``max-writes-per-key``). Every written value is unique per key (1, 2, 3, ... per
key), which is what lets the checker name the txn behind every value it reads.

Outcomes: a txn with a write follows conventions §3 (an indefinite error is ``info``: it
may have committed); a read-only txn records any error as ``fail`` (it changed nothing,
so dropping it is sound and the process carries on), as Jepsen's clients do for reads.
Both happen here in `invoke`, since every op has ``f`` = ``txn`` and the runner's
`is_read(f)` cannot tell them apart.

The check is `checker.elle.check` under ``consistency_model`` (default
``strict-serializable``: what raftnode promises, one log order that respects real time).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from checker.op import Op
from workloads.base import KeyRotation, OpRequest, checker_failed, client_ops, combine
from workloads.client import KVClient
from workloads.outcome import INFO, OK, Outcome, outcome_of_error

DEFAULT_CONSISTENCY_MODEL = "strict-serializable"


@dataclass(slots=True)
class TxnWorkload:
    key_count: int = 5  # keys in use at once
    min_txn_length: int = 1
    max_txn_length: int = 4
    ops_per_key: int = 64  # micro-ops on a key, then a fresh key takes its slot
    read_fraction: float = 0.5  # the chance that a micro-op is a read
    consistency_model: str = DEFAULT_CONSISTENCY_MODEL
    key_prefix: str = "t"
    name: str = field(default="txn", init=False)
    _keys: KeyRotation = field(init=False, repr=False)
    _next_value: dict[int, int] = field(init=False, repr=False)

    # The subclass's Elle workload and the micro-op that writes.
    elle_workload = ""
    write_f = ""

    def __post_init__(self) -> None:
        from checker.elle.anomalies import MODELS

        label = self.elle_workload
        for option in ("key_count", "min_txn_length", "ops_per_key"):
            if getattr(self, option) < 1:
                raise ValueError(f"{label} workload: {option} must be at least 1")
        if self.max_txn_length < self.min_txn_length:
            raise ValueError(f"{label} workload: max_txn_length is below min_txn_length")
        if not 0.0 <= self.read_fraction <= 1.0:
            raise ValueError(f"{label} workload: read_fraction must be within [0, 1]")
        if self.consistency_model not in MODELS:
            raise ValueError(
                f"{label} workload: consistency_model must be one of {', '.join(MODELS)}"
            )
        self._keys = KeyRotation(self.key_count, self.ops_per_key)
        self._next_value = {}

    def config(self) -> dict[str, Any]:
        return {
            "key_count": self.key_count,
            "min_txn_length": self.min_txn_length,
            "max_txn_length": self.max_txn_length,
            "ops_per_key": self.ops_per_key,
            "read_fraction": self.read_fraction,
            "consistency_model": self.consistency_model,
            "key_prefix": self.key_prefix,
        }

    def kv_key(self, key: int) -> str:
        return f"{self.key_prefix}{key}"

    def is_read(self, f: str) -> bool:
        return False  # every op is a txn; read-only ones are handled in invoke

    def next_op(self, rng: random.Random) -> OpRequest:
        mops: list[list[Any]] = []
        for _ in range(rng.randint(self.min_txn_length, self.max_txn_length)):
            key = self._keys.pick(rng)
            if rng.random() < self.read_fraction:
                mops.append(["r", key, None])
            else:
                value = self._next_value.get(key, 0) + 1
                self._next_value[key] = value
                mops.append([self.write_f, key, value])
        return OpRequest("txn", mops)

    def record_read(self, value: Any) -> Any:
        """A read's value as the history records it."""
        return value

    async def invoke(self, client: KVClient, request: OpRequest) -> Outcome:
        mops = request.value
        read_only = all(mop[0] == "r" for mop in mops)
        try:
            reply = await client.txn([[f, self.kv_key(k), v] for f, k, v in mops])
        except Exception as exc:
            if read_only:  # a read changes nothing: any error is a fail (module doc)
                return outcome_of_error(exc, read=True, value=mops)
            raise  # the runner maps it (conventions §3)
        done = self._completion(mops, reply)
        if done is None:
            # The system answered ok with micro-ops other than those sent: we cannot say
            # what happened, and the checker would refuse the history.
            return Outcome(INFO, mops, "unexpected_reply")
        return Outcome(OK, done)

    def _completion(self, mops: list[list[Any]], reply: Any) -> list[list[Any]] | None:
        if not isinstance(reply, list) or len(reply) != len(mops):
            return None
        done: list[list[Any]] = []
        for (f, key, value), got in zip(mops, reply, strict=True):
            if not isinstance(got, list | tuple) or len(got) != 3:
                return None
            if got[0] != f or got[1] != self.kv_key(key) or (f != "r" and got[2] != value):
                return None
            done.append([f, key, self.record_read(got[2]) if f == "r" else value])
        return done

    async def setup(self, client: KVClient) -> None:
        return None

    def final_ops(self) -> list[OpRequest]:
        """Read every key used, 16 keys a txn (after healing): Elle's lost-append and
        the version orders see the final state."""
        keys = sorted(self._keys.counts)
        return [
            OpRequest("txn", [["r", key, None] for key in keys[start : start + 16]])
            for start in range(0, len(keys), 16)
        ]

    def check(self, history: list[Op], *, time_limit: float | None = None) -> dict[str, Any]:
        name = f"elle-{self.elle_workload}"
        try:
            from checker.elle import check as elle_check

            result = elle_check(
                client_ops(history),
                self.elle_workload,
                consistency_model=self.consistency_model,
                time_limit=time_limit,
            )
        except Exception as error:
            result = checker_failed(name, error)
        return combine({name: result})
