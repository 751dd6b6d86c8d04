"""`raftlab test --nemesis-option FAULT.KEY=VALUE`: a fault's options (issue 9's blackhole
partitions) reach the fault, and bad ones are refused before anything starts (exit 254).

`run_campaign` is replaced by a stand-in (a unit test of the command's own logic); the
blackhole mode itself is tested on real nodes in tests/nemesis/test_nemesis_real_nodes.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import campaign.run
from campaign.cli import main
from campaign.run import CampaignConfig, CampaignOutcome, check_nemesis_options
from campaign.targets import TargetError
from nemesis.schedule import build_faults, parse_nemesis


def raftlab(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_:
        main(["test", *args])
    return exit_.value.code


def test_a_partition_mode_reaches_the_fault(tmp_path, monkeypatch):
    seen: list[CampaignConfig] = []

    async def stand_in(config, *, argv=None, **_):
        seen.append(config)
        return CampaignOutcome(Path(tmp_path), True, 0)

    monkeypatch.setattr(campaign.run, "run_campaign", stand_in)
    code = raftlab(
        "--nemesis", "partition,kill", "--nemesis-option", "partition.modes=drop,blackhole",
        "--results-dir", str(tmp_path), "--seed", "1",
    )
    assert code == 0
    assert seen[0].nemesis_options == {"partition": {"modes": ["drop", "blackhole"]}}
    faults = build_faults(parse_nemesis(seen[0].nemesis), seen[0].nemesis_options)
    assert [getattr(fault, "modes", None) for fault in faults] == [("drop", "blackhole"), None]


def test_a_single_mode_is_plain_text(tmp_path, monkeypatch):
    seen: list[CampaignConfig] = []

    async def stand_in(config, *, argv=None, **_):
        seen.append(config)
        return CampaignOutcome(Path(tmp_path), True, 0)

    monkeypatch.setattr(campaign.run, "run_campaign", stand_in)
    assert raftlab("--nemesis", "partition", "--nemesis-option", "partition.modes=blackhole",
                   "--results-dir", str(tmp_path)) == 0
    faults = build_faults(parse_nemesis("partition"), seen[0].nemesis_options)
    assert faults[0].modes == ("blackhole",)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--nemesis-option", "partition.modes"], "FAULT.KEY=VALUE"),
        (["--nemesis-option", "modes=blackhole"], "FAULT.KEY=VALUE"),
        (["--nemesis-option", "flood.rate=3"], "unknown fault 'flood'"),
        (["--nemesis", "kill", "--nemesis-option", "partition.modes=blackhole"], "not in"),
        (["--nemesis-option", "partition.modes=sideways"], "sideways"),
        (["--nemesis-option", "partition.colour=red"], "colour"),
    ],
)
def test_bad_nemesis_options_exit_254_before_anything_starts(args, said, tmp_path, monkeypatch,
                                                             capsys):
    async def never(config, **_):  # pragma: no cover - reaching it is the failure
        raise AssertionError("a campaign started despite a bad --nemesis-option")

    monkeypatch.setattr(campaign.run, "run_campaign", never)
    assert raftlab(*args, "--results-dir", str(tmp_path)) == 254
    assert said in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_the_python_api_path_refuses_them_too():
    with pytest.raises(TargetError, match="unknown fault"):
        check_nemesis_options("partition", {"flood": {"rate": 3}})
