"""The real runs' node-log checkers (campaign/node_checks.py) over simulated runs whose
nodes log as node processes do: teaching bugs that lose acknowledged writes or lower a
commit index are caught from the logs alone, and the correct build passes."""

from __future__ import annotations

import pytest

from campaign.node_checks import check_node_logs, parse_node_logs
from campaign.sim.run import run_simulation
from campaign.sim.scenarios import SCENARIOS
from checker.raft_events import commit_monotonic

pytestmark = pytest.mark.slow


def _run(bug: str, seed: int, *, with_bug: bool):
    scenario = SCENARIOS[bug]
    config = scenario.config(seed, time=scenario.test_time, with_bug=with_bug)
    config.log_applied = True
    return run_simulation(config)


@pytest.mark.parametrize("bug", ["no-fsync", "truncate-always"])
def test_lost_acknowledged_writes_are_found_in_the_node_logs(bug: str) -> None:
    seed = SCENARIOS[bug].test_seeds[0]
    broken = _run(bug, seed, with_bug=True).checkers["acknowledged-writes"]
    assert broken["valid"] is False, broken
    assert broken["lost"] and broken["lost"][0]["client"].startswith("p")
    correct = _run(bug, seed, with_bug=False).checkers["acknowledged-writes"]
    assert correct["valid"] is True and correct["confirmed"] == correct["acknowledged"] > 0


def test_a_commit_index_regression_is_found_in_the_node_logs() -> None:
    seed = SCENARIOS["commit-regress"].test_seeds[0]
    for with_bug, expected in ((True, False), (False, True)):
        outcome = _run("commit-regress", seed, with_bug=with_bug)
        lines = {node: text.splitlines() for node, text in outcome.node_logs.items()}
        events = [e for log in parse_node_logs(lines).values() for e in log.events]
        assert commit_monotonic(events)["valid"] is expected
        # The simulation's own exact watch agrees.
        assert outcome.checkers["commit-monotonic"]["valid"] is expected
        by_logs = check_node_logs(lines, outcome.ops, lambda f: f == "read")
        assert by_logs["election-safety"]["valid"] is True
