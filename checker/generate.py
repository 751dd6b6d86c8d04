"""Seeded random histories of one cas-register: for benchmarks and tests of the checker.

``cas_register_history(clients, ops, seed=...)`` simulates ``clients`` processes against
one linearizable register: each operation is invoked, takes effect at one moment while it
is outstanding (the register's true linearization point), and completes later, so the
history is linearizable by construction. Written values are unique (a counter), or drawn
from ``range(value_range)`` when that is given (Knossos' and Porcupine's generators); a cas
names the value the register holds about half the time (and then succeeds) or an older
value (and fails). ``info_rate`` turns that share of the
completions of writes and successful cas into ``info`` (the effect happened; the client
does not know it). ``stale_reads=k`` then plants ``k`` stale reads: a
read that completed ok is given a value that was overwritten by a write completed before
that read was invoked — a violation whatever else the history holds (unique values: no
other op can bring the old value back).

All randomness flows from ``seed``. The register starts empty (nil).
"""

from __future__ import annotations

import random
from typing import Any

from checker.op import Op

__all__ = ["cas_register_history"]


def cas_register_history(
    clients: int,
    ops: int,
    *,
    seed: int = 0,
    stale_reads: int = 0,
    info_rate: float = 0.0,
    read_share: float = 0.5,
    value_range: int | None = None,
) -> list[Op]:
    """A history of ``ops`` operations (invoke + completion each) by ``clients`` processes."""
    rng = random.Random(seed)
    history: list[Op] = []
    register: Any = None
    counter = 0

    def fresh() -> int:
        nonlocal counter
        if value_range is not None:
            return rng.randrange(value_range)
        counter += 1
        return counter
    written: list[tuple[Any, int]] = []  # (value, history position of its write's completion)
    # per process: None (idle) or [invoke position, f, value, result or _PENDING, outcome]
    outstanding: dict[int, list[Any]] = {}
    started = 0
    clock = 0

    def emit(kind: str, process: int, f: str, value: Any) -> int:
        nonlocal clock
        clock += rng.randint(1, 1000)
        history.append(
            Op(index=len(history), time=clock, type=kind, process=process, f=f, value=value)
        )
        return len(history) - 1

    while started < ops or outstanding:
        process = rng.randrange(clients)
        slot = outstanding.get(process)
        if slot is None:
            if started >= ops:
                continue
            started += 1
            roll = rng.random()
            if roll < read_share:
                f, value = "read", None
            elif roll < read_share + (1 - read_share) / 2 or not written:
                f, value = "write", fresh()
            else:
                expected = register if rng.random() < 0.5 else rng.choice(written)[0]
                f, value = "cas", [expected, fresh()]
            outstanding[process] = [emit("invoke", process, f, value), f, value, None, False]
            continue
        _, f, value, result, applied = slot
        if not applied:  # the linearization point
            slot[4] = True
            if f == "read":
                slot[3] = register
            elif f == "write":
                register = value
                slot[3] = True
            else:
                ok = value[0] == register
                if ok:
                    register = value[1]
                slot[3] = ok
            continue
        del outstanding[process]
        if f == "read":
            emit("ok", process, f, result)
            continue
        if f == "cas" and not result:
            emit("fail", process, f, value)
            continue
        if info_rate and rng.random() < info_rate:
            emit("info", process, f, value)
            continue
        emit("ok", process, f, value)
        written.append((value if f == "write" else value[1], 0))
    _plant_stale_reads(history, rng, stale_reads, value_range)
    return history


def _plant_stale_reads(
    history: list[Op], rng: random.Random, count: int, value_range: int | None
) -> None:
    """Give ``count`` ok reads (past the first third) a value overwritten before their invoke.

    Value v (written by W) is stale for a read R when some write or successful cas W2 was
    invoked after W completed and completed before R was invoked: W2 follows W and
    precedes R in every linearization, and no op writes v again (unique values).
    """
    if not count:
        return
    if value_range is not None:
        raise ValueError("stale reads are planted in histories of unique values only")
    invoke_of: dict[int, int] = {}
    pending: dict[Any, int] = {}
    for position, op in enumerate(history):
        if op.type == "invoke":
            pending[op.process] = position
        else:
            invoke_of[position] = pending.pop(op.process)
    writes: list[tuple[Any, int, int]] = []  # (value, invoke, completion), by completion
    for position, op in enumerate(history):
        if op.type == "ok" and op.f in ("write", "cas"):
            value = op.value if op.f == "write" else op.value[1]
            writes.append((value, invoke_of[position], position))
    reads = [
        position
        for position, op in enumerate(history)
        if op.type == "ok" and op.f == "read" and position > len(history) // 3
    ]
    rng.shuffle(reads)
    planted = 0
    for position in reads:
        if planted == count:
            break
        invoked = invoke_of[position]
        before = [w for w in writes if w[2] < invoked]
        for value, _, completed in reversed(before[:-1]):
            if any(inv2 > completed and comp2 < invoked for _, inv2, comp2 in before):
                if value != history[position].value:
                    history[position].value = value
                    planted += 1
                    break
    if planted < count:
        raise ValueError(f"could plant only {planted} of {count} stale reads")
