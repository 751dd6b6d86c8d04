"""The simulated network and the determinism switches it relies on."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from campaign.sim.determinism import deterministic_scheduling, trio_internals_present
from campaign.sim.network import LinkConditions, SimNetwork


def test_canary_trio_scheduler_internals_exist() -> None:
    # If this fails, a trio upgrade renamed the private hooks the simulation relies on:
    # pin trio back (pyproject.toml) or port campaign/sim/determinism.py.
    assert trio_internals_present()
    import trio._core._run as internals

    assert isinstance(internals._r, random.Random)


async def test_canary_the_private_next_deadline_matches_the_public_statistics() -> None:
    # campaign/sim/determinism.next_deadline reads trio's deadline heap directly.
    import trio._core._run as internals

    from campaign.sim.determinism import next_deadline

    assert hasattr(internals.GLOBAL_RUN_CONTEXT.runner.deadlines, "next_deadline")
    with trio.move_on_after(3.5):
        public = trio.current_time() + trio.lowlevel.current_statistics().seconds_to_next_deadline
        assert next_deadline() == pytest.approx(public, abs=0.01)
        assert next_deadline() <= trio.current_time() + 3.5


def _run_traffic(seed: int, conditions: LinkConditions, reorder: bool = True) -> list[tuple]:
    log: list[tuple] = []

    async def main() -> None:
        network = SimNetwork(rng=random.Random(seed), conditions=conditions, reorder=reorder)
        for address in ("a", "b", "c"):
            network.attach(
                address,
                lambda src, payload, me=address: log.append(
                    (round(trio.current_time(), 9), src, me, payload)
                ),
            )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(network.run)

            async def sender(name: str) -> None:
                for i in range(50):
                    for other in ("a", "b", "c"):
                        if other != name:
                            network.send(name, other, (name, i))
                    await trio.sleep(0.0003)

            async with trio.open_nursery() as senders:
                for name in ("a", "b", "c"):
                    senders.start_soon(sender, name)
            await trio.sleep(1)
            nursery.cancel_scope.cancel()

    with deterministic_scheduling(seed):
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return log


def test_same_seed_same_schedule_and_different_seed_differs() -> None:
    conditions = LinkConditions(base_delay=0.001, jitter=0.002, loss=0.1, duplicate=0.05)
    first = _run_traffic(7, conditions)
    assert first == _run_traffic(7, conditions)
    assert first != _run_traffic(8, conditions)
    # loss and duplication both happened
    assert 0 < len(first) != 3 * 2 * 50


def test_fifo_links_when_reordering_is_off() -> None:
    log = _run_traffic(3, LinkConditions(base_delay=0.001, jitter=0.005), reorder=False)
    for src in "abc":
        for dst in "abc":
            sequence = [payload[1] for _, s, d, payload in log if s == src and d == dst]
            assert sequence == sorted(sequence)
    reordered = _run_traffic(3, LinkConditions(base_delay=0.001, jitter=0.005), reorder=True)
    a_to_b = [payload[1] for _, s, d, payload in reordered if s == "a" and d == "b"]
    assert a_to_b != sorted(a_to_b)


def test_grudge_drops_one_direction_only() -> None:
    received: list[tuple[str, str]] = []

    async def main() -> None:
        network = SimNetwork(rng=random.Random(1))
        network.attach("a", lambda src, p: received.append((src, "a")))
        network.attach("b", lambda src, p: received.append((src, "b")))
        network.grudges = {"b": {"a"}}  # b drops what comes from a
        async with trio.open_nursery() as nursery:
            nursery.start_soon(network.run)
            network.send("a", "b", 1)
            network.send("b", "a", 2)
            network.send("a", "b", 3, partitionable=False)  # client traffic
            await trio.sleep(0.1)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert sorted(received) == [("a", "b"), ("b", "a")]
