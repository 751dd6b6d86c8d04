"""A target from another package, registered only by entry point, runs a campaign.

The test writes a dist-info (METADATA + entry_points.txt) into a temporary directory on
the path, as ``pip install`` of a plug-in would, so `importlib.metadata` finds the
``raftlab.targets`` entry point ``wrapped = wrapped_raftnode:WrappedRaftnode``
(tests/campaign/thirdparty_target/wrapped_raftnode.py).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from campaign.cluster import choose_base_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIR = Path(__file__).resolve().parent / "thirdparty_target"


def install_plugin(site: Path) -> str:
    """A dist-info for the plug-in in ``site``; returns the PYTHONPATH that sees both."""
    info = site / "raftlab_wrapped_target-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: raftlab-wrapped-target\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[raftlab.targets]\nwrapped = wrapped_raftnode:WrappedRaftnode\n"
    )
    return os.pathsep.join([str(site), str(PLUGIN_DIR)])


def test_an_entry_point_target_is_found_and_its_options_checked(tmp_path, monkeypatch):
    from campaign.targets import TargetError, get_target, parse_target_options, target_names

    path = install_plugin(tmp_path / "site")
    for entry in path.split(os.pathsep):
        monkeypatch.syspath_prepend(entry)
    assert "wrapped" in target_names()
    target = get_target("wrapped")
    assert parse_target_options(target, ["election_ms=400"]) == {"election_ms": 400.0}
    with pytest.raises(TargetError, match="its options: election_ms"):
        parse_target_options(target, ["heartbeat=1"])


def raftlab_test(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [install_plugin(tmp_path / "site"), str(PROJECT_ROOT), env.get("PYTHONPATH", "")]
    )
    return subprocess.run(
        [sys.executable, "-m", "campaign", "test", "--results-dir", str(tmp_path / "r"), *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.slow
def test_a_third_party_target_runs_a_valid_campaign(tmp_path):
    base = choose_base_port(3, 0, random.Random(tmp_path.name))
    done = raftlab_test(
        tmp_path,
        "--target", "wrapped", "--target-option", "election_ms=300",
        "--nodes", "3", "--nemesis", "partition,kill", "--nemesis-interval", "2",
        "--time-limit", "6", "--recovery-time", "1", "--seed", "8",
        "--base-port", str(base), "--name", "plugin",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = (tmp_path / "r" / "latest").resolve()
    campaign = json.loads((run_dir / "campaign.json").read_text())
    assert campaign["config"]["target"] == "wrapped"
    assert campaign["target"] == {"name": "wrapped", "options": {"election_ms": 300.0}}
    node_log = (run_dir / "nodes" / "n1.log").read_text()
    assert "--election-timeout-ms 300" in node_log  # the option reached the nodes
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] is True


def test_a_fault_the_third_party_target_refuses_exits_254(tmp_path):
    done = raftlab_test(tmp_path, "--target", "wrapped", "--nemesis", "kill,disk")
    assert done.returncode == 254
    assert "cannot take the fault(s) disk" in done.stderr and "somewhere the disk" in done.stderr
