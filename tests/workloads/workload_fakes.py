"""Test doubles for the workload unit tests: an in-memory KV and a client over it.

Only for the unit tests of workloads/ (DEVELOPERS.md: mocks inside the unit test of one
unit). The KV follows ARCHITECTURE.md's KV table: cas/transfer failures are definite
errors, reads of absent keys are None, append returns the new list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import trio


class FakeClientError(Exception):
    def __init__(self, code: str, definite: bool, leader: str | None = None) -> None:
        super().__init__(f"{code} (definite={definite})")
        self.code = code
        self.definite = definite
        self.leader = leader


@dataclass(slots=True)
class MemoryKV:
    """A single-copy, atomic KV: what a correct cluster looks like from outside."""

    data: dict[str, Any] = field(default_factory=dict)
    # Planted bugs, off by default:
    lose_appends: bool = False  # appends are acknowledged but dropped
    stale_read_every: int = 0  # every Nth get answers with the key's value before its last write
    duplicate_append_every: int = 0  # appends of values divisible by N are applied twice
    applied: list[tuple[str, str, Any]] = field(default_factory=list)
    previous: dict[str, Any] = field(default_factory=dict)  # key -> value before its last write

    def apply(self, op: str, *args: Any) -> Any:
        self.applied.append((op, args[0] if args else "", args[1:] if len(args) > 1 else None))
        if op == "get":
            key = args[0]
            stale = self.stale_read_every and len(self.applied) % self.stale_read_every == 0
            if stale and key in self.previous:
                return self.previous[key]
            return self.data.get(key)
        if op == "put":
            self.previous[args[0]] = self.data.get(args[0])
            self.data[args[0]] = args[1]
            return None
        if op == "cas":
            key, expected, new = args
            if key not in self.data:
                raise FakeClientError("not_found", True)
            if self.data[key] != expected:
                raise FakeClientError("cas_mismatch", True)
            self.previous[key] = self.data[key]
            self.data[key] = new
            return None
        if op == "append":
            key, value = args
            current = list(self.data.get(key) or [])
            if not self.lose_appends:
                current.append(value)
                if self.duplicate_append_every and value % self.duplicate_append_every == 0:
                    current.append(value)
                self.data[key] = current
            return current
        if op == "transfer":
            source, target, amount = args
            if self.data.get(source, 0) < amount:
                raise FakeClientError("insufficient_funds", True)
            self.data[source] -= amount
            self.data[target] = self.data.get(target, 0) + amount
            return None
        if op == "mget":
            return {key: self.data.get(key) for key in args[0]}
        if op == "txn":  # atomic: micro-ops in order, reads see the txn's own writes
            done = []
            for f, key, value in args[0]:
                if f == "r":
                    done.append([f, key, self.data.get(key)])
                    continue
                self.data[key] = [*(self.data.get(key) or []), value] if f == "append" else value
                done.append([f, key, value])
            return done
        raise AssertionError(op)


# decide(client_id, op, args) -> an exception to raise before/after applying, or None.
Decider = Callable[[str, str, tuple[Any, ...]], "Fault | None"]


@dataclass(slots=True)
class Fault:
    error: BaseException
    applied: bool = False  # True: the op takes effect, then the error is raised (a timeout)
    hang: float = 0.0  # seconds to wait first


class FakeClient:
    """A KVClient over a MemoryKV with a per-op latency in Trio time and scripted faults."""

    def __init__(
        self,
        kv: MemoryKV,
        *,
        client_id: str,
        node: str | None = None,
        latency: float = 0.0,
        decide: Decider | None = None,
        fail_open: bool = False,
        log: list[tuple[str, str]] | None = None,
    ) -> None:
        self.kv = kv
        self.client_id = client_id
        self.node = node
        self.latency = latency
        self.decide = decide
        self.fail_open = fail_open
        self.last_node: str | None = None
        self.log = log if log is not None else []
        self.open = False

    async def __aenter__(self) -> FakeClient:
        await trio.lowlevel.checkpoint()
        if self.fail_open:
            raise OSError("connection refused")
        self.open = True
        self.log.append((self.client_id, "open"))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.open = False
        self.log.append((self.client_id, "close"))

    async def _call(self, op: str, *args: Any) -> Any:
        assert self.open, "op on a closed client"
        fault = self.decide(self.client_id, op, args) if self.decide else None
        if self.latency:
            await trio.sleep(self.latency)
        else:
            await trio.lowlevel.checkpoint()
        if fault is not None:
            if fault.hang:
                await trio.sleep(fault.hang)
            if fault.applied:
                self.kv.apply(op, *args)
            raise fault.error
        self.last_node = self.node
        return self.kv.apply(op, *args)

    async def get(self, key: str, /) -> Any:
        return await self._call("get", key)

    async def put(self, key: str, value: Any, /) -> Any:
        return await self._call("put", key, value)

    async def cas(self, key: str, expected: Any, new: Any, /) -> Any:
        return await self._call("cas", key, expected, new)

    async def append(self, key: str, value: Any, /) -> Any:
        return await self._call("append", key, value)

    async def delete(self, key: str, /) -> Any:
        return await self._call("delete", key)

    async def transfer(self, from_key: str, to_key: str, amount: int, /) -> Any:
        return await self._call("transfer", from_key, to_key, amount)

    async def mget(self, keys: list[str], /) -> Any:
        return await self._call("mget", keys)

    async def txn(self, ops: list[Any], /) -> Any:
        return await self._call("txn", [list(mop) for mop in ops])


@dataclass(slots=True)
class FakeFactory:
    """A ClientFactory: records every (process, client_id, node) it was asked for."""

    kv: MemoryKV
    latency: float = 0.0
    decide: Decider | None = None
    fail_opens: int = 0  # the first N opens of worker processes (process >= 0) fail
    made: list[tuple[int, str, str | None]] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, *, process: int, client_id: str, node: str | None) -> FakeClient:
        self.made.append((process, client_id, node))
        fail = self.fail_opens > 0 and process >= 0
        self.fail_opens -= 1 if fail else 0
        return FakeClient(
            self.kv,
            client_id=client_id,
            node=node,
            latency=self.latency,
            decide=self.decide,
            fail_open=fail,
            log=self.log,
        )


def completions_per_invoke(ops: list[Any]) -> dict[int, int]:
    """For every invoke index, how many completions its process recorded for it."""
    open_invoke: dict[Any, int] = {}
    counts: dict[int, int] = {}
    for op in ops:
        if op.type == "invoke":
            assert op.process not in open_invoke, f"process {op.process} invoked twice: {op}"
            open_invoke[op.process] = op.index
            counts[op.index] = 0
        elif isinstance(op.process, int):
            index = open_invoke.pop(op.process)
            counts[index] += 1
    return counts
