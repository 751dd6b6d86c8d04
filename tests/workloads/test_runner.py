"""The runner: concurrency, processes retired after info, rate, one completion per op.

Time is Trio's MockClock with autojump: a 100-second run takes milliseconds, and rates
are measured in that clock, never in wall time.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
import trio
import trio.testing
from workload_fakes import (
    FakeClientError,
    FakeFactory,
    Fault,
    MemoryKV,
    completions_per_invoke,
)

from workloads import make_workload
from workloads.recorder import HistoryRecorder, RecorderError
from workloads.runner import (
    WorkloadConfigError,
    WorkloadSetupError,
    check_rate,
    parse_concurrency,
    run_final_ops,
    run_workload,
)

NODES = ["n1", "n2", "n3"]


@pytest.mark.parametrize(
    ("spec", "expected"), [(5, 5), ("5", 5), ("2n", 6), (" 3N ", 9), ("1n", 3), (1, 1)]
)
def test_concurrency_parsing(spec: int | str, expected: int) -> None:
    assert parse_concurrency(spec, len(NODES)) == expected


@pytest.mark.parametrize("spec", ["", "n", "2x", "1.5", "-1", "0", "0n", "two", True, "2nn"])
def test_bad_concurrency_is_a_clear_error(spec: object) -> None:
    with pytest.raises(WorkloadConfigError, match="--concurrency"):
        parse_concurrency(spec, len(NODES))  # type: ignore[arg-type]


def test_per_node_concurrency_needs_nodes() -> None:
    with pytest.raises(WorkloadConfigError, match="0 nodes"):
        parse_concurrency("2n", 0)


@pytest.mark.parametrize("rate", [0, -3, float("nan"), float("inf"), "fast", True])
def test_bad_rate_is_a_clear_error(rate: object) -> None:
    with pytest.raises(WorkloadConfigError, match="--rate"):
        check_rate(rate)  # type: ignore[arg-type]


async def test_bad_time_limit_is_a_clear_error() -> None:
    with pytest.raises(WorkloadConfigError, match="--time-limit"):
        await run_workload(
            make_workload("register"),
            FakeFactory(MemoryKV()),
            HistoryRecorder(),
            concurrency=1,
            rate=None,
            time_limit=0,
            rng=random.Random(1),
            nodes=NODES,
        )


async def run(
    name: str,
    factory: FakeFactory,
    *,
    concurrency: int | str = "2n",
    rate: float | None = 100.0,
    time_limit: float = 10.0,
    seed: int = 7,
    drain_timeout: float = 5.0,
) -> tuple[HistoryRecorder, object]:
    recorder = HistoryRecorder()
    summary = await run_workload(
        make_workload(name),
        factory,
        recorder,
        concurrency=concurrency,
        rate=rate,
        time_limit=time_limit,
        rng=random.Random(seed),
        nodes=NODES,
        drain_timeout=drain_timeout,
    )
    return recorder, summary


async def test_rate_is_total_ops_per_second_in_trio_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    factory = FakeFactory(MemoryKV(), latency=0.001)
    recorder, summary = await run("register", factory, concurrency=4, rate=50.0, time_limit=100.0)
    invokes = [op for op in recorder.ops if op.type == "invoke"]
    # 50 ops/s for 100 s: 5000 expected; the stagger is random, so allow a few percent.
    assert 4700 <= len(invokes) <= 5300, len(invokes)
    assert summary.invoked == len(invokes)  # type: ignore[attr-defined]
    # Spread over the run, not bunched: every 10-second window holds about a tenth.
    windows = Counter(op.time // 10_000_000_000 for op in invokes)
    assert all(400 <= windows[w] <= 600 for w in range(10)), windows
    assert max(op.time for op in recorder.ops) <= 100.01e9


async def test_a_slower_rate_gives_fewer_ops(autojump_clock: trio.testing.MockClock) -> None:
    fast, _ = await run("register", FakeFactory(MemoryKV()), concurrency=2, rate=20.0)
    slow, _ = await run("register", FakeFactory(MemoryKV()), concurrency=2, rate=5.0)
    count = lambda recorder: sum(op.type == "invoke" for op in recorder.ops)  # noqa: E731
    assert 170 <= count(fast) <= 230 and 35 <= count(slow) <= 65


async def test_one_task_per_process_spread_over_nodes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    factory = FakeFactory(MemoryKV(), latency=0.01)
    recorder, _ = await run("register", factory, concurrency="2n", time_limit=5.0)
    assert sorted(process for process, _, _ in factory.made if process >= 0) == list(range(6))
    assert {process: node for process, _, node in factory.made if process >= 0} == {
        0: "n1",
        1: "n2",
        2: "n3",
        3: "n1",
        4: "n2",
        5: "n3",
    }
    client_ids = [client_id for _, client_id, _ in factory.made]
    assert len(set(client_ids)) == len(client_ids)  # a KV session per process
    assert {op.process for op in recorder.ops} == set(range(6))
    assert all(count == 1 for count in completions_per_invoke(recorder.ops).values())


async def test_info_retires_the_process(autojump_clock: trio.testing.MockClock) -> None:
    """A process whose op ended in info never invokes again; its worker goes on as p+c."""
    calls: Counter[str] = Counter()

    def every_fifth_write_times_out(client_id: str, op: str, args: tuple) -> Fault | None:
        calls[client_id] += 1
        if op != "get" and calls[client_id] % 5 == 0:
            return Fault(FakeClientError("timeout", False), applied=True)
        return None

    factory = FakeFactory(MemoryKV(), latency=0.01, decide=every_fifth_write_times_out)
    recorder, summary = await run("register", factory, concurrency=3, time_limit=30.0)

    last_op_of: dict[int, str] = {}
    info_processes = set()
    for op in recorder.ops:
        assert op.process not in info_processes, f"retired process {op.process} invoked again"
        if op.type == "info":
            info_processes.add(op.process)
        if op.type != "invoke":
            last_op_of[op.process] = op.type
    assert len(info_processes) >= 10
    assert summary.retired_processes == len(info_processes)  # type: ignore[attr-defined]
    # Worker w runs processes w, w+3, w+6, … in order.
    for worker in range(3):
        used = sorted({op.process for op in recorder.ops if op.process % 3 == worker})
        assert used == list(range(worker, worker + 3 * len(used), 3))
    # Each retired process had its client closed before its successor opened.
    assert factory.log.index(("p0", "close")) < factory.log.index(("p3", "open"))
    # Reads that time out are fail and do not retire anyone.
    assert all(op.type != "info" or op.f != "read" for op in recorder.ops)


async def test_ops_cut_off_by_the_end_of_the_run_become_info(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def hang_forever_sometimes(client_id: str, op: str, args: tuple) -> Fault | None:
        if client_id in ("p1", "p4"):
            return Fault(FakeClientError("timeout", False), hang=10_000.0)
        return None

    factory = FakeFactory(MemoryKV(), latency=0.2, decide=hang_forever_sometimes)
    recorder, _ = await run("register", factory, concurrency=6, time_limit=5.0, drain_timeout=1.0)
    counts = completions_per_invoke(recorder.ops)
    assert counts and all(count == 1 for count in counts.values())
    cancelled = [op for op in recorder.ops if op.error == "cancelled"]
    assert {op.process for op in cancelled} == {1, 4}
    assert all(op.type == "info" for op in cancelled)
    # The run stopped at the time limit plus the drain timeout.
    assert trio.current_time() == pytest.approx(6.0, abs=0.01)
    assert recorder.in_flight() == []


async def test_outer_cancellation_still_completes_every_op(
    autojump_clock: trio.testing.MockClock,
) -> None:
    factory = FakeFactory(MemoryKV(), latency=0.3)
    recorder = HistoryRecorder()
    with trio.move_on_after(2.05):  # Ctrl-C, or the campaign's own cancel scope
        await run_workload(
            make_workload("set"),
            factory,
            recorder,
            concurrency=5,
            rate=None,
            time_limit=60.0,
            rng=random.Random(3),
            nodes=NODES,
        )
    counts = completions_per_invoke(recorder.ops)
    assert len(counts) > 20 and all(count == 1 for count in counts.values())
    assert sum(op.error == "cancelled" for op in recorder.ops) == 5
    assert recorder.in_flight() == []


async def test_a_client_that_cannot_open_is_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    factory = FakeFactory(MemoryKV(), latency=0.01, fail_opens=4)
    recorder, summary = await run("register", factory, concurrency=2, time_limit=10.0)
    assert summary.client_open_failures == 4  # type: ignore[attr-defined]
    assert {op.process for op in recorder.ops} == {0, 1}  # no op was lost to a failed open
    assert sum(op.type == "ok" for op in recorder.ops) > 50


async def test_bank_setup_is_retried_until_the_accounts_exist(
    autojump_clock: trio.testing.MockClock,
) -> None:
    puts = Counter[str]()

    def first_puts_fail(client_id: str, op: str, args: tuple) -> Fault | None:
        if op == "put":
            puts[args[0]] += 1
            if puts[args[0]] <= 2:
                return Fault(FakeClientError("no_leader", True))
        return None

    kv = MemoryKV()
    factory = FakeFactory(kv, latency=0.01, decide=first_puts_fail)
    recorder, _ = await run("bank", factory, concurrency=2, time_limit=5.0)
    assert all(puts[f"acct{account}"] >= 3 for account in range(5))
    # Every retry ran on one client (one KV session: a late put of an earlier attempt is
    # refused by the KV as a stale seq).
    assert [client_id for process, client_id, _ in factory.made if process < 0] == ["psetup1"]
    # Setup is not part of the history: the first op is a worker's.
    assert recorder.ops[0].process in (0, 1)
    assert sum(value for key, value in kv.data.items() if key.startswith("acct")) == 100


async def test_setup_gives_up_with_a_clear_error(autojump_clock: trio.testing.MockClock) -> None:
    factory = FakeFactory(MemoryKV(), decide=lambda *_: Fault(FakeClientError("no_leader", True)))
    with pytest.raises(WorkloadSetupError, match="bank workload could not set up"):
        await run_workload(
            make_workload("bank"),
            factory,
            HistoryRecorder(),
            concurrency=1,
            rate=None,
            time_limit=5,
            rng=random.Random(1),
            nodes=NODES,
            setup_timeout=3.0,
        )


async def test_final_reads_retry_until_ok_on_fresh_processes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    kv = MemoryKV()
    attempts = Counter[str]()

    def flaky_reads(client_id: str, op: str, args: tuple) -> Fault | None:
        if op != "get":
            return None
        attempts[args[0]] += 1
        if attempts[args[0]] == 1:
            return Fault(FakeClientError("no_leader", True))  # fail: same process retries
        if attempts[args[0]] == 2:
            return Fault(RuntimeError("client bug"))  # a read: fail as well
        return None

    factory = FakeFactory(kv, latency=0.01)
    workload = make_workload("set")
    recorder = HistoryRecorder()
    await run_workload(
        workload,
        factory,
        recorder,
        concurrency=3,
        rate=50,
        time_limit=5,
        rng=random.Random(2),
        nodes=NODES,
    )
    first_final = recorder.next_free_process()
    factory.decide = flaky_reads
    results = await run_final_ops(workload, factory, recorder, nodes=NODES, time_limit=10)
    assert results and all(op is not None and op.type == "ok" for op in results)
    final_ops = [op for op in recorder.ops if op.process >= first_final]
    assert {op.f for op in final_ops} == {"read"}
    assert Counter(op.type for op in final_ops)["fail"] == 2 * len(results)
    # The last ok read of each key holds everything that key's adds put there.
    for op in results:
        key, elements = op.value  # type: ignore[union-attr]
        assert elements == kv.data[f"s{key}"]
    assert workload.check(recorder.ops)["valid"] is True


async def test_a_harness_bug_stops_the_run_instead_of_looping(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Only client errors are retried; a broken recorder is raised at once."""
    recorder = HistoryRecorder()
    recorder.close()  # recording now raises RecorderError
    with pytest.raises(ExceptionGroup) as raised:
        await run_workload(
            make_workload("register"),
            FakeFactory(MemoryKV(), latency=0.01),
            recorder,
            concurrency=2,
            rate=10,
            time_limit=60,
            rng=random.Random(1),
            nodes=NODES,
        )
    assert raised.group_contains(RecorderError, match="after the recorder was closed")
    assert trio.current_time() < 1.0  # it did not spin until the time limit


async def test_setup_done_is_set_before_the_first_op(
    autojump_clock: trio.testing.MockClock,
) -> None:
    setup_done = trio.Event()
    recorder = HistoryRecorder()
    first_op_seen_setup_done: list[bool] = []

    def watch(client_id: str, op: str, args: tuple) -> Fault | None:
        if client_id.startswith("psetup"):
            assert not setup_done.is_set()
        elif not first_op_seen_setup_done:
            first_op_seen_setup_done.append(setup_done.is_set())
        return None

    await run_workload(
        make_workload("bank"),
        FakeFactory(MemoryKV(), latency=0.01, decide=watch),
        recorder,
        concurrency=2,
        rate=10,
        time_limit=2,
        rng=random.Random(1),
        nodes=NODES,
        setup_done=setup_done,
    )
    assert first_op_seen_setup_done == [True]
