"""A simulated pause is SIGSTOP: the node freezes with its pending requests, no tick fires,
what arrives is held, and SIGCONT continues the same driver."""

from __future__ import annotations

import random
from typing import Any

import trio
import trio.testing

from campaign.sim.cluster import SimCluster, SimTiming
from campaign.sim.network import SimNetwork


def _run(body: Any) -> Any:
    async def main() -> Any:
        network = SimNetwork(rng=random.Random(3))
        cluster = SimCluster(("n1", "n2", "n3"), network, random.Random(4), timing=SimTiming())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(network.run)
            await cluster.start(nursery)
            result = await body(cluster)
            nursery.cancel_scope.cancel()
        return result

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def _leader(cluster: SimCluster) -> str:
    for _ in range(100):
        leader = cluster.leader()
        if leader is not None:
            return leader
        await trio.sleep(0.1)
    raise AssertionError("no leader within 10 s")


def test_a_request_pending_at_a_pause_is_answered_after_the_resume() -> None:
    async def body(cluster: SimCluster) -> dict[str, Any]:
        leader = await _leader(cluster)
        await trio.sleep(0.5)  # the new leader's no-op is committed
        node = cluster.nodes[leader]
        driver = node.driver
        assert driver is not None
        ticks: list[float] = []
        real_tick = driver.tick

        def counting_tick() -> None:
            ticks.append(trio.current_time())
            real_tick()

        driver.tick = counting_tick  # type: ignore[method-assign]
        answers: list[Any] = []
        driver.start({"op": "put", "key": "k", "value": 1, "client": "c", "seq": 1}, answers.append)
        node.pause()  # before any follower could acknowledge the entry
        paused_at = trio.current_time()
        # Shorter than an election timeout (1 s) and the request timeout (5 s).
        await trio.sleep(0.4)
        frozen = {
            "answers": list(answers),
            "ticks": [t for t in ticks if t > paused_at],
            "held": len(node._paused_inbox),
            "stopped": driver.stopped,
        }
        await cluster.restart(leader)
        resumed_at = trio.current_time()
        await trio.sleep(0.3)
        return {
            "frozen": frozen,
            "answers": answers,
            "ticks_after": [t for t in ticks if t > resumed_at],
            "same_driver": node.driver is driver,
            "held_after": len(node._paused_inbox),
            "leader": cluster.leader() == leader,
        }

    seen = _run(body)
    frozen = seen["frozen"]
    assert frozen["answers"] == []  # not failed by the pause
    assert frozen["ticks"] == []  # no tick while frozen
    assert frozen["held"] > 0  # the followers' replies wait in its "socket buffer"
    assert frozen["stopped"] is False
    assert seen["same_driver"] and seen["held_after"] == 0
    assert seen["ticks_after"]  # the ticker goes on
    assert seen["answers"] == [{"ok": True, "value": None}], seen["answers"]
    assert seen["leader"]  # a pause shorter than an election timeout deposes nobody


def test_a_paused_node_killed_drops_its_clients_and_restarts_from_disk() -> None:
    async def body(cluster: SimCluster) -> tuple[list[Any], bool, int]:
        leader = await _leader(cluster)
        node = cluster.nodes[leader]
        driver = node.driver
        assert driver is not None
        answers: list[Any] = []
        driver.start({"op": "put", "key": "k", "value": 2, "client": "c", "seq": 1}, answers.append)
        node.pause()
        node.crash(random.Random(0))
        await trio.sleep(0.1)
        await cluster.restart(leader)
        await trio.sleep(0.1)
        return answers, node.driver is not driver and node.running, node.restarts

    answers, fresh, restarts = _run(body)
    # SIGKILL of a stopped process: its pending request ends (outcome unknown).
    assert len(answers) == 1 and isinstance(answers[0], Exception)
    assert fresh and restarts == 1
