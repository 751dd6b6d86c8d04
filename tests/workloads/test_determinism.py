"""The workloads read no wall clock and no global randomness: under trio's seeded
scheduler and a MockClock (as the simulation runs them), one seed gives one history."""

from __future__ import annotations

import random
import zlib
from typing import Any

import pytest
import trio
import trio.testing
from workload_fakes import FakeClientError, FakeFactory, Fault, MemoryKV

from campaign.sim.determinism import deterministic_scheduling
from workloads import WORKLOADS, make_workload
from workloads.recorder import HistoryRecorder
from workloads.runner import run_final_ops, run_workload


def some_timeouts(client_id: str, op: str, args: tuple) -> Fault | None:
    if zlib.crc32(repr((client_id, op, args)).encode()) % 11 == 0:
        return Fault(FakeClientError("timeout", False), applied=True, hang=0.3)
    return None


def run_once(name: str, seed: int) -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        workload = make_workload(name)
        recorder = HistoryRecorder()
        factory = FakeFactory(MemoryKV(), latency=0.02, decide=some_timeouts)
        await run_workload(
            workload,
            factory,
            recorder,
            concurrency="2n",
            rate=80,
            time_limit=5,
            rng=random.Random(seed),
            nodes=["n1", "n2", "n3"],
        )
        await run_final_ops(workload, factory, recorder, nodes=["n1", "n2", "n3"])
        return [op.to_dict() for op in recorder.ops]

    with deterministic_scheduling(seed):
        return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_same_seed_same_history(name: str) -> None:
    first = run_once(name, 5)
    assert len(first) > 300
    assert any(op["type"] == "info" for op in first)  # retirements are part of it
    assert run_once(name, 5) == first
    assert run_once(name, 6) != first
