"""The cluster's pure parts: port blocks, the status board, seeds."""

from __future__ import annotations

import random
import socket

import pytest

from campaign.cluster import ClusterError, StatusBoard, choose_base_port, ports_needed
from campaign.run import Seeds


def test_a_given_block_is_checked_and_a_taken_one_refused():
    assert ports_needed(3) == 3 + 6
    assert choose_base_port(3, 19300, random.Random(1)) == 19300
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 19305))
        taken.listen()
        with pytest.raises(ClusterError, match="not all free"):
            choose_base_port(3, 19300, random.Random(1))


def test_automatic_blocks_are_seeded_and_below_the_ephemeral_range():
    first = choose_base_port(5, 0, random.Random(42))
    assert first == choose_base_port(5, 0, random.Random(42))
    assert 20_000 <= first and first + ports_needed(5) <= 32_000


def test_status_board_records_changes_and_the_highest_term_leader():
    board = StatusBoard(("n1", "n2", "n3"))
    board.record("n1", None, 0)
    board.record("n1", None, 5)  # still starting: no new event
    board.record("n1", {"role": "leader", "term": 2, "leader": "n1"}, 10)
    board.record("n2", {"role": "leader", "term": 3, "leader": "n2"}, 10)  # n1 is deposed
    board.record("n3", {"role": "follower", "term": 3, "leader": "n2"}, 10)
    board.record("n3", {"role": "follower", "term": 3, "leader": "n2"}, 20)
    board.record("n1", None, 30)
    assert board.leader() == ("n2", 3)
    assert [(e.time, e.node, e.role) for e in board.events] == [
        (0, "n1", "starting"),
        (10, "n1", "leader"),
        (10, "n2", "leader"),
        (10, "n3", "follower"),
        (30, "n1", "unreachable"),
    ]


def test_seed_streams_are_independent_and_reproducible():
    assert Seeds.derive(7) == Seeds.derive(7)
    seeds = Seeds.derive(7)
    assert len({seeds.ports, seeds.workload, seeds.nemesis, seeds.proxies, seeds.nodes}) == 5
    assert Seeds.derive(8) != seeds


def test_expected_aborts_are_told_apart_from_harness_bugs():
    from campaign.run import _aborted_reason, _describe, _is_interrupt
    from workloads.runner import WorkloadSetupError

    no_leader = ClusterError("no leader elected within 30 s")
    assert _aborted_reason(no_leader) == "no leader elected within 30 s"
    grouped = BaseExceptionGroup("nursery", [ExceptionGroup("inner", [WorkloadSetupError("x")])])
    assert _aborted_reason(grouped) == "x"
    bug = ExceptionGroup("nursery", [no_leader, RuntimeError("bug")])
    assert _aborted_reason(bug) is None  # a bug beside an abort is still a bug
    assert _describe(bug) == "ClusterError: no leader elected within 30 s; RuntimeError: bug"
    assert _is_interrupt(BaseExceptionGroup("nursery", [KeyboardInterrupt()]))
    assert not _is_interrupt(bug)


async def test_the_loop_lag_monitor_sees_a_stalled_harness_loop():
    import time

    import trio

    from campaign.run import LoopLag, _measure_lag

    lag = LoopLag()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_measure_lag, lag)
        await trio.sleep(0.05)
        time.sleep(0.15)  # a blocking call stalls every task, the proxies' included
        await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert lag.over_100ms >= 1 and lag.max_seconds >= 0.1
    assert lag.to_dict()["max_ms"] >= 100 and lag.samples >= 2
