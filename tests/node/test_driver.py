"""NodeDriver in-process: real RaftCore, MemoryStorage and KV, a simulated network,
under Trio's MockClock (time is simulated, so timing is deterministic and fast)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing

from raftnode.core import RaftConfig, RaftCore
from raftnode.driver import NodeDriver, NotLeaderError
from raftnode.kv import KVStateMachine
from raftnode.messages import Message
from raftnode.storage.memory import MemoryStorage

TICK = 0.01


@dataclass(slots=True)
class Network:
    """Delivers each message after a short delay unless its link is cut."""

    nursery: trio.Nursery
    drivers: dict[str, NodeDriver] = field(default_factory=dict)
    cut: set[tuple[str, str]] = field(default_factory=set)  # (src, dst) pairs that drop
    delay: float = 0.001

    def isolate(self, node: str) -> None:
        for other in self.drivers:
            if other != node:
                self.cut |= {(node, other), (other, node)}

    def heal(self) -> None:
        self.cut.clear()

    def transport(self, node: str) -> Transport:
        return Transport(self, node)

    def deliver_later(self, msg: Message) -> None:
        async def deliver() -> None:
            await trio.sleep(self.delay)
            target = self.drivers.get(msg.dst)
            if target is not None and (msg.src, msg.dst) not in self.cut and not target.stopped:
                target.receive(msg)

        self.nursery.start_soon(deliver)


@dataclass(slots=True)
class Transport:
    network: Network
    node: str

    def send(self, messages: list[Message]) -> None:
        for msg in messages:
            if (msg.src, msg.dst) not in self.network.cut:
                self.network.deliver_later(msg)


@dataclass(slots=True)
class Node:
    node_id: str
    storage: MemoryStorage
    driver: NodeDriver
    scope: trio.CancelScope
    kv: KVStateMachine


class Cluster:
    def __init__(self, nursery: trio.Nursery, ids: list[str], **options: Any) -> None:
        self.nursery = nursery
        self.ids = ids
        self.options = options
        self.network = Network(nursery)
        self.nodes: dict[str, Node] = {}
        self.logs: list[str] = []
        self.rng = random.Random(7)

    async def start(self, node_id: str, storage: MemoryStorage | None = None) -> Node:
        storage = storage or MemoryStorage()
        restored = storage.load()
        config = RaftConfig(
            node_id=node_id,
            peers=tuple(self.ids),
            election_ticks=10,
            heartbeat_ticks=1,
            snapshot_threshold=self.options.get("snapshot_threshold", 4096),
            read_mode=self.options.get("read_mode", "read_index"),
        )
        kv = KVStateMachine()
        applied_index = applied_term = 0
        if restored.snapshot is not None:
            kv.restore(restored.snapshot.data)
            applied_index, applied_term = restored.snapshot.meta.index, restored.snapshot.meta.term
        core = RaftCore(config, random.Random(self.rng.randrange(2**32)), restored)
        driver = NodeDriver(
            core,
            storage,
            kv,
            self.network.transport(node_id),
            tick_seconds=TICK,
            log=lambda line, n=node_id: self.logs.append(f"{n} {line}"),
            read_mode=config.read_mode,
            request_timeout=self.options.get("request_timeout", 5.0),
            offload=self.options.get("offload"),
            applied_index=applied_index,
            applied_term=applied_term,
        )
        scope = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[None]) -> None:
            with scope:
                await driver.run(task_status=task_status)

        await self.nursery.start(run)
        self.network.drivers[node_id] = driver
        node = Node(node_id, storage, driver, scope, kv)
        self.nodes[node_id] = node
        return node

    def stop(self, node_id: str) -> MemoryStorage:
        node = self.nodes.pop(node_id)
        node.scope.cancel()
        del self.network.drivers[node_id]
        return node.storage

    async def leader(self, timeout: float = 10.0) -> str:
        with trio.fail_after(timeout):
            while True:
                leaders = [
                    n for n, node in self.nodes.items() if node.driver.status()["role"] == "leader"
                ]
                if len(leaders) == 1:
                    status = self.nodes[leaders[0]].driver.status()
                    if status["commit_index"] >= 1:
                        return leaders[0]
                await trio.sleep(TICK)

    async def submit(self, node_id: str, request: dict[str, Any]) -> dict[str, Any]:
        return await self.nodes[node_id].driver.submit(request)


@asynccontextmanager
async def cluster_of(n: int = 3, **options: Any) -> AsyncIterator[Cluster]:
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery, [f"n{i}" for i in range(1, n + 1)], **options)
        for node_id in cluster.ids:
            await cluster.start(node_id)
        yield cluster
        nursery.cancel_scope.cancel()


def put(key: str, value: Any, client: str = "c1", seq: int = 1) -> dict[str, Any]:
    return {"op": "put", "key": key, "value": value, "client": client, "seq": seq}


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(TICK)


async def test_writes_commit_and_reads_see_them(autojump_clock: trio.testing.MockClock) -> None:
    async with cluster_of() as cluster:
        leader = await cluster.leader()
        for seq in range(1, 21):
            reply = await cluster.submit(leader, put(f"k{seq % 3}", seq, seq=seq))
            assert reply == {"ok": True, "value": None}
        assert await cluster.submit(leader, {"op": "get", "key": "k2"}) == {
            "ok": True,
            "value": 20,
        }
        # A retried write (same client, seq) is answered from the session, not re-applied.
        again = await cluster.submit(
            leader, {"op": "append", "key": "l", "value": 1, "client": "c2", "seq": 1}
        )
        retry = await cluster.submit(
            leader, {"op": "append", "key": "l", "value": 1, "client": "c2", "seq": 1}
        )
        assert again == retry == {"ok": True, "value": [1]}
        # Every replica applies the same state.
        await wait_until(
            lambda: all(
                n.driver.applied_index == cluster.nodes[leader].driver.applied_index
                for n in cluster.nodes.values()
            )
        )
        for node in cluster.nodes.values():
            assert node.kv.query({"op": "get", "key": "l"}) == {"ok": True, "value": [1]}


async def test_followers_answer_not_leader_with_a_hint(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster_of() as cluster:
        leader = await cluster.leader()
        follower = next(n for n in cluster.ids if n != leader)
        with pytest.raises(NotLeaderError) as info:
            await cluster.submit(follower, put("x", 1))
        assert info.value.leader == leader and info.value.code == "not_leader"
        with pytest.raises(NotLeaderError):
            await cluster.submit(follower, {"op": "get", "key": "x"})
        assert await cluster.submit(leader, {"op": "frobnicate"}) == {
            "ok": False,
            "error": "malformed",
        }


async def test_reads_through_the_log(autojump_clock: trio.testing.MockClock) -> None:
    async with cluster_of(read_mode="log") as cluster:
        leader = await cluster.leader()
        await cluster.submit(leader, put("a", "v"))
        before = cluster.nodes[leader].driver.status()["last_log_index"]
        assert await cluster.submit(leader, {"op": "get", "key": "a"}) == {"ok": True, "value": "v"}
        assert cluster.nodes[leader].driver.status()["last_log_index"] == before + 1


async def test_overwritten_proposal_fails_definitely(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A write appended by a leader that then loses to a new majority is never committed:
    when the old leader applies another term's entry at that index it answers not_leader."""
    async with cluster_of(request_timeout=60.0) as cluster:
        old = await cluster.leader()
        cluster.network.isolate(old)
        outcome: dict[str, Any] = {}

        async def doomed_write() -> None:
            try:
                outcome["reply"] = await cluster.submit(old, put("k", "lost", "c9", 1))
            except NotLeaderError as error:
                outcome["error"] = error

        cluster.nursery.start_soon(doomed_write)
        await trio.sleep(TICK * 5)
        others = [n for n in cluster.ids if n != old]

        async def new_leader() -> str:
            while True:
                for n in others:
                    status = cluster.nodes[n].driver.status()
                    if status["role"] == "leader" and status["commit_index"] >= 1:
                        return n
                await trio.sleep(TICK)

        with trio.fail_after(10):
            new = await new_leader()
        for seq in range(1, 4):
            await cluster.submit(new, put("k", f"new{seq}", "c1", seq))
        cluster.network.heal()
        await wait_until(lambda: bool(outcome))
        assert isinstance(outcome.get("error"), NotLeaderError)
        assert await cluster.submit(new, {"op": "get", "key": "k"}) == {"ok": True, "value": "new3"}


