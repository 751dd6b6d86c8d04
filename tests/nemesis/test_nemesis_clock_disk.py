"""Clock faults against a fake admin endpoint; disk faults on temporary WAL files."""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from nemesis_helpers import FakeAdminNode, free_port, free_ports

from nemesis.admin import AdminError, ping
from nemesis.clock import ClockFaultError, ClockSetting, bump, reset, set_clock, strobe
from nemesis.disk import DiskFaultError, flip_byte, newest_segment, truncate_tail
from nemesis.faults.disk import TAIL_FLIP_BYTES, DiskFault
from nemesis.process import NodeProcess, ProcessGroup
from nemesis.schedule import FaultSpec, Nemesis
from raftnode.client import ClientError, RaftClient

CLUSTER = "test-cluster"


async def test_set_clock_sends_the_admin_hello_and_request() -> None:
    node = FakeAdminNode(free_port())
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        reply = await set_clock(
            "127.0.0.1", node.port, cluster_id=CLUSTER, setting=ClockSetting(offset=-2.5, rate=2.0)
        )
        nursery.cancel_scope.cancel()
    assert reply["ok"] is True
    assert node.hellos == [
        {"type": "hello", "cluster": CLUSTER, "from": "nemesis", "role": "admin"}
    ]
    (request,) = node.clock
    assert request["type"] == "admin" and request["action"] == "clock"
    assert (request["offset"], request["rate"]) == (-2.5, 2.0)
    assert request["id"] == reply["id"]


async def test_bump_and_reset_set_absolute_settings() -> None:
    node = FakeAdminNode(free_port())
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await bump("127.0.0.1", node.port, cluster_id=CLUSTER, offset=30.0)
        await reset("127.0.0.1", node.port, cluster_id=CLUSTER)
        nursery.cancel_scope.cancel()
    assert [(r["offset"], r["rate"]) for r in node.clock] == [(30.0, 1.0), (0.0, 1.0)]


@pytest.mark.parametrize(
    ("mode", "message"),
    [("refuse", "refused the clock request"), ("mismatch", "refused the admin hello")],
)
async def test_refusals_are_clear_errors(mode: str, message: str) -> None:
    node = FakeAdminNode(free_port(), mode=mode)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        with pytest.raises(ClockFaultError, match=message):
            await set_clock("127.0.0.1", node.port, cluster_id=CLUSTER, setting=ClockSetting())
        nursery.cancel_scope.cancel()


async def test_silent_or_absent_nodes_are_clear_errors() -> None:
    with pytest.raises(ClockFaultError, match="cannot reach"):
        await set_clock("127.0.0.1", free_port(), cluster_id=CLUSTER, setting=ClockSetting())
    node = FakeAdminNode(free_port(), mode="silent")
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        with pytest.raises(ClockFaultError, match="did not answer"):
            await set_clock(
                "127.0.0.1", node.port, cluster_id=CLUSTER, setting=ClockSetting(), timeout=0.2
            )
        nursery.cancel_scope.cancel()


async def test_bad_settings_are_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        await set_clock("127.0.0.1", 1, cluster_id=CLUSTER, setting=ClockSetting(rate=0.0))
    with pytest.raises(ValueError, match="finite"):
        await set_clock(
            "127.0.0.1", 1, cluster_id=CLUSTER, setting=ClockSetting(offset=float("nan"))
        )


async def test_strobe_alternates_and_ends_reset() -> None:
    node = FakeAdminNode(free_port())
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        flips = await strobe(
            "127.0.0.1", node.port, cluster_id=CLUSTER, delta=5.0, period=0.02, duration=0.2
        )
        nursery.cancel_scope.cancel()
    offsets = [request["offset"] for request in node.clock]
    assert flips >= 1
    assert len(offsets) == flips + 1
    assert offsets[:-1] == [5.0 if i % 2 == 0 else 0.0 for i in range(flips)]
    assert offsets[-1] == 0.0 and node.clock[-1]["rate"] == 1.0


# -- disk ------------------------------------------------------------------------------


def make_wal(tmp_path: Path) -> Path:
    wal = tmp_path / "wal"
    wal.mkdir()
    (wal / "00000001.seg").write_bytes(b"A" * 100)
    (wal / "00000002.seg").write_bytes(bytes(range(200)))
    (wal / "notes.txt").write_bytes(b"not a segment")
    return wal / "00000002.seg"


