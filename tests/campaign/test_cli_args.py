"""`raftlab test` arguments: bad ones exit 254; --test-count stops at the first non-valid run.

`run_campaign` is replaced by a stand-in here (a unit test of the command's own logic);
real campaigns are in test_campaigns.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import campaign.run
from campaign.cli import main
from campaign.run import CampaignOutcome


def raftlab(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_:
        main(["test", *args])
    return exit_.value.code


@pytest.mark.parametrize(
    "args",
    [
        ["--name", "../escape"],
        ["--concurrency", "two"],
        ["--nodes", "0"],
        ["--time-limit", "-1"],
        ["--workload", "queue"],
        ["--heartbeat-ms", "600", "--election-timeout-ms", "1000"],
        ["--seed", "-3"],
        ["--test-count", "0"],
    ],
)
def test_bad_arguments_exit_254(args, capsys):
    assert raftlab(*args) == 254
    assert "Error" in capsys.readouterr().err


def test_test_count_stops_at_the_first_run_that_is_not_valid(tmp_path, monkeypatch, capsys):
    verdicts = iter([True, True, False, True])
    seen: list[int] = []

    async def stand_in(config, *, argv=None, **_):
        seen.append(config.seed)
        valid = next(verdicts)
        return CampaignOutcome(Path(tmp_path / str(config.seed)), valid, 0 if valid else 1)

    monkeypatch.setattr(campaign.run, "run_campaign", stand_in)
    code = raftlab("--test-count", "4", "--seed", "100", "--results-dir", str(tmp_path))
    assert code == 1
    assert seen == [100, 101, 102]  # the fourth run never started
    out = capsys.readouterr().out
    assert "run 3/4: seed 102" in out and "valid: False" in out


def test_seed_is_drawn_and_printed_when_not_given(tmp_path, monkeypatch, capsys):
    seen: list[int] = []

    async def stand_in(config, *, argv=None, **_):
        seen.append(config.seed)
        return CampaignOutcome(Path(tmp_path), "unknown", 2)

    monkeypatch.setattr(campaign.run, "run_campaign", stand_in)
    assert raftlab("--results-dir", str(tmp_path)) == 2
    assert f"seed {seen[0]}" in capsys.readouterr().out


def test_ports_in_use_are_a_clear_error_before_anything_starts(tmp_path, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 19802))
        taken.listen()
        code = raftlab("--nodes", "3", "--base-port", "19800", "--results-dir", str(tmp_path))
    assert code == 254
    assert "19800..19808 are not all free" in capsys.readouterr().err
    assert not (tmp_path / "raftlab").exists() and not (tmp_path / "register").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--workload-option", "nokey=1"],
            "workload 'register' has no option 'nokey'; its options: active_keys (default 5), "
            "ops_per_key (default 100), value_range (default 5), key_prefix (default 'r')",
        ),
        (
            ["--workload", "bank", "--workload-option", "accounts=many"],
            "workload 'bank': option accounts takes an integer, got 'many'",
        ),
    ],
)
def test_a_bad_workload_option_lists_the_valid_ones(args, expected, capsys):
    assert raftlab(*args) == 254
    err = " ".join(capsys.readouterr().err.split())
    assert expected in err
    assert "__init__" not in err


def test_help_lists_every_exit_code(capsys):
    for command in ("test", "check", "sim"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        codes = [line.split()[0] for line in out[out.index("Exit codes:") :].splitlines()[1:7]]
        assert codes == ["0", "1", "2", "130", "254", "255"], command