async def test_lagging_node_catches_up_by_snapshot_and_restarts_from_storage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster_of(snapshot_threshold=8) as cluster:
        leader = await cluster.leader()
        lagging = next(n for n in cluster.ids if n != leader)
        storage = cluster.stop(lagging)
        for seq in range(1, 41):
            await cluster.submit(leader, put(f"k{seq}", seq, seq=seq))
        assert cluster.nodes[leader].driver.status()["snapshot_index"] > 0
        node = await cluster.start(lagging, storage)
        target = cluster.nodes[leader].driver.applied_index
        await wait_until(lambda: node.driver.applied_index >= target)
        assert any(f"{lagging} snapshot restored" in line for line in cluster.logs)
        assert node.kv.query({"op": "get", "key": "k40"}) == {"ok": True, "value": 40}
        assert node.kv.query({"op": "get", "key": "k1"}) == {"ok": True, "value": 1}
        # Restart the same node again from its own storage (snapshot + log replay).
        storage = cluster.stop(lagging)
        node = await cluster.start(lagging, storage)
        await wait_until(lambda: node.driver.applied_index >= target)
        assert node.kv.query({"op": "get", "key": "k17"}) == {"ok": True, "value": 17}


async def test_one_fsync_per_ready_batches_concurrent_writes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster_of() as cluster:
        leader = await cluster.leader()
        storage = cluster.nodes[leader].storage
        syncs_before = storage.syncs
        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(cluster.submit, leader, put(f"b{i}", i, f"client{i}", 1))
        # 50 proposals made in one scheduling batch share Readies (and fsyncs).
        assert storage.syncs - syncs_before < 25
        for i in (0, 25, 49):
            assert await cluster.submit(leader, {"op": "get", "key": f"b{i}"}) == {
                "ok": True,
                "value": i,
            }


