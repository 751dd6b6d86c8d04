"""Bug switches against the simulation: each detectable switch is caught by its recipe's
cheapest fixed seed, and the same recipes with every switch off come out valid.

The recipes live in ``campaign/sim/scenarios.py`` (``bench/bug_matrix.py`` runs them over
all their seeds); here each runs short, so the whole file stays within CI's budget.
"""

from __future__ import annotations

import pytest

from campaign.sim.run import SimConfig, run_simulation
from campaign.sim.scenarios import CORRECT_SEEDS, SCENARIOS, BugScenario, detectable
from raftnode.core import KNOWN_BUGS

pytestmark = pytest.mark.slow

# Undetected switches still get their recipe run with the bug off, at this length.
DEFAULT_CORRECT_TIME = 6.0


def _failing(config: SimConfig) -> tuple[bool | str, dict[str, str]]:
    outcome = run_simulation(config)
    failing = {
        name: str(result.get("error", result.get("valid")))
        for name, result in outcome.checkers.items()
        if result.get("valid") is not True
    }
    return outcome.valid, failing


def test_every_bug_switch_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(KNOWN_BUGS)
    for scenario in SCENARIOS.values():
        assert scenario.seeds, scenario.bug
        assert scenario.why, scenario.bug
        config = scenario.config(7)
        assert config.bugs == [scenario.bug] and config.seed == 7
        assert scenario.config(7, with_bug=False).bugs == []


@pytest.mark.parametrize("scenario", detectable(), ids=lambda scenario: scenario.bug)
def test_each_bug_switch_is_detected_by_a_fixed_seed(scenario: BugScenario) -> None:
    """The first of the recipe's test seeds that detects ends the test."""
    tried = {}
    for seed in scenario.test_seeds:
        valid, failing = _failing(scenario.config(seed, time=scenario.test_time))
        if valid is False:
            # Caught by a checker that this bug's damage explains, not an incidental one.
            assert set(failing) & set(scenario.expected_checkers), failing
            return
        tried[seed] = failing or valid
    pytest.fail(f"{scenario.bug} detected by none of its test seeds: {tried}")


_CORRECT_CASES = [
    pytest.param(scenario, seed, id=f"{scenario.bug}-seed{seed}")
    for scenario in SCENARIOS.values()
    for seed in sorted({CORRECT_SEEDS[0], (scenario.test_seeds or CORRECT_SEEDS[1:])[0]})
]


@pytest.mark.parametrize(("scenario", "seed"), _CORRECT_CASES)
def test_the_correct_build_is_valid_with_every_recipe(scenario: BugScenario, seed: int) -> None:
    """The detecting seed itself is among these: what catches the bug is the bug."""
    config = scenario.config(seed, with_bug=False, time=scenario.test_time or DEFAULT_CORRECT_TIME)
    valid, failing = _failing(config)
    assert valid is True, f"correct build, recipe {scenario.bug}, seed {seed}: {failing}"
