"""Hosts mode (`raftlab test --net netns`): a namespace per node, nftables partitions and
loss, cleanup on every exit path. Real namespaces, a real bridge, real node processes:
root only (skipped with the reason otherwise)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nemesis import netns

REASON = netns.unavailable_reason() if sys.platform == "linux" else "Linux only"
needs_netns = pytest.mark.skipif(REASON is not None, reason=f"hosts mode unavailable: {REASON}")

CAMPAIGN = [
    sys.executable, "-m", "campaign", "test", "--net", "netns", "--nodes", "3",
    "--nemesis-interval", "2", "--time-limit", "8", "--recovery-time", "1",
]  # fmt: skip


def _ours() -> set[str]:
    """Every hosts-mode namespace on the machine (all start with the prefix)."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in listing.splitlines() if line.startswith(netns.PREFIX)}


def _links() -> set[str]:
    listing = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {
        line.split(":")[1].strip().split("@")[0]
        for line in listing.splitlines()
        if line.split(":")[1].strip().startswith(netns.PREFIX)
    }


def test_not_root_is_refused_in_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    reason = netns.unavailable_reason()
    assert reason is not None and "root" in reason and "--net proxy" in reason


def test_rules_drop_exactly_the_cut_directions() -> None:
    mesh = netns.NetnsMesh(["n1", "n2", "n3"], port=7000, token="abcdef")
    ip = {node: address[0] for node, address in mesh.nodes.items()}
    assert len(set(ip.values())) == 3 and all(a.startswith("10.213.") for a in ip.values())
    assert mesh.namespaces["n1"].startswith(netns.PREFIX + "abcdef")
    assert len(mesh.bridge) <= 15  # an interface name's limit
    mesh.apply_grudge({"n1": {"n2"}})  # n1 never gets n2's traffic; n2 still gets n1's
    assert f"ip saddr {ip['n2']} drop" in mesh.rules("n1")
    assert "saddr" not in mesh.rules("n2") and "saddr" not in mesh.rules("n3")
    mesh.set_loss(0.25, links=[("n3", "n2")])
    assert f"ip saddr {ip['n3']} numgen random mod 1000000 < 250000 drop" in mesh.rules("n2")
    assert mesh.describe() == {"n2->n1": {"blocked": True}, "n3->n2": {"loss": 0.25}}
    mesh.heal()
    assert all("saddr" not in mesh.rules(node) for node in mesh.node_ids)
    assert mesh.describe() == {}


@pytest.mark.slow
@needs_netns
@pytest.mark.parametrize(
    ("extra", "code"),
    [
        (["--nemesis", "partition,loss", "--seed", "4"], 0),
        (
            [
                "--nemesis",
                "partition-leader,loss",
                "--unsafe-local-reads",
                "--seed",
                "5",
                "--workload-option",
                "value_range=1000",
                "--workload-option",
                "active_keys=2",
                "--workload-option",
                "ops_per_key=400",
                "--concurrency",
                "10n",
                "--election-timeout-ms",
                "300",
                "--heartbeat-ms",
                "30",
                "--time-limit",
                "10",
                "--nemesis-interval",
                "1.5",
                # Real processes are not deterministic: the stale read must show within 3 runs
                # (`--test-count` stops at the first run that is not valid).
                "--test-count",
                "3",
            ],
            1,
        ),
    ],  # fmt: skip
    ids=["raftnode-valid", "unsafe-local-reads-invalid"],
)
def test_hosts_campaign(tmp_path: Path, extra: list[str], code: int) -> None:
    before_spaces, before_links = _ours(), _links()
    done = subprocess.run(
        [*CAMPAIGN, *extra, "--results-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == code, done.stdout[-2000:] + done.stderr[-2000:]
    run = next((tmp_path / "register").iterdir())
    records = (run / "nemesis.jsonl").read_text()
    assert "start-loss" in records and "start-partition" in records
    if code == 1:
        assert "stale read" in done.stdout or "not linearizable" in done.stdout
    # Nothing of the run is left: namespaces, veths, bridge.
    assert _ours() == before_spaces and _links() == before_links


def _start_and_wait_for_namespaces(tmp_path: Path, before: set[str]) -> tuple:
    process = subprocess.Popen(
        [*CAMPAIGN, "--nemesis", "partition", "--time-limit", "60",
         "--results-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (_ours() - before):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no namespace appeared"
        time.sleep(0.2)
    time.sleep(3)  # nodes started, a partition may be in place
    return process, _ours() - before


@pytest.mark.slow
@needs_netns
def test_ctrl_c_removes_namespaces_bridge_and_rules(tmp_path: Path) -> None:
    before_spaces, before_links = _ours(), _links()
    process, spaces = _start_and_wait_for_namespaces(tmp_path, before_spaces)
    assert len(spaces) == 3
    try:
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert _ours() == before_spaces and _links() == before_links
    assert not any(netns.STATE_DIR.glob(f"{next(iter(spaces))[2:8]}*.json"))


@pytest.mark.slow
@needs_netns
def test_a_crashed_run_s_leftovers_are_removed_on_the_next_start(tmp_path: Path) -> None:
    before_spaces, before_links = _ours(), _links()
    process, spaces = _start_and_wait_for_namespaces(tmp_path, before_spaces)
    os.kill(process.pid, signal.SIGKILL)  # the harness dies without any teardown
    process.communicate(timeout=30)
    assert spaces <= _ours()  # left behind
    token = next(iter(spaces))[len(netns.PREFIX) : len(netns.PREFIX) + 6]
    assert token in netns.remove_leftovers()  # what the next run does first
    assert _ours() == before_spaces and _links() == before_links
