"""The checker against plain searches: serial histories, and brute-force serializability.

The brute force is written here independently of the checker: it tries every serial order
of the committed txns — with each ``info`` txn included or left out — replays them on
plain lists (or registers) and accepts when every ok read sees exactly the state the order
gives it (and, for strict serializability, no txn precedes one that completed before it
was invoked).

What is claimed, precisely (Elle is sound, not complete):
- whenever the checker finds an anomaly serializability forbids (list-append or
  rw-register), the brute force finds no serial order;
- on list-append histories where every txn committed and a last txn reads every key —
  so the reads reveal every key's whole version order — the converse holds too: the
  checker says serializable exactly when a serial order exists. The same for strict
  serializability with real-time order.
- every history of a store that applies each txn atomically between its invoke and its
  completion is valid under strict serializability.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.elle import check
from checker.elle.generate import list_append_history
from checker.history import Op

SETTINGS = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# --------------------------------------------------------------------------- the brute force


def _txns(ops: list[Op]) -> list[dict[str, Any]]:
    """Invoke/completion pairs, as plain dicts (the brute force's own pairing)."""
    open_: dict[Any, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for position, op in enumerate(ops):
        if op.type == "invoke":
            txn = {"invoke": position, "complete": None, "type": "info", "value": op.value}
            open_[op.process] = txn
            out.append(txn)
        else:
            txn = open_.pop(op.process)
            txn["type"] = op.type
            if op.type == "ok":
                txn["complete"] = position
                txn["value"] = op.value
    return out


def _replay(order: list[dict[str, Any]], register: bool) -> bool:
    state: dict[Any, Any] = {}
    for txn in order:
        for f, k, v in txn["value"]:
            if f == "append":
                state.setdefault(k, []).append(v)
            elif f == "w":
                state[k] = v
            elif txn["type"] == "ok":
                now = state.get(k) if register else state.get(k, [])
                if now != (v if register or v is not None else []):
                    return False
    return True


def serial_order_exists(ops: list[Op], *, register: bool = False, realtime: bool = False) -> bool:
    txns = [t for t in _txns(ops) if t["type"] != "fail"]
    committed = [t for t in txns if t["type"] == "ok"]
    infos = [t for t in txns if t["type"] == "info"]
    for mask in range(1 << len(infos)):
        chosen = committed + [t for i, t in enumerate(infos) if mask >> i & 1]
        for order in itertools.permutations(chosen):
            if realtime and any(
                a["complete"] is not None and a["complete"] < b["invoke"]
                for i, b in enumerate(order)
                for a in order[i + 1 :]
            ):
                continue
            if _replay(list(order), register):
                return True
    return False


# --------------------------------------------------------------------------- random stores


def sloppy_history(
    seed: int, *, register: bool = False, all_ok: bool = False, final_read: bool = False
) -> list[Op]:
    """Txns on a store that runs micro-ops one at a time, interleaved, and serves some reads
    from stale versions: anomalies of every kind, and clean histories too."""
    rng = random.Random(seed)
    keys = ["x", "y", "z"][: rng.randint(1, 3)]
    versions: dict[str, list[Any]] = {k: [[] if not register else None] for k in keys}
    count = rng.randint(2, 5)
    txns = []
    value = 1
    for p in range(count):
        mops = []
        for _ in range(rng.randint(1, 3)):
            k = rng.choice(keys)
            if rng.random() < 0.5:
                mops.append(["r", k, None])
            else:
                mops.append(["w" if register else "append", k, value])
                value += 1
        roll = rng.random()
        outcome = "ok" if all_ok or roll < 0.75 else ("fail" if roll < 0.87 else "info")
        txns.append({"process": p, "mops": mops, "outcome": outcome, "done": []})
    # Steps: each txn's invoke, each micro-op, its completion; micro-ops in order per txn.
    pending = {i: ["invoke", *range(len(t["mops"])), "complete"] for i, t in enumerate(txns)}
    events: list[tuple[str, int, Any]] = []
    applies = {i: t["outcome"] == "ok" or rng.random() < 0.5 for i, t in enumerate(txns)}
    while pending:
        i = rng.choice(sorted(pending))
        step = pending[i].pop(0)
        txn = txns[i]
        if not pending[i]:
            del pending[i]
        if step == "invoke":
            invoke = [[f, k, None if f == "r" else v] for f, k, v in txn["mops"]]
            events.append(("invoke", txn["process"], invoke))
        elif step == "complete":
            value_out = txn["done"] if txn["outcome"] == "ok" else txn["mops"]
            events.append((txn["outcome"], txn["process"], value_out))
        else:
            f, k, v = txn["mops"][step]
            history = versions[k]
            if f == "r":
                stale = rng.random() < 0.3
                seen = history[rng.randrange(len(history))] if stale else history[-1]
                txn["done"].append([f, k, list(seen) if not register else seen])
            else:
                if applies[i]:
                    history.append([*history[-1], v] if not register else v)
                txn["done"].append([f, k, v])
    if final_read:
        reads = [["r", k, None] for k in keys]
        events.append(("invoke", count, reads))
        events.append(("ok", count, [["r", k, versions[k][-1]] for k in keys]))
    return [
        Op(index=n, time=n, type=t, process=p, f="txn", value=v)
        for n, (t, p, v) in enumerate(events)
    ]


@SETTINGS
@given(st.integers(0, 2**32 - 1))
def test_list_append_anomalies_are_never_serializable(seed: int) -> None:
    ops = sloppy_history(seed)
    result = check(ops, "list-append", consistency_model="serializable")
    if result["valid"] is False:
        assert not serial_order_exists(ops), result["anomaly-types"]


@SETTINGS
@given(st.integers(0, 2**32 - 1))
def test_rw_register_anomalies_are_never_serializable(seed: int) -> None:
    ops = sloppy_history(seed, register=True)
    result = check(ops, "rw-register", consistency_model="serializable")
    if result["valid"] is False:
        assert not serial_order_exists(ops, register=True), result["anomaly-types"]


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_list_append_with_full_orders_agrees_with_brute_force(seed: int, strict: bool) -> None:
    ops = sloppy_history(seed, all_ok=True, final_read=True)
    model = "strict-serializable" if strict else "serializable"
    result = check(ops, "list-append", consistency_model=model)
    assert result["valid"] in (True, False)
    assert result["valid"] == serial_order_exists(ops, realtime=strict), result["anomaly-types"]


@SETTINGS
@given(st.integers(0, 2**32 - 1))
def test_strict_anomalies_are_never_strictly_serializable(seed: int) -> None:
    ops = sloppy_history(seed)
    result = check(ops, "list-append", consistency_model="strict-serializable")
    if result["valid"] is False:
        assert not serial_order_exists(ops, realtime=True), result["anomaly-types"]


def test_the_searches_meet_both_verdicts() -> None:
    """The random stores give valid and invalid histories alike (the tests above bite)."""
    verdicts = {
        check(sloppy_history(seed, all_ok=True, final_read=True), "list-append",
              consistency_model="serializable")["valid"]
        for seed in range(60)
    }
    assert verdicts == {True, False}


# --------------------------------------------------------------------------- serial stores


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 12),
    st.integers(1, 4),
    st.floats(0.0, 1.0),
)
def test_atomic_store_histories_are_strict_serializable(
    seed: int, clients: int, keys: int, read_fraction: float
) -> None:
    ops = list_append_history(
        200,
        seed=seed,
        clients=clients,
        key_count=keys,
        max_writes_per_key=6,
        read_fraction=read_fraction,
        fail_fraction=0.05,
        info_fraction=0.05,
    )
    result = check(ops, "list-append")
    assert result["valid"] is True, result["anomaly-types"]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6))
def test_serial_register_histories_are_valid(seed: int, count: int) -> None:
    """rw-register txns run one after another on a dict: valid under every model."""
    rng = random.Random(seed)
    state: dict[str, Any] = {}
    events = []
    value = 1
    for p in range(count):
        mops, done = [], []
        for _ in range(rng.randint(1, 4)):
            k = rng.choice("xyz")
            if rng.random() < 0.5:
                mops.append(["r", k, None])
                done.append(["r", k, state.get(k)])
            else:
                mops.append(["w", k, value])
                done.append(["w", k, value])
                state[k] = value
                value += 1
        events += [("invoke", p, mops), ("ok", p, done)]
    ops = [Op(index=i, time=i, type=t, process=p, f="txn", value=v)
           for i, (t, p, v) in enumerate(events)]
    assert check(ops, "rw-register")["valid"] is True
