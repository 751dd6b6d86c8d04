"""Synthetic runs for the campaign's unit tests: histories, nemesis ops, node logs."""

from __future__ import annotations

import random
from typing import Any

import pytest

from checker.op import NEMESIS, Op

MS = 1_000_000


def synthetic_register_history(
    *, seed: int = 7, operations: int = 60, stale: bool = False
) -> list[Op]:
    """A register-workload history (keys 0 and 1, Jepsen ``[key, v]`` values) of three
    processes with a partition in the middle.

    Operations run one at a time (no overlap), so the history is linearizable by
    construction; with ``stale=True`` the last read of key 0 returns a value overwritten
    before it was invoked: a stale read, which no linearization explains.
    """
    rng = random.Random(seed)
    ops: list[Op] = []
    now = 0
    current: dict[int, int | None] = {0: None, 1: None}

    def add(**fields: Any) -> None:
        ops.append(Op(index=len(ops), **fields))

    for number in range(operations):
        if number == operations // 3:
            add(time=now, type="invoke", process=NEMESIS, f="start-partition", value="leader")
            now += MS
            add(
                time=now,
                type="info",
                process=NEMESIS,
                f="start-partition",
                value=[["n1"], ["n2", "n3"]],
            )
        if number == 2 * operations // 3:
            add(time=now, type="invoke", process=NEMESIS, f="stop-partition", value=None)
            now += MS
            add(time=now, type="info", process=NEMESIS, f="stop-partition", value="healed")
        process = number % 3
        now += rng.randrange(1, 5) * MS
        outcome = rng.random()
        key = rng.randrange(2)
        if rng.random() < 0.5:
            value = [key, rng.randrange(5)]
            add(time=now, type="invoke", process=process, f="write", value=value)
            now += rng.randrange(1, 20) * MS
            if outcome < 0.85:
                current[key] = value[1]
                add(time=now, type="ok", process=process, f="write", value=value, node="n1")
            else:
                add(time=now, type="fail", process=process, f="write", value=value, error="x")
        else:
            add(time=now, type="invoke", process=process, f="read", value=[key, None])
            now += rng.randrange(1, 20) * MS
            read = [key, current[key]]
            add(time=now, type="ok", process=process, f="read", value=read, node="n2")
    if stale:
        first = (current[0] or 0) + 1
        second = first + 1
        for value in (first, second):
            now += MS
            add(time=now, type="invoke", process=0, f="write", value=[0, value])
            now += MS
            add(time=now, type="ok", process=0, f="write", value=[0, value])
        now += MS
        add(time=now, type="invoke", process=1, f="read", value=[0, None])
        now += MS
        add(time=now, type="ok", process=1, f="read", value=[0, first])
    # One process that crashed mid-operation: an invoke with an info completion.
    now += MS
    add(time=now, type="invoke", process=2, f="write", value=[1, 4])
    now += 500 * MS
    add(time=now, type="info", process=2, f="write", value=[1, 4], error="timeout")
    return ops


def node_log_text(node: str, started_wall: float, changes: list[tuple[float, str, int]]) -> str:
    """A node log in raftnode/server.py's format, with some unrelated lines."""
    from datetime import UTC, datetime

    def stamp(offset: float) -> str:  # raftnode/server.py's make_logger: ms and a Z
        moment = datetime.fromtimestamp(started_wall + offset, UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    lines = [f"{stamp(0)} {node} listening on 127.0.0.1:19001"]
    lines.append(f"{stamp(0)} {node} starting restored_term=7 restored_entries=0")
    for offset, role, term in changes:
        leader = node if role == "leader" else "None"
        lines.append(f"{stamp(offset)} {node} role={role} term={term} leader={leader}")
    lines.append("garbage line without a timestamp role=leader term=99")
    return "\n".join(lines) + "\n"


@pytest.fixture
def register_history() -> list[Op]:
    return synthetic_register_history()


@pytest.fixture
def stale_history() -> list[Op]:
    return synthetic_register_history(stale=True)


@pytest.fixture
def make_node_log():
    return node_log_text


@pytest.fixture
def make_history():
    return synthetic_register_history