async def test_stale_local_reads_bug_answers_anywhere(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The teaching switch serves reads from local state, even on a cut-off follower."""
    async with cluster_of() as cluster:
        leader = await cluster.leader()
        await cluster.submit(leader, put("k", "old"))
        follower = next(n for n in cluster.ids if n != leader)
        await wait_until(
            lambda: cluster.nodes[follower].kv.query({"op": "get", "key": "k"})["value"] == "old"
        )
        cluster.network.isolate(follower)
        await cluster.submit(leader, put("k", "new", seq=2))
        cluster.nodes[follower].driver.bugs = frozenset({"stale-local-reads"})
        stale = await cluster.submit(follower, {"op": "get", "key": "k"})
        assert stale == {"ok": True, "value": "old"}  # the anomaly the harness must catch
        cluster.nodes[follower].driver.bugs = frozenset()
        with pytest.raises(NotLeaderError):
            await cluster.submit(follower, {"op": "get", "key": "k"})


async def test_only_leader_appends_leave_before_the_fsync(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§3.8: votes and append responses are sent only once what they promise is durable.
    Only a leader's appends may overtake its own fsync (§10.2.1)."""
    events: list[tuple[str, str, Any]] = []
    original_handle = NodeDriver._handle_ready

    async def handle(self: NodeDriver, ready: Any) -> None:
        events.append((self.core.status().node_id, "ready", None))
        await original_handle(self, ready)

    monkeypatch.setattr(NodeDriver, "_handle_ready", handle)

    class RecordingStorage:
        def __init__(self, inner: MemoryStorage, node: str) -> None:
            self.inner, self.node = inner, node

        def persist(self, *args: Any) -> None:
            events.append((self.node, "persist", None))
            self.inner.persist(*args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    class RecordingTransport:
        def __init__(self, inner: Any, node: str) -> None:
            self.inner, self.node = inner, node

        def send(self, messages: list[Message]) -> None:
            events.append((self.node, "send", {m.type.value for m in messages}))
            self.inner.send(messages)

    async with cluster_of() as cluster:
        for node in cluster.nodes.values():
            node.driver.storage = RecordingStorage(node.storage, node.node_id)  # type: ignore[assignment]
            node.driver.transport = RecordingTransport(node.driver.transport, node.node_id)
        leader = await cluster.leader()
        for seq in range(1, 6):
            await cluster.submit(leader, put("k", seq, seq=seq))
        cluster.network.isolate(leader)  # force an election: votes, new term, new leader
        others = [n for n in cluster.ids if n != leader]
        await wait_until(
            lambda: any(cluster.nodes[n].driver.status()["role"] == "leader" for n in others)
        )
        cluster.network.heal()
        new = await cluster.leader()
        await cluster.submit(new, put("k", "after", "c2", 1))

    early_leader_sends = 0
    for node in cluster.ids:
        segment: list[tuple[str, Any]] = []
        for owner, kind, detail in [*events, (node, "ready", None)]:
            if owner != node:
                continue
            if kind == "ready":
                kinds = [k for k, _ in segment]
                if "persist" in kinds:
                    persist_at = kinds.index("persist")
                    for position, (k, types) in enumerate(segment):
                        if k == "send" and position < persist_at:
                            assert types <= {"append", "snapshot"}, (node, segment)
                            early_leader_sends += 1
                segment = []
            else:
                segment.append((kind, detail))
    assert early_leader_sends > 0  # the optimisation is really in use
    responses = [d for _, k, d in events if k == "send" and d & {"vote_resp", "append_resp"}]
    assert responses  # and the checked kinds really occurred


async def test_a_started_request_is_answered_once_by_the_ticker_at_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``start`` takes a callback and no task: a write that cannot commit (its leader is
    cut off) is failed by the ticker's deadline sweep, indefinite, exactly once."""
    async with cluster_of(request_timeout=0.5) as cluster:
        leader = await cluster.leader()
        cluster.network.isolate(leader)
        answers: list[Any] = []
        started_at = trio.current_time()
        cluster.nodes[leader].driver.start(put("k", "v", "c7", 1), answers.append)
        assert answers == []  # proposed, waiting for a majority
        await wait_until(lambda: bool(answers))
        assert len(answers) == 1 and isinstance(answers[0], TimeoutError)
        assert 0.5 <= trio.current_time() - started_at <= 0.5 + 2 * TICK
        await trio.sleep(1.0)  # nothing answers it a second time (heal: it may commit)
        cluster.network.heal()
        await trio.sleep(1.0)
        assert len(answers) == 1


async def test_malformed_and_not_leader_requests_are_answered_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster_of() as cluster:
        leader = await cluster.leader()
        follower = next(n for n in cluster.ids if n != leader)
        answers: list[Any] = []
        cluster.nodes[follower].driver.start(put("k", "v"), answers.append)
        cluster.nodes[leader].driver.start({"op": "frobnicate"}, answers.append)
        assert isinstance(answers[0], NotLeaderError) and answers[0].leader == leader
        assert answers[1] == {"ok": False, "error": "malformed"}


async def test_a_node_that_knows_no_leader_answers_no_leader_without_a_hint(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The core's NotLeader(None) is ``no_leader``: its message ("not the leader") was
    once read as the hint, so the client was told of a leader named "not the leader"."""
    async with cluster_of() as cluster:
        leader = await cluster.leader()
        follower = next(n for n in cluster.ids if n != leader)
        cluster.nodes[follower].driver.core.peer_connection_reset(leader)  # forgets it
        assert cluster.nodes[follower].driver.core.leader is None
        answers: list[Any] = []
        cluster.nodes[follower].driver.start(put("k", "v"), answers.append)
        assert isinstance(answers[0], NotLeaderError)
        assert answers[0].leader is None and answers[0].code == "no_leader"


class _NoPeers:
    """The transport of a one-node cluster: there is nobody to send to."""

    def send(self, messages: list[Message]) -> None:
        assert not messages, messages


async def test_defer_mode_handles_what_arrived_together_in_one_ready() -> None:
    """With ``defer`` there is no ready-loop task: an input that leaves work asks for one
    flush, and the flush handles everything that arrived before it in one Ready."""
    config = RaftConfig(node_id="n1", peers=("n1",), election_ticks=10, heartbeat_ticks=1)
    storage = MemoryStorage()
    flushes: list[Callable[[], None]] = []
    driver = NodeDriver(
        RaftCore(config, random.Random(1)),
        storage,
        KVStateMachine(),
        _NoPeers(),
        tick_seconds=TICK,
        log=lambda line: None,
        defer=flushes.append,
        external_ticks=True,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        for _ in range(30):  # a single node elects itself within 2 election timeouts
            driver.tick()
            while flushes:
                flushes.pop(0)()
            if driver.status()["role"] == "leader":
                break
        assert driver.status()["role"] == "leader"
        answers: list[Any] = []
        syncs_before = storage.syncs
        for seq in range(1, 6):
            driver.start(put(f"k{seq}", seq, "c1", seq), answers.append)
        assert len(flushes) == 1 and answers == []  # one flush asked for, nothing handled
        flushes.pop()()
        assert storage.syncs - syncs_before == 1  # five proposals, one Ready, one fsync
        assert answers == [{"ok": True, "value": None}] * 5
        nursery.cancel_scope.cancel()


async def test_persists_offloaded_to_a_thread_still_commit_in_order() -> None:
    """The ``offload`` mode (a persist off the Trio thread, for slow storage; the node
    process no longer uses it): inputs that arrive during a persist wait in the inbox and
    join the next Ready. Real clock: MockClock's autojump would fire timers while a thread
    runs."""
    async with cluster_of(offload=trio.to_thread.run_sync) as cluster:
        leader = await cluster.leader()
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(cluster.submit, leader, put(f"t{i}", i, f"client{i}", 1))
        for i in (0, 19):
            assert await cluster.submit(leader, {"op": "get", "key": f"t{i}"}) == {
                "ok": True,
                "value": i,
            }
