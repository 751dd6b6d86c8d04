"""Each fault package against dummy node processes, a real proxy mesh and fake admin ports."""

from __future__ import annotations

import random
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from nemesis_helpers import FakeAdminNode, free_ports

from nemesis.faults import FAULTS
from nemesis.faults.clock import ClockFault
from nemesis.faults.delay import DelayFault
from nemesis.faults.disk import DiskFault
from nemesis.faults.kill import KillFault
from nemesis.faults.loss import LossFault
from nemesis.faults.partition import PartitionFault
from nemesis.faults.pause import PauseFault
from nemesis.process import NodeProcess, ProcessGroup
from nemesis.proxy import ProxyMesh
from nemesis.schedule import Nemesis

pytestmark = pytest.mark.slow

CLUSTER = "test-cluster"
SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
WAL_CONTENT = bytes(range(256)) * 4
# A dummy node that, like a real one, refuses to start on a damaged WAL unless told that
# it can repair the damage (argv[2] == "repairs").
CHECKER = [
    sys.executable,
    "-c",
    "import sys, time; data = open(sys.argv[1] + '/wal/00000001.seg', 'rb').read(); "
    f"ok = data == {WAL_CONTENT!r} or sys.argv[2] == 'repairs'; "
    "print('wal ok' if ok else 'refusing to start: WAL damaged', flush=True); "
    "sys.exit(0 if ok else 2) if not ok else time.sleep(120)",
]


class Control:
    """A ClusterControl over dummy processes, a (non-serving) mesh and fake admin nodes."""

    def __init__(
        self, tmp_path: Path, group: ProcessGroup, node_ports: list[int], leader: str | None
    ) -> None:
        self.node_ids = ("n1", "n2", "n3")
        self.cluster_id = CLUSTER
        self.ports = dict(zip(self.node_ids, node_ports, strict=True))
        self.mesh = ProxyMesh(
            {node: ("127.0.0.1", port) for node, port in self.ports.items()},
            base_port=free_ports(6)[0],
        )
        self.group = group
        self.leader = leader
        self.tmp_path = tmp_path
        for node in self.node_ids:
            group.add(
                NodeProcess(
                    node, SLEEPER, tmp_path / "data" / node, tmp_path / "nodes" / f"{node}.log"
                )
            )

    @property
    def processes(self) -> dict[str, NodeProcess]:
        return self.group.processes

    async def current_leader(self) -> str | None:
        return self.leader

    def node_port(self, node_id: str) -> int:
        return self.ports[node_id]

    def data_dir(self, node_id: str) -> Path:
        return self.tmp_path / "data" / node_id


@asynccontextmanager
async def cluster(
    tmp_path: Path, leader: str | None = "n2"
) -> AsyncIterator[tuple[Control, dict[str, FakeAdminNode]]]:
    ports = free_ports(3)
    admins = {f"n{i + 1}": FakeAdminNode(port) for i, port in enumerate(ports)}
    async with ProcessGroup() as group, trio.open_nursery() as nursery:
        for admin in admins.values():
            await nursery.start(admin.run)
        control = Control(tmp_path, group, ports, leader)
        await group.start_all()
        yield control, admins
        nursery.cancel_scope.cancel()


def blocked_links(control: Control) -> set[tuple[str, str]]:
    return {link for link, faults in control.mesh.link_faults.items() if faults.blocked}