def test_newest_segment_is_the_lexicographically_last(tmp_path: Path) -> None:
    newest = make_wal(tmp_path)
    assert newest_segment(tmp_path) == newest
    assert newest_segment(tmp_path, "wal/*.txt").name == "notes.txt"
    with pytest.raises(DiskFaultError, match="no WAL segment"):
        newest_segment(tmp_path / "elsewhere")


def test_truncate_tail_removes_the_last_bytes_and_records_them(tmp_path: Path) -> None:
    newest = make_wal(tmp_path)
    damage = truncate_tail(tmp_path, 7)
    assert newest.read_bytes() == bytes(range(193))
    assert (tmp_path / "wal" / "00000001.seg").read_bytes() == b"A" * 100
    assert damage.action == "truncate" and damage.file == str(newest)
    assert (damage.offset, damage.length, damage.size_before, damage.size_after) == (
        193,
        7,
        200,
        193,
    )
    assert damage.before_hex == bytes(range(193, 200)).hex()
    # More than the file holds empties it; then there is nothing left to truncate.
    assert truncate_tail(tmp_path, 10_000).length == 193
    with pytest.raises(DiskFaultError, match="empty"):
        truncate_tail(tmp_path, 1)
    with pytest.raises(DiskFaultError, match="positive"):
        truncate_tail(tmp_path, 0)


def test_flip_byte_inverts_one_byte_at_a_seeded_offset(tmp_path: Path) -> None:
    newest = make_wal(tmp_path)
    original = newest.read_bytes()
    damage = flip_byte(tmp_path, random.Random(5))
    expected_offset = random.Random(5).randrange(200)
    assert damage.offset == expected_offset
    changed = newest.read_bytes()
    differences = [i for i in range(200) if changed[i] != original[i]]
    assert differences == [expected_offset]
    assert changed[expected_offset] == original[expected_offset] ^ 0xFF
    assert (damage.before_hex, damage.after_hex) == (
        bytes([original[expected_offset]]).hex(),
        bytes([changed[expected_offset]]).hex(),
    )
    # Flipping the same byte again restores the file.
    flip_byte(tmp_path, random.Random(0), offset=expected_offset)
    assert newest.read_bytes() == original
    with pytest.raises(DiskFaultError, match="outside"):
        flip_byte(tmp_path, random.Random(0), offset=200)


def test_flip_byte_aimed_at_the_tail_stays_in_its_window(tmp_path: Path) -> None:
    newest = make_wal(tmp_path)
    for seed in range(20):
        original = newest.read_bytes()
        damage = flip_byte(tmp_path, random.Random(seed), window=8)
        assert 192 <= damage.offset < 200 and damage.window == 8
        changed = newest.read_bytes()
        assert [i for i in range(200) if changed[i] != original[i]] == [damage.offset]
    # A window larger than the file is the whole file.
    assert 0 <= flip_byte(tmp_path, random.Random(1), window=10_000).offset < 200
    with pytest.raises(DiskFaultError, match="positive window"):
        flip_byte(tmp_path, random.Random(0), window=0)


# -- disk faults against real raftnode processes -----------------------------------------


@dataclass
class _Links:
    """The part of a ProxyMesh the disk fault and the final heal use (no proxies here)."""

    nodes: dict[str, tuple[str, int]]

    def describe(self) -> dict[str, Any]:
        return {}

    def heal(self) -> None:
        pass


