"""register and append: generators, the list-append model, and the linearizability check
over an in-memory KV (valid) and over planted bugs (stale reads, duplicated appends)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from workload_fakes import FakeClientError, FakeFactory, Fault, MemoryKV

from checker.op import Op
from workloads import WORKLOADS, make_workload
from workloads.append import ListAppendModel
from workloads.recorder import HistoryRecorder
from workloads.register import RegisterWorkload
from workloads.runner import run_final_ops, run_workload

NODES = ["n1", "n2", "n3", "n4", "n5"]


def test_registry_builds_every_workload_from_its_config() -> None:
    assert set(WORKLOADS) == {"register", "set", "append", "bank", "list-append", "rw-register"}
    for name in WORKLOADS:
        workload = make_workload(name)
        assert workload.name == name
        again = make_workload(name, **workload.config())
        assert again.config() == workload.config()


def test_unknown_workload_or_option_is_a_clear_error() -> None:
    import pytest

    with pytest.raises(ValueError, match="unknown workload 'queue'; known: append, bank"):
        make_workload("queue")
    with pytest.raises(ValueError, match="workload 'bank'"):
        make_workload("bank", acounts=3)


def test_register_ops_bounded_per_key_with_small_values() -> None:
    workload = RegisterWorkload(active_keys=3, ops_per_key=10, value_range=4)
    rng = random.Random(5)
    requests = [workload.next_op(rng) for _ in range(300)]
    per_key = Counter(request.value[0] for request in requests)
    assert max(per_key.values()) == 10  # never more than ops_per_key on one key
    assert len(per_key) >= 28  # 300 ops over keys of 10: fresh keys keep coming
    assert Counter(request.f for request in requests).keys() == {"read", "write", "cas"}
    for request in requests:
        key, argument = request.value
        if request.f == "write":
            assert argument in range(4)
        elif request.f == "cas":
            assert all(v in range(4) for v in argument)
        else:
            assert argument is None


def test_same_seed_same_ops() -> None:
    for name in WORKLOADS:
        first, second = make_workload(name), make_workload(name)
        rng_a, rng_b = random.Random(9), random.Random(9)
        assert [first.next_op(rng_a) for _ in range(200)] == [
            second.next_op(rng_b) for _ in range(200)
        ]


def view(f: str, value: Any) -> Op:
    return Op(0, 0, "ok", 0, f, value)


def test_list_append_model_steps() -> None:
    model = ListAppendModel()
    state = model.init(None)
    assert state == ()
    state = model.step(state, view("append", 1))
    state = model.step(state, view("append", 2))
    assert state == (1, 2)
    assert model.step(state, view("read", (1, 2))) == (1, 2)
    assert model.step(state, view("read", (2, 1))) is None  # reordered
    assert model.step(state, view("read", (1,))) is None  # stale
    assert model.step(state, view("read", 12)) is None  # not a list at all
    assert model.is_noop(view("read", None))


def ops_from(*steps: tuple[Any, ...]) -> list[Op]:
    return [Op(i, i, t, p, f, v) for i, (p, t, f, v) in enumerate(steps)]


def test_append_check_on_crafted_histories() -> None:
    workload = make_workload("append")
    good = ops_from(
        (0, "invoke", "append", [0, 1]),
        (1, "invoke", "append", [0, 2]),
        (0, "ok", "append", [0, 1]),
        (1, "ok", "append", [0, 2]),
        (2, "invoke", "read", [0, None]),
        (2, "ok", "read", [0, [2, 1]]),  # concurrent appends: either order
        (2, "invoke", "read", [1, None]),
        (2, "ok", "read", [1, []]),
    )
    assert workload.check(good)["valid"] is True
    lost = ops_from(
        (0, "invoke", "append", [0, 1]),
        (0, "ok", "append", [0, 1]),
        (2, "invoke", "read", [0, None]),
        (2, "ok", "read", [0, []]),
    )
    result = workload.check(lost)
    assert result["valid"] is False
    assert result["checkers"]["linearizable"]["failures"][0]["key"] == 0
    twice = ops_from(
        (0, "invoke", "append", [0, 1]),
        (0, "ok", "append", [0, 1]),
        (2, "invoke", "read", [0, None]),
        (2, "ok", "read", [0, [1, 1]]),
    )
    assert workload.check(twice)["valid"] is False
    not_a_list = ops_from((2, "invoke", "read", [0, None]), (2, "ok", "read", [0, "oops"]))
    assert workload.check(not_a_list)["valid"] is False


def test_register_check_on_crafted_histories() -> None:
    workload = make_workload("register")
    stale = ops_from(
        (0, "invoke", "write", [3, 1]),
        (0, "ok", "write", [3, 1]),
        (1, "invoke", "cas", [3, [1, 2]]),
        (1, "ok", "cas", [3, [1, 2]]),
        (2, "invoke", "read", [3, None]),
        (2, "ok", "read", [3, 1]),  # reads the value before the cas: stale
        (0, "invoke", "read", [4, None]),
        (0, "ok", "read", [4, None]),
    )
    result = workload.check(stale)
    assert result["valid"] is False
    assert result["checkers"]["linearizable"]["failures"][0]["key"] == 3
    assert workload.check(stale[:4])["valid"] is True


async def run_checked(name: str, factory: FakeFactory, seed: int = 4) -> dict[str, Any]:
    workload = make_workload(name)
    recorder = HistoryRecorder()
    await run_workload(
        workload,
        factory,
        recorder,
        concurrency="2n",
        rate=200,
        time_limit=20,
        rng=random.Random(seed),
        nodes=NODES,
    )
    factory.decide = None
    await run_final_ops(workload, factory, recorder, nodes=NODES)
    result = workload.check(recorder.ops, time_limit=60)
    result["ops"] = recorder.ops
    return result


def applied_timeouts(client_id: str, op: str, args: tuple) -> Fault | None:
    # Writes that time out after taking effect, and some that time out before: info.
    if op in ("put", "cas", "append") and random.Random(repr((client_id, args))).random() < 0.05:
        return Fault(FakeClientError("timeout", False), applied=len(client_id) % 2 == 0)
    return None


async def test_register_end_to_end_valid(autojump_clock: trio.testing.MockClock) -> None:
    result = await run_checked(
        "register", FakeFactory(MemoryKV(), latency=0.01, decide=applied_timeouts)
    )
    ops = result["ops"]
    assert result["valid"] is True, result["checkers"]
    lin = result["checkers"]["linearizable"]
    assert lin["independent"] is True and lin["component_count"] > 20
    kinds = Counter((op.f, op.type) for op in ops)
    assert kinds["cas", "ok"] > 100 and kinds["cas", "fail"] > 100  # cas succeeds often
    assert sum(op.type == "info" for op in ops) > 10


async def test_register_end_to_end_catches_stale_reads(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A planted bug (like --unsafe-local-reads): every third get answers with the value
    # the key had before its last write.
    kv = MemoryKV(stale_read_every=3)
    result = await run_checked("register", FakeFactory(kv, latency=0.01))
    assert result["valid"] is False
    assert result["checkers"]["linearizable"]["failures"]


async def test_append_end_to_end_valid(autojump_clock: trio.testing.MockClock) -> None:
    result = await run_checked(
        "append", FakeFactory(MemoryKV(), latency=0.01, decide=applied_timeouts)
    )
    assert result["valid"] is True, result["checkers"]
    ops = result["ops"]
    assert sum(op.f == "read" and op.type == "ok" and len(op.value[1]) > 5 for op in ops) > 100


async def test_append_end_to_end_catches_duplicated_appends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A planted bug (like --bug no-dedup): some appends are applied twice.
    kv = MemoryKV(duplicate_append_every=17)
    result = await run_checked("append", FakeFactory(kv, latency=0.01))
    assert result["valid"] is False


class _UnprunedListAppend(ListAppendModel):
    """The list-append model without the search's pruning hooks (the plain search)."""

    def read_only(self, op: Op) -> bool:
        return False

    def accepting_states(self, op: Op) -> tuple[Any, ...] | None:
        return None

    def read_horizon(self, reads: list[Op]) -> None:
        return None


