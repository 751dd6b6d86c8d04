"""Seeded list-append histories from a simulated store, with anomalies planted on request.

The store is strictly serializable by construction: each client invokes a txn, the txn
takes effect atomically at one later instant (its commit), and the client hears of it
later still; many clients are in flight at once. A txn may fail (no effect) or end
``info`` (it took effect or not; the client then continues as a new process, as Jepsen's
do). Keys rotate as in Elle's generator: each active key takes a bounded number of
appends, then a fresh key replaces it, so lists stay short.

``plant`` adds one anomaly in the middle of the run by letting two txns of fresh keys
interleave non-atomically (both invoked before either takes effect, both completed after),
then a third txn reads those keys:

- ``G0``: T1 and T2 both append to x and y; x gets T1's then T2's, y T2's then T1's.
- ``G1c``: T1 appends to x and reads y; T2 reads x after T1's append and appends to y
  before T1's read.
- ``G-single``: T1 reads x before and y after T2 appends to both (read skew).
- ``G2-item``: T1 reads x and appends to y, T2 reads y and appends to x, both reads first
  (write skew).
- ``G1a``: a txn that fails has its append take effect anyway.
- ``incompatible-order``: a read returns the list with its last two elements swapped.

This is a workload generator for tests and benchmarks, in the checker package so that
both use one generator; it knows nothing of raftnode.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from checker.history import Op

PLANTS = ("G0", "G1c", "G-single", "G2-item", "G1a", "incompatible-order")


def list_append_history(
    txn_count: int,
    *,
    seed: int = 0,
    clients: int = 10,
    min_ops: int = 1,
    max_ops: int = 4,
    key_count: int = 8,
    max_writes_per_key: int = 32,
    read_fraction: float = 0.5,
    fail_fraction: float = 0.01,
    info_fraction: float = 0.005,
    plant: str | None = None,
) -> list[Op]:
    return list(
        iter_list_append_history(
            txn_count,
            seed=seed,
            clients=clients,
            min_ops=min_ops,
            max_ops=max_ops,
            key_count=key_count,
            max_writes_per_key=max_writes_per_key,
            read_fraction=read_fraction,
            fail_fraction=fail_fraction,
            info_fraction=info_fraction,
            plant=plant,
        )
    )


def iter_list_append_history(
    txn_count: int,
    *,
    seed: int = 0,
    clients: int = 10,
    min_ops: int = 1,
    max_ops: int = 4,
    key_count: int = 8,
    max_writes_per_key: int = 32,
    read_fraction: float = 0.5,
    fail_fraction: float = 0.01,
    info_fraction: float = 0.005,
    plant: str | None = None,
) -> Iterator[Op]:
    """The ops of the history, as they happen (see the module's docstring)."""
    if plant is not None and plant not in PLANTS:
        raise ValueError(f"unknown plant {plant!r}; expected one of {', '.join(PLANTS)}")
    rng = random.Random(seed)
    store: dict[Any, list[int]] = {}
    active = list(range(key_count))
    next_key = key_count
    writes: dict[Any, int] = {}
    next_value = 1
    index = 0
    # Per client slot: None (idle) or [process, mops, state] with state "invoked"/"done".
    slots: list[list[Any] | None] = [None] * clients
    processes = list(range(clients))
    next_process = clients
    invoked = 0
    completed = 0
    plant_at = txn_count // 2 if plant is not None else -1

    def op(type_: str, process: int, value: Any) -> Op:
        nonlocal index
        out = Op(index=index, time=index * 1000, type=type_, process=process, f="txn", value=value)
        index += 1
        return out

    def new_txn() -> list[list[Any]]:
        nonlocal next_key, next_value
        mops: list[list[Any]] = []
        for _ in range(rng.randint(min_ops, max_ops)):
            slot = rng.randrange(len(active))
            k = active[slot]
            if rng.random() < read_fraction:
                mops.append(["r", k, None])
            else:
                mops.append(["append", k, next_value])
                next_value += 1
                writes[k] = writes.get(k, 0) + 1
                if writes[k] >= max_writes_per_key:
                    active[slot] = next_key
                    next_key += 1
        return mops

    def apply(mops: list[list[Any]]) -> list[list[Any]]:
        out = []
        for f, k, v in mops:
            if f == "append":
                store.setdefault(k, []).append(v)
                out.append([f, k, v])
            else:
                out.append([f, k, list(store.get(k, ()))])
        return out

    while completed < txn_count:
        if invoked == plant_at:
            plant_at = -1
            for planted in _plant(plant, store, f"p{seed}", next_value):  # type: ignore[arg-type]
                kind, process, value = planted
                yield op(kind, next_process + process, value)
            next_process += 3
            next_value += 100
            invoked += 3
            completed += 3
            continue
        c = rng.randrange(clients)
        slot = slots[c]
        if slot is None:
            if invoked >= txn_count:
                continue
            mops = new_txn()
            slots[c] = [processes[c], mops, "invoked"]
            invoked += 1
            yield op("invoke", processes[c], [list(m) for m in mops])
        elif slot[2] == "invoked":
            roll = rng.random()
            if roll < fail_fraction:
                slots[c] = None
                completed += 1
                yield op("fail", slot[0], slot[1])
            elif roll < fail_fraction + info_fraction:
                if rng.random() < 0.5:
                    apply(slot[1])
                slots[c] = None
                completed += 1
                processes[c] = next_process
                next_process += 1
                yield op("info", slot[0], slot[1])
            else:
                slot[1] = apply(slot[1])
                slot[2] = "done"
        else:
            slots[c] = None
            completed += 1
            yield op("ok", slot[0], slot[1])


def _plant(kind: str, store: dict[Any, list[int]], prefix: str, v: int) -> list[tuple[str, int, Any]]:
    """(type, process offset, value) events of the planted txns."""
    x, y = f"{prefix}x", f"{prefix}y"

    def read(k: str) -> list[int]:
        return list(store.get(k, ()))

    def append(k: str, value: int) -> None:
        store.setdefault(k, []).append(value)

    events: list[tuple[str, int, Any]] = []
    if kind == "G0":
        t1 = [["append", x, v], ["append", y, v + 1]]
        t2 = [["append", x, v + 2], ["append", y, v + 3]]
        events += [("invoke", 0, t1), ("invoke", 1, t2)]
        append(x, v)
        append(x, v + 2)
        append(y, v + 3)
        append(y, v + 1)
        events += [("ok", 0, t1), ("ok", 1, t2)]
    elif kind == "G1c":
        t1 = [["append", x, v], ["r", y, None]]
        t2 = [["r", x, None], ["append", y, v + 1]]
        events += [("invoke", 0, t1), ("invoke", 1, t2)]
        append(x, v)
        t2_done = [["r", x, read(x)], ["append", y, v + 1]]
        append(y, v + 1)
        t1_done = [["append", x, v], ["r", y, read(y)]]
        events += [("ok", 0, t1_done), ("ok", 1, t2_done)]
    elif kind == "G-single":
        t1 = [["r", x, None], ["r", y, None]]
        t2 = [["append", x, v], ["append", y, v + 1]]
        events += [("invoke", 0, t1), ("invoke", 1, t2)]
        before = read(x)
        append(x, v)
        append(y, v + 1)
        events += [("ok", 0, [["r", x, before], ["r", y, read(y)]]), ("ok", 1, t2)]
    elif kind == "G2-item":
        t1 = [["r", x, None], ["append", y, v]]
        t2 = [["r", y, None], ["append", x, v + 1]]
        events += [("invoke", 0, t1), ("invoke", 1, t2)]
        rx, ry = read(x), read(y)
        append(y, v)
        append(x, v + 1)
        events += [
            ("ok", 0, [["r", x, rx], ["append", y, v]]),
            ("ok", 1, [["r", y, ry], ["append", x, v + 1]]),
        ]
    elif kind == "G1a":
        t1 = [["append", x, v]]
        t2 = [["append", y, v + 1]]
        events += [("invoke", 0, t1), ("invoke", 1, t2)]
        append(x, v)
        append(y, v + 1)
        events += [("fail", 0, t1), ("ok", 1, t2)]
    elif kind == "incompatible-order":
        t1 = [["append", x, v], ["append", x, v + 1]]
        t2 = [["r", x, None]]
        events += [("invoke", 0, t1), ("invoke", 1, t2)]
        append(x, v)
        append(x, v + 1)
        swapped = read(x)
        swapped[-2:] = swapped[-1:-3:-1]
        events += [("ok", 0, t1), ("ok", 1, [["r", x, swapped]])]
    reader = [["r", x, None], ["r", y, None]]
    events += [("invoke", 2, reader), ("ok", 2, [["r", x, read(x)], ["r", y, read(y)]])]
    return events
