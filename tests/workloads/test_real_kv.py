"""Every workload end to end against raftnode's real KV state machine (no network).

The client below sends the same fields as `raftnode.client.RaftClient` (``from``/``to``
for cas, ``from_key``/``to_key``/``amount`` for transfer, ``keys`` for mget) and applies
them to one `raftnode.kv.KVStateMachine` in order, as a one-node cluster would: this
checks the workloads against the KV's real reply shapes and error codes.
"""

from __future__ import annotations

import random
from types import TracebackType
from typing import Any

import pytest
import trio
import trio.testing
from workload_fakes import FakeClientError

from raftnode.kv import KVStateMachine, encode_command
from workloads import WORKLOADS, make_workload
from workloads.recorder import HistoryRecorder
from workloads.runner import run_final_ops, run_workload

NODES = ["n1", "n2", "n3"]


class KVStateMachineClient:
    def __init__(self, machine: KVStateMachine, log_index: list[int], client_id: str) -> None:
        self.machine = machine
        self.log_index = log_index  # shared: the next log index
        self.client_id = client_id
        self.seq = 0
        self.last_node = "n1"

    async def __aenter__(self) -> KVStateMachineClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    async def _write(self, op: str, **fields: Any) -> Any:
        await trio.sleep(0.005)  # a commit takes time; others interleave
        self.seq += 1
        self.log_index[0] += 1
        command = {"op": op, "client": self.client_id, "seq": self.seq, **fields}
        return self._answer(self.machine.apply(self.log_index[0], encode_command(command)))

    async def _read(self, op: str, **fields: Any) -> Any:
        await trio.sleep(0.005)
        return self._answer(self.machine.query({"op": op, **fields}))

    @staticmethod
    def _answer(reply: dict[str, Any]) -> Any:
        if reply.get("ok") is True:
            return reply.get("value")
        raise FakeClientError(reply["error"], True)

    async def get(self, key: str, /) -> Any:
        return await self._read("get", key=key)

    async def mget(self, keys: list[str], /) -> Any:
        return await self._read("mget", keys=list(keys))

    async def put(self, key: str, value: Any, /) -> Any:
        return await self._write("put", key=key, value=value)

    async def cas(self, key: str, expected: Any, new: Any, /) -> Any:
        return await self._write("cas", key=key, **{"from": expected, "to": new})

    async def append(self, key: str, value: Any, /) -> Any:
        return await self._write("append", key=key, value=value)

    async def transfer(self, from_key: str, to_key: str, amount: int, /) -> Any:
        return await self._write("transfer", from_key=from_key, to_key=to_key, amount=amount)

    async def txn(self, ops: list[Any], /) -> Any:
        return await self._write("txn", ops=[list(mop) for mop in ops])


@pytest.mark.parametrize("name", sorted(WORKLOADS))
async def test_workload_is_valid_against_the_real_kv(
    name: str, autojump_clock: trio.testing.MockClock
) -> None:
    machine = KVStateMachine()
    log_index = [0]

    def factory(*, process: int, client_id: str, node: str | None) -> KVStateMachineClient:
        return KVStateMachineClient(machine, log_index, client_id)

    workload = make_workload(name)
    recorder = HistoryRecorder()
    await run_workload(
        workload,
        factory,
        recorder,
        concurrency="2n",
        rate=100,
        time_limit=10,
        rng=random.Random(21),
        nodes=NODES,
    )
    finals = await run_final_ops(workload, factory, recorder, nodes=NODES)
    assert all(op is not None for op in finals)
    result = workload.check(recorder.ops)
    assert result["valid"] is True, result
    completions = [op for op in recorder.ops if op.type != "invoke"]
    assert sum(op.type == "ok" for op in completions) > 500
    assert all(op.node == "n1" for op in completions if op.type == "ok")
    if name == "register":  # the KV's definite cas failures show up as fail
        assert {op.error for op in completions if op.type == "fail"} <= {
            "cas_mismatch",
            "not_found",
        }
        assert any(op.error == "cas_mismatch" for op in completions)
