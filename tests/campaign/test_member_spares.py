"""Spare nodes in `raftlab test` (--spares): the member fault grows the cluster with a
brand-new empty node started with `raftlab node --join`, whose peer links run through the
proxies both ways (its own dials go to its proxies, the others reach it through its hello
router), and the node-log checks, `leader-is-voter` among them, hold on the real run."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from campaign.cluster import choose_base_port, ports_needed
from campaign.node_checks import CHECKERS

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_spares_count_their_ports_and_a_router_per_node() -> None:
    assert ports_needed(3) == 3 + 6  # no spares: no routers
    assert ports_needed(3, 2) == 5 + 20 + 5


def test_spares_are_refused_where_they_cannot_run(tmp_path: Path) -> None:
    from campaign.run import CampaignConfig, resolve_spares
    from campaign.targets import TargetError, get_target

    raftnode = get_target("raftnode")
    assert resolve_spares(CampaignConfig(nemesis="member"), raftnode) == 2
    assert resolve_spares(CampaignConfig(nemesis="partition"), raftnode) == 0
    assert resolve_spares(CampaignConfig(nemesis="partition", spares=1), raftnode) == 1
    with pytest.raises(TargetError, match="does not take spare nodes"):
        resolve_spares(CampaignConfig(nemesis="kill", target="etcd", spares=1), get_target("etcd"))
    with pytest.raises(TargetError, match="netns"):
        resolve_spares(CampaignConfig(nemesis="member", net="netns", spares=2), raftnode)


@pytest.mark.slow
def test_a_member_and_partition_campaign_grows_with_spares_through_the_proxies(
    tmp_path: Path,
) -> None:
    results_dir = tmp_path / "results"
    # The harness's own picker (a free block, or ClusterError: a failure, never a skip).
    base = choose_base_port(3, 0, random.Random(os.getpid()), count=ports_needed(3, 2))
    completed = subprocess.run(
        [
            sys.executable, "-m", "campaign", "test", "--results-dir", str(results_dir),
            "--nodes", "3", "--spares", "2", "--nemesis", "member,partition",
            "--nemesis-interval", "1.5", "--time-limit", "10", "--recovery-time", "1",
            "--rate", "50", "--heartbeat-ms", "50", "--election-timeout-ms", "300",
            "--seed", "7", "--base-port", str(base), "--name", "spares",
        ],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    run_dir = (results_dir / "latest").resolve()
    campaign = json.loads((run_dir / "campaign.json").read_text())
    assert campaign["config"]["spares"] == 2
    results = json.loads((run_dir / "results.json").read_text())
    for name in CHECKERS:
        assert results["checkers"][name]["valid"] is True, (name, results["checkers"][name])
    assert results["checkers"]["leader-is-voter"]["leaderships"] >= 1
    records = [
        json.loads(line) for line in (run_dir / "nemesis.jsonl").read_text().splitlines()
    ]
    grown = [
        r["value"]
        for r in records
        if r["f"] == "start-member" and r["value"].get("process") == "started empty (--join)"
    ]
    assert grown, records
    spare = grown[0]["node"]
    assert spare in ("n4", "n5") and grown[0]["result"] == "added as learner"
    # Its links run through the harness both ways: it dials proxies (ports after the
    # five node ports, before the routers), the members dial its router.
    proxies = range(base + 5, base + 25)
    routers = range(base + 25, base + 30)
    spare_log = (run_dir / "nodes" / f"{spare}.log").read_text()
    assert "--join" in spare_log and "restored_entries=0" in spare_log
    dialled = [int(p) for p in re.findall(r"peer n[123] connected at 127\.0\.0\.1:(\d+)", spare_log)]
    assert dialled and all(port in proxies for port in dialled), dialled
    n1_log = (run_dir / "nodes" / "n1.log").read_text()
    added = re.search(rf"peer {spare} added at 127\.0\.0\.1:(\d+)", n1_log)
    assert added is not None and int(added[1]) in routers
    assert "leader-is-voter" in (run_dir / "report.html").read_text()