@st.composite
def append_histories(draw: Any) -> list[Op]:
    """Overlapping appends of unique values on one or two keys, reads that see a random
    sequence of them (often a real order, often not), and info / fail outcomes."""
    spans = []
    for number in range(draw(st.integers(1, 9))):
        key = draw(st.sampled_from([0, 0, 0, 1]))
        outcome = draw(st.sampled_from(["ok", "ok", "ok", "info", "fail"]))
        if draw(st.booleans()):
            value: Any = [key, number]
            result = value
            f = "append"
        else:
            f = "read"
            value = [key, None]
            result = [key, draw(st.permutations(range(number)))[: draw(st.integers(0, 3))]]
        start = draw(st.integers(0, 20))
        spans.append((start, start + draw(st.integers(1, 12)), f, value, result, outcome))
    events = sorted(
        [(span[0], 0, number) for number, span in enumerate(spans)]
        + [(span[1], 1, number) for number, span in enumerate(spans)]
    )
    history = []
    for index, (_, kind, number) in enumerate(events):
        _, _, f, value, result, outcome = spans[number]
        if kind == 0:
            history.append(Op(index, index, "invoke", number, f, value))
        else:
            history.append(
                Op(index, index, outcome, number, f, result if outcome == "ok" else value)
            )
    return history


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=append_histories())
def test_the_pruned_list_append_search_agrees_with_the_plain_one(history: list[Op]) -> None:
    """The read-only, accepting-state and read-horizon hooks only prune: same verdicts."""
    from checker.linearizable import check

    pruned = check(history, ListAppendModel(), independent=True, time_limit=30)
    plain = check(history, _UnprunedListAppend(), independent=True, time_limit=30)
    assert pruned["valid"] is plain["valid"], (pruned, plain)


def test_many_appends_in_flight_during_a_failover_stay_cheap_to_check() -> None:
    """30 appends pending across a failover, then sequential reads: the orders that no
    read shows collapse into one state instead of 30! configurations."""
    steps: list[tuple[Any, ...]] = [(p, "invoke", "append", [0, p]) for p in range(30)]
    order = list(range(30))
    random.Random(3).shuffle(order)
    steps += [(p, "ok", "append", [0, p]) for p in range(30)]
    for reader in range(30, 34):
        steps += [(reader, "invoke", "read", [0, None]), (reader, "ok", "read", [0, order])]
    from checker.linearizable import check

    result = check(ops_from(*steps), ListAppendModel(), independent=True, time_limit=30)
    assert result["valid"] is True
    assert result["configs"] < 10_000
