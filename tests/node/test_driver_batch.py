"""NodeDriver.begin_batch/end_batch: the node process feeds each socket read's frames
(and each tick) as one batch and the Ready they make is handled right there, in the
receiving task, instead of by waking the ready-loop task. The order inside a Ready
(persist, then send; only a leader's appends before its own persist, §3.8/§10.2.1) and
every answer must be exactly as with the loop.

Real RaftCore, MemoryStorage and KV under Trio's MockClock; messages are delivered
after a short delay, each delivery as a batch, as raftnode/server.py does."""

from __future__ import annotations

import random
from typing import Any

import trio
import trio.testing

from raftnode.core import RaftConfig, RaftCore
from raftnode.driver import NodeDriver, ReadyFailed
from raftnode.kv import KVStateMachine
from raftnode.messages import Message
from raftnode.storage.memory import MemoryStorage

TICK = 0.01
Event = tuple[str, str, Any]


class RecordingStorage:
    def __init__(self, node: str, events: list[Event]) -> None:
        self.inner, self.node, self.events = MemoryStorage(), node, events

    def persist(self, *args: Any) -> None:
        self.events.append((self.node, "persist", None))
        self.inner.persist(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class BatchingNetwork:
    def __init__(self, nursery: trio.Nursery, events: list[Event]) -> None:
        self.nursery, self.events = nursery, events
        self.drivers: dict[str, NodeDriver] = {}
        self.cut: set[tuple[str, str]] = set()

    def transport(self, node: str) -> Any:
        network = self

        class Transport:
            def send(self, messages: list[Message]) -> None:
                network.events.append((node, "send", {m.type.value for m in messages}))
                for msg in messages:
                    if (msg.src, msg.dst) not in network.cut:
                        network.nursery.start_soon(network.deliver, msg)

        return Transport()

    async def deliver(self, msg: Message) -> None:
        await trio.sleep(0.001)
        driver = self.drivers.get(msg.dst)
        if driver is None or (msg.src, msg.dst) in self.cut or driver.stopped:
            return
        driver.begin_batch()  # as NodeServer._peer_frames does for one socket read
        driver.receive(msg)
        driver.end_batch()


async def start_cluster(
    nursery: trio.Nursery, events: list[Event], ids: list[str]
) -> BatchingNetwork:
    network = BatchingNetwork(nursery, events)
    rng = random.Random(5)
    for node in ids:
        config = RaftConfig(node_id=node, peers=tuple(ids), election_ticks=10, heartbeat_ticks=1)
        driver = NodeDriver(
            RaftCore(config, random.Random(rng.randrange(2**32))),
            RecordingStorage(node, events),  # type: ignore[arg-type]
            KVStateMachine(),
            network.transport(node),
            tick_seconds=TICK,
            log=lambda line: None,
        )
        network.drivers[node] = driver
        await nursery.start(driver.run)
    return network


async def leader_of(network: BatchingNetwork, among: list[str] | None = None) -> str:
    with trio.fail_after(10):
        while True:
            leaders = [
                n
                for n, d in network.drivers.items()
                if (among is None or n in among)
                and d.status()["role"] == "leader"
                and d.status()["commit_index"] >= 1
            ]
            if len(leaders) == 1:
                return leaders[0]
            await trio.sleep(TICK)


def put(key: str, value: Any, client: str, seq: int) -> dict[str, Any]:
    return {"op": "put", "key": key, "value": value, "client": client, "seq": seq}


async def test_batched_readies_commit_answer_and_keep_persist_before_send(
    autojump_clock: trio.testing.MockClock, monkeypatch: Any
) -> None:
    events: list[Event] = []
    loop_readies: list[str] = []
    inline_readies: list[str] = []
    original_loop, original_now = NodeDriver._handle_ready, NodeDriver._handle_ready_now

    async def by_loop(self: NodeDriver, ready: Any) -> None:
        loop_readies.append(self.core.id)
        events.append((self.core.id, "ready", None))
        await original_loop(self, ready)

    def inline(self: NodeDriver, ready: Any) -> None:
        inline_readies.append(self.core.id)
        events.append((self.core.id, "ready", None))
        original_now(self, ready)

    monkeypatch.setattr(NodeDriver, "_handle_ready", by_loop)
    monkeypatch.setattr(NodeDriver, "_handle_ready_now", inline)
    ids = ["n1", "n2", "n3"]
    async with trio.open_nursery() as nursery:
        network = await start_cluster(nursery, events, ids)
        leader = await leader_of(network)
        by_loop_before = len(loop_readies)
        for seq in range(1, 8):
            reply = await network.drivers[leader].submit(put("k", seq, "c1", seq))
            assert reply == {"ok": True, "value": None}
        # A batch of writes in one go: all answered, applied in order.
        answers: list[Any] = []
        for seq in range(1, 6):
            network.drivers[leader].start(put(f"b{seq}", seq, f"c{seq + 1}", 1), answers.append)
        with trio.fail_after(5):
            while len(answers) < 5:
                await trio.sleep(TICK)
        assert all(a == {"ok": True, "value": None} for a in answers)
        # The writes' Readies were handled in the receiving tasks, not by the loop:
        # submit/start outside a batch wake the loop once per proposal at most.
        assert len(loop_readies) - by_loop_before <= 12
        assert len(inline_readies) > 20
        # A new election (votes, new term) with batched Readies.
        network.cut = {(leader, n) for n in ids if n != leader} | {
            (n, leader) for n in ids if n != leader
        }
        others = [n for n in ids if n != leader]
        new = await leader_of(network, others)
        network.cut.clear()
        reply = await network.drivers[new].submit(put("k", "after", "c9", 1))
        assert reply == {"ok": True, "value": None}
        with trio.fail_after(5):  # every replica applies everything (heartbeats)
            while len({d.applied_index for d in network.drivers.values()}) != 1:
                await trio.sleep(TICK)
        values = {
            n: d.state_machine.query({"op": "get", "key": "k"}) for n, d in network.drivers.items()
        }
        assert all(v == {"ok": True, "value": "after"} for v in values.values()), values
        nursery.cancel_scope.cancel()

    # §3.8 within every Ready, inline or not: nothing but a leader's appends is sent
    # before that Ready's persist.
    checked = 0
    for node in ids:
        segment: list[tuple[str, Any]] = []
        for owner, kind, detail in [*events, (node, "ready", None)]:
            if owner != node:
                continue
            if kind != "ready":
                segment.append((kind, detail))
                continue
            kinds = [k for k, _ in segment]
            if "persist" in kinds:
                for k, types in segment[: kinds.index("persist")]:
                    if k == "send":
                        assert types <= {"append", "snapshot"}, (node, segment)
                checked += 1
            segment = []
    assert checked > 10
    responses = [d for _, k, d in events if k == "send" and d & {"vote_resp", "append_resp"}]
    assert responses


class FailingStorage(MemoryStorage):
    fail = False

    def persist(self, *args: Any) -> None:
        if self.fail:
            raise OSError(5, "Input/output error")
        super().persist(*args)


async def test_a_failing_persist_in_a_batch_is_fatal_not_a_lost_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An OSError from the disk must not look like a peer's connection error to the
    server's connection handler (which would swallow it and leave the node wedged with
    a Ready never advanced): end_batch raises ReadyFailed, as the ready loop crashed."""
    storage = FailingStorage()
    config = RaftConfig(node_id="n1", peers=("n1",), election_ticks=3, heartbeat_ticks=1)
    driver = NodeDriver(
        RaftCore(config, random.Random(1)),
        storage,
        KVStateMachine(),
        BatchingNetwork(None, []).transport("n1"),  # type: ignore[arg-type]
        tick_seconds=TICK,
        log=lambda line: None,
    )
    for _ in range(20):  # a single voter elects itself on ticks, batched as the ticker does
        driver.begin_batch()
        driver.tick()
        driver.end_batch()
    assert driver.status()["role"] == "leader"
    storage.fail = True
    answers: list[Any] = []
    driver.begin_batch()
    driver.start(put("k", 1, "c1", 1), answers.append)
    try:
        driver.end_batch()
    except ReadyFailed as error:
        assert isinstance(error.__cause__, OSError)
    else:
        raise AssertionError("a failing persist went unnoticed")
    assert not isinstance(ReadyFailed("x"), OSError)