async def test_partition_applies_and_heals_a_grudge(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (control, _):
        fault = PartitionFault(["leader"])
        event = await fault.start(control, random.Random(1))
        assert event.f == "start-partition"
        assert event.value["isolated"] == "n2"
        assert event.value["grudge"] == {"n1": ["n2"], "n2": ["n1", "n3"], "n3": ["n2"]}
        assert blocked_links(control) == {("n2", "n1"), ("n2", "n3"), ("n1", "n2"), ("n3", "n2")}
        stop = await fault.stop(control)
        assert stop.f == "stop-partition" and blocked_links(control) == set()
        control.leader = None
        event = await PartitionFault(["leader"]).start(control, random.Random(1))
        assert "no leader" in event.value["note"]
        assert len(blocked_links(control)) == 4


async def test_every_partition_shape_applies_its_grudge_to_the_mesh(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (control, _):
        for shape in PartitionFault.variants:
            fault = PartitionFault([shape])
            event = await fault.start(control, random.Random(7))
            expected = {
                (source, destination)
                for destination, sources in event.value["grudge"].items()
                for source in sources
            }
            assert expected and blocked_links(control) == expected, shape
            await fault.stop(control)
            assert blocked_links(control) == set()


async def test_kill_and_start_again(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (control, _):
        fault = KillFault(["majority"])
        event = await fault.start(control, random.Random(2))
        assert event.f == "kill" and len(event.value["killed"]) == 2
        for node in control.node_ids:
            assert control.processes[node].running == (node not in event.value["killed"])
        stop = await fault.stop(control)
        assert stop.f == "start" and stop.value["nodes"] == event.value["killed"]
        assert all(process.running for process in control.processes.values())
        assert all(
            process.starts == (2 if process.node_id in event.value["killed"] else 1)
            for process in control.processes.values()
        )
        leader = await KillFault(["leader"]).start(control, random.Random(2))
        assert leader.value["killed"] == ["n2"]


async def test_pause_and_resume(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (control, _):
        fault = PauseFault(["all"])
        event = await fault.start(control, random.Random(2))
        assert event.f == "pause" and event.value["paused"] == ["n1", "n2", "n3"]
        assert all(process.paused and process.running for process in control.processes.values())
        stop = await fault.stop(control)
        assert stop.f == "resume" and stop.value["nodes"] == ["n1", "n2", "n3"]
        assert not any(process.paused for process in control.processes.values())


async def test_delay_and_loss_set_and_clear_link_faults(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (control, _):
        delay = DelayFault(["one"], delay=0.2, jitter=0.1)
        event = await delay.start(control, random.Random(4))
        (node,) = event.value["nodes"]
        touched = {link for link, faults in control.mesh.link_faults.items() if faults.delay == 0.2}
        assert touched == {link for link in control.mesh.link_faults if node in link}
        assert len(touched) == 4
        assert all(not faults.reorder for faults in control.mesh.link_faults.values())
        await delay.stop(control)
        assert all(faults.passing for faults in control.mesh.link_faults.values())
        loss = LossFault(["all"], probability=0.3)
        event = await loss.start(control, random.Random(4))
        assert event.f == "start-loss" and event.value["links"] == 6
        assert all(faults.loss == 0.3 for faults in control.mesh.link_faults.values())
        assert (await loss.stop(control)).f == "stop-loss"
        assert all(faults.passing for faults in control.mesh.link_faults.values())


async def test_delay_with_reorder_asks_the_mesh_to_reorder_its_links(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (control, _):
        delay = DelayFault(["all"], delay=0.05, jitter=0.05, reorder=True)
        event = await delay.start(control, random.Random(4))
        assert event.value["reorder"] is True
        assert all(faults.reorder for faults in control.mesh.link_faults.values())
        await delay.stop(control)
        assert all(faults.passing for faults in control.mesh.link_faults.values())


def test_delay_reorder_option_must_be_a_boolean() -> None:
    with pytest.raises(ValueError, match="reorder must be true or false"):
        DelayFault(["all"], reorder="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["bump", "rate", "strobe"])
async def test_clock_skews_targets_and_resets_them(tmp_path: Path, mode: str) -> None:
    async with cluster(tmp_path) as (control, admins):
        fault = ClockFault([mode], strobe_seconds=0.2)
        event = await fault.start(control, random.Random(8))
        targets = event.value["nodes"]
        assert event.f == "start-clock" and targets and "errors" not in event.value
        for node, admin in admins.items():
            assert bool(admin.clock) == (node in targets)
        if mode == "bump":
            assert all(admins[node].clock[0]["offset"] != 0.0 for node in targets)
        elif mode == "rate":
            assert all(admins[node].clock[0]["rate"] != 1.0 for node in targets)
        stop = await fault.stop(control)
        assert stop.f == "stop-clock" and stop.value["reset"] == sorted(targets)
        for node in targets:
            assert (admins[node].clock[-1]["offset"], admins[node].clock[-1]["rate"]) == (0.0, 1.0)


async def test_clock_on_a_down_node_is_recorded_not_raised(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (control, _):
        await control.processes["n1"].kill()
        await control.processes["n2"].kill()
        await control.processes["n3"].kill()
        event = await ClockFault(["bump"]).start(control, random.Random(8))
        assert set(event.value["errors"]) == set(event.value["nodes"])


async def _disk_cluster(control: Control, repairs: bool) -> None:
    for node in control.node_ids:
        wal = control.data_dir(node) / "wal"
        wal.mkdir(parents=True, exist_ok=True)
        (wal / "00000001.seg").write_bytes(WAL_CONTENT)
        process = control.processes[node]
        await process.kill()
        process.argv = [*CHECKER, str(control.data_dir(node)), "repairs" if repairs else "strict"]
        await process.start()


@pytest.mark.parametrize("repairs", [True, False])
async def test_disk_damages_a_stopped_node_and_records_recovery_or_refusal(
    tmp_path: Path, repairs: bool
) -> None:
    async with cluster(tmp_path) as (control, admins):
        await _disk_cluster(control, repairs)
        if not repairs:  # a refusing node never serves its port
            for admin in admins.values():
                admin.mode = "closed"
        fault = DiskFault(settle_seconds=20.0)
        event = await fault.start(control, random.Random(3))
        node = event.value["node"]
        damage = event.value["damage"]
        assert event.f == "start-disk" and damage["file"].endswith("00000001.seg")
        assert damage["action"] == event.value["action"] in ("truncate", "flip")
        assert (
            control.processes[node].starts == 3
        )  # started, restarted as a checker, restarted after damage
        data = (control.data_dir(node) / "wal" / "00000001.seg").read_bytes()
        assert data != WAL_CONTENT
        stop = await fault.stop(control)
        if repairs:
            assert stop.value["outcome"] == "recovered"
            assert control.processes[node].running
        else:
            assert stop.value["outcome"] == "refused"
            assert stop.value["exit_status"] == 2
            assert any("refusing to start" in line for line in stop.value["log_tail"])
            # Only what the node said since its last start.
            assert not any(line.startswith("=== raftlab") for line in stop.value["log_tail"])
            assert not any("wal ok" in line for line in stop.value["log_tail"])
            # With one node refused in a cluster of three, another disk fault would risk
            # the majority: it is skipped.
            skipped = await fault.start(control, random.Random(3))
            assert "skipped" in skipped.value


async def test_nemesis_heal_all_on_a_real_cluster(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (control, admins):
        ops: list[dict[str, Any]] = []
        nemesis = Nemesis(
            control,  # type: ignore[arg-type]
            "partition,kill,pause,clock",
            interval=0.05,
            seed=5,
            record=ops.append,
            log_path=tmp_path / "nemesis.jsonl",
        )
        with trio.move_on_after(2.0):
            await nemesis.run()
        # Leave a mess behind, then heal it all.
        control.mesh.apply_grudge({"n1": {"n2"}})
        control.processes["n3"].pause()
        await control.processes["n2"].kill()
        nemesis.clock_touched = True
        event = await nemesis.heal_all()
        assert event.value["resumed"] == ["n3"] and event.value["started"] == ["n2"]
        assert blocked_links(control) == set()
        assert all(process.running and not process.paused for process in control.processes.values())
        assert "n1" in event.value["clocks_reset"]
        assert len(ops) >= 3 and ops[-1]["f"] == "heal-all"
        assert len((tmp_path / "nemesis.jsonl").read_text().splitlines()) == len(ops)
        assert all("error" not in op for op in ops), ops


def test_registry_names_match_conventions() -> None:
    # conventions §4's names, plus raftlab's leadership transfer (ARCHITECTURE, Nemesis).
    conventions = {"partition", "kill", "pause", "delay", "loss", "clock", "disk"}
    assert set(FAULTS) == conventions | {"transfer", "member"}
    for name, fault_class in FAULTS.items():
        assert fault_class.name == name