class RealNodes:
    """A ClusterControl over three real raftnode processes talking directly (the disk
    fault needs no proxies: only processes, data directories and admin addresses)."""

    def __init__(self, tmp_path: Path, group: ProcessGroup) -> None:
        ports = free_ports(3)
        self.node_ids = ("n1", "n2", "n3")
        self.cluster_id = "disk-real"
        self.mesh = _Links(
            {node: ("127.0.0.1", port) for node, port in zip(self.node_ids, ports, strict=True)}
        )
        self.group = group
        self.tmp_path = tmp_path
        for node in self.node_ids:
            peers = [
                arg
                for other, (host, port) in self.mesh.nodes.items()
                if other != node
                for arg in ("--peer", f"{other}={host}:{port}")
            ]
            argv = [
                sys.executable,
                "-m",
                "campaign",
                "node",
                "--id",
                node,
                "--listen",
                f"127.0.0.1:{self.mesh.nodes[node][1]}",
                "--data-dir",
                str(self.data_dir(node)),
                "--cluster-id",
                self.cluster_id,
                "--election-timeout-ms",
                "300",
                "--heartbeat-ms",
                "50",
                *peers,
            ]
            group.add(NodeProcess(node, argv, self.data_dir(node), tmp_path / f"{node}.log"))

    @property
    def processes(self) -> dict[str, NodeProcess]:
        return self.group.processes

    async def current_leader(self) -> str | None:
        return None

    def node_port(self, node_id: str) -> int:
        return self.mesh.nodes[node_id][1]

    def data_dir(self, node_id: str) -> Path:
        return self.tmp_path / "data" / node_id

    async def wait_until_serving(self) -> None:
        with trio.fail_after(60):
            for host, port in self.mesh.nodes.values():
                while True:
                    try:
                        await ping(host, port, cluster_id=self.cluster_id, timeout=1.0)
                        break
                    except AdminError:
                        await trio.sleep(0.2)
            # Some acknowledged writes, so that every WAL holds a few complete records.
            async with RaftClient(self.mesh.nodes, cluster_id=self.cluster_id, timeout=1.0) as c:
                for index in range(10):
                    while True:
                        try:
                            await c.put(f"k{index}", index)
                            break
                        except ClientError:
                            await trio.sleep(0.2)
            for node in self.node_ids:
                while (self.data_dir(node) / "wal" / "00000001.seg").stat().st_size < 400:
                    await trio.sleep(0.2)


@pytest.mark.slow
async def test_a_real_node_recovers_a_cut_tail_and_refuses_a_flipped_byte(
    tmp_path: Path,
) -> None:
    """Issue 9, defect 3, through the nemesis: a cut tail is a torn write (the node
    truncates it and serves: ``recovered``); a flipped byte in a complete record is
    corruption (the node exits, naming the file and offset: ``refused``). The harness
    records both as nemesis ops without error, and its final heal survives the refusal."""
    records: list[dict[str, Any]] = []
    async with ProcessGroup() as group:
        nodes = RealNodes(tmp_path, group)
        await group.start_all()
        await nodes.wait_until_serving()
        nemesis = Nemesis(
            nodes,  # type: ignore[arg-type]
            [FaultSpec("disk")],
            interval=1.0,
            seed=1,
            records=records,
            log_path=tmp_path / "nemesis.jsonl",
            fault_options={
                "disk": {"max_truncate_bytes": 40, "settle_seconds": 40.0, "tail_flip_share": 1.0}
            },
        )
        (disk,) = nemesis.faults
        assert isinstance(disk, DiskFault)
        disk.actions = ("truncate",)
        start = await nemesis.start_fault(disk)
        stop = await nemesis.stop_fault(disk)
        assert start.value["damage"]["action"] == "truncate"
        assert stop.value["outcome"] == "recovered", stop.value
        recovered = stop.value["node"]
        assert nodes.processes[recovered].running

        disk.actions = ("flip",)
        start = await nemesis.start_fault(disk)
        stop = await nemesis.stop_fault(disk)
        damage = start.value["damage"]
        # Aimed at the tail: inside the complete last record, where the old WAL took the
        # damage for a torn write, truncated it and came back with an older vote.
        assert damage["action"] == "flip" and damage["window"] == TAIL_FLIP_BYTES
        assert damage["offset"] >= damage["size_before"] - TAIL_FLIP_BYTES
        assert stop.value["outcome"] == "refused", stop.value
        refused = stop.value["node"]
        assert not nodes.processes[refused].running
        assert stop.value["exit_status"] == 1
        said = " ".join(stop.value["log_tail"])
        assert f"{damage['file']}: corrupt record at byte offset" in said
        assert "refusing to start" in said
        flipped = Path(damage["file"]).read_bytes()[damage["offset"]]
        assert flipped == int(damage["after_hex"], 16)  # the node changed nothing

        heal = await nemesis.heal_all()
        assert heal.value["refused_after_disk_damage"] == [refused]
        with trio.fail_after(30):
            while nodes.processes[refused].running:  # it refuses again: it stays down
                await trio.sleep(0.1)
    assert [r["f"] for r in records] == ["start-disk", "stop-disk"] * 2 + ["heal-all"]
    assert all("error" not in r for r in records), records
    lines = (tmp_path / "nemesis.jsonl").read_text().splitlines()
    assert len(lines) == len(records)
    assert '"outcome": "recovered"' in lines[1] and '"outcome": "refused"' in lines[3]
