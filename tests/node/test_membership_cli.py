"""Bad arguments to `raftlab member` / `raftlab transfer-leader` exit 254 with a reason,
before anything is sent; an unreachable cluster is a definite failure (exit 1)."""

from __future__ import annotations

import json

import pytest
from node_procs import free_ports

from campaign.cli import main


@pytest.mark.parametrize(
    "argv",
    [
        ["member", "add", "n4", "--cluster", "n1=127.0.0.1:1"],  # no =HOST:PORT
        ["member", "add", "n4=nohost", "--cluster", "n1=127.0.0.1:1"],
        ["member", "add", "n1=127.0.0.1:2", "--cluster", "n1=127.0.0.1:1"],  # already in
        ["member", "remove", "n2", "--cluster", "garbage"],
        ["member", "list", "--cluster", "n1=127.0.0.1:1", "--timeout", "-1"],
        ["transfer-leader", "--to", "n9", "--cluster", "n1=127.0.0.1:1"],
    ],
)
def test_bad_arguments_exit_254(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 254
    assert capsys.readouterr().err.strip()


def test_an_unreachable_cluster_is_a_definite_failure(capsys: pytest.CaptureFixture[str]) -> None:
    (port,) = free_ports(1)
    with pytest.raises(SystemExit) as exited:
        main(["member", "list", "--cluster", f"n1=127.0.0.1:{port}", "--timeout", "0.2"])
    assert exited.value.code == 1
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["ok"] is False and out["error"] == "no_leader"
