"""The member fault in the simulation (§4): the cluster grows with spare nodes (learner,
then voter) and shrinks (never below 3 voters, the leader removed too) under load; the
correct build stays valid and no term has two leaders."""

from __future__ import annotations

import re

from campaign.sim.run import SimConfig, run_simulation


def _configurations(outcome) -> set[tuple[str, ...]]:
    seen = set()
    for text in outcome.node_logs.values():
        for line in text.splitlines():
            match = re.search(r"configuration voters=(\S*) learners=", line)
            if match:
                seen.add(tuple(sorted(match.group(1).split(","))))
    return seen


def test_member_changes_under_load_stay_valid() -> None:
    changed = 0
    for seed in (1, 2, 3):
        outcome = run_simulation(
            SimConfig(
                seed=seed,
                time=10.0,
                nodes=3,
                rate=40.0,
                workload="register",
                nemesis="member",
                nemesis_interval=1.0,
                heartbeat_ms=50.0,
                election_timeout_ms=250.0,
                recovery_time=1.0,
            )
        )
        failing = {n: r for n, r in outcome.checkers.items() if r.get("valid") is not True}
        assert outcome.valid is True, (seed, failing)
        proposed = [
            r
            for r in outcome.nemesis_records
            if r["f"] in ("start-member", "stop-member")
            and r["value"].get("result") == "proposed"
        ]
        assert proposed, seed
        configurations = _configurations(outcome)
        assert all(len(voters) >= 3 for voters in configurations), configurations
        changed += len(configurations) - 1
    assert changed >= 4


def test_member_changes_mixed_with_kills_and_partitions_stay_valid() -> None:
    for seed in (1, 3):
        outcome = run_simulation(
            SimConfig(
                seed=seed,
                time=12.0,
                nodes=3,
                rate=40.0,
                workload="register",
                nemesis="member,kill:leader,partition",
                nemesis_interval=1.0,
                heartbeat_ms=50.0,
                election_timeout_ms=250.0,
                recovery_time=2.0,
            )
        )
        failing = {n: r for n, r in outcome.checkers.items() if r.get("valid") is not True}
        assert outcome.valid is True, (seed, failing)
        assert len(_configurations(outcome)) >= 3
