"""A target refuses, up front and in words, a workload its client cannot run (exit 254).

etcd's client has no txn of micro-ops, so Elle's list-append and rw-register are refused
before anything starts; nothing is run here (`run_campaign` is replaced to prove it)."""

from __future__ import annotations

import pytest

import campaign.run
from campaign.cli import main
from campaign.targets import TargetError, get_target
from campaign.targets.base import check_workload


def raftlab_test(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_:
        main(["test", *args])
    return exit_.value.code


@pytest.fixture
def no_campaign(monkeypatch):
    started: list[object] = []
    monkeypatch.setattr(campaign.run, "run_campaign", lambda *a, **k: started.append(a))
    return started


@pytest.mark.parametrize("workload", ["list-append", "rw-register"])
def test_etcd_refuses_transactional_workloads_up_front(workload, capsys, tmp_path, no_campaign):
    code = raftlab_test(
        "--target", "etcd", "--workload", workload, "--results-dir", str(tmp_path)
    )
    err = capsys.readouterr().err
    assert code == 254
    assert f"cannot run the workload {workload}" in err
    assert "no txn" in err
    assert "its workloads:" in err and "register" in err
    assert no_campaign == []  # refused before anything started
    assert not any(tmp_path.iterdir())


def test_check_workload_per_target() -> None:
    etcd = get_target("etcd")
    for workload in ("register", "set", "append", "bank"):
        check_workload(etcd, workload)
    with pytest.raises(TargetError, match="list-append"):
        check_workload(etcd, "list-append")
    raftnode = get_target("raftnode")
    for workload in ("register", "list-append", "rw-register"):
        check_workload(raftnode, workload)  # no unsupported_workloads: runs every workload
