"""Hand-built fault schedules: faults aimed at named nodes, and steps that overlap.

The replays of Figure 8 (commit-old-term) and of a double vote (vote-twice) in
``campaign/sim/scenarios.py`` depend on these options doing exactly what they name.
"""

from __future__ import annotations

import random

import pytest

from campaign.sim.nemesis import (
    FaultStep,
    NemesisSpecError,
    _overlapping,
    explicit_grudges,
    parse_faults,
    partition_grudges,
    pick_targets,
    validate_schedule,
)

NODES = ["n1", "n2", "n3", "n4"]


def test_named_groups_cut_every_link_between_groups_and_leave_the_rest_together() -> None:
    grudges = explicit_grudges("n1|n2+n3", NODES)
    assert grudges == {
        "n1": {"n2", "n3", "n4"},
        "n2": {"n1", "n4"},
        "n3": {"n1", "n4"},
        "n4": {"n1", "n2", "n3"},
    }


def test_directed_cuts_drop_only_the_named_direction() -> None:
    assert explicit_grudges("n3>n1+n2|n2>n3", NODES) == {"n1": {"n3"}, "n2": {"n3"}, "n3": {"n2"}}
    # Through the shape dispatcher too, without drawing from the rng.
    rng = random.Random(1)
    state = rng.getstate()
    assert partition_grudges("n3>n1", NODES, rng, leader="n2") == {"n1": {"n3"}}
    assert rng.getstate() == state


def test_named_targets_are_exactly_the_named_nodes() -> None:
    assert pick_targets("n2+n4", NODES, random.Random(1), leader="n1") == ["n2", "n4"]


def test_parse_accepts_named_options_and_rejects_malformed_ones() -> None:
    assert parse_faults("kill:n2,partition:n1|n2+n3,pause:n1") == (
        "kill:n2",
        "partition:n1|n2+n3",
        "pause:n1",
    )
    for bad in ("kill:n2|n3", "partition:n1", "partition:n1>", "delay:n1", "kill:node2"):
        with pytest.raises(NemesisSpecError):
            parse_faults(bad)


def test_an_unknown_node_is_a_clear_error() -> None:
    with pytest.raises(NemesisSpecError, match="unknown node"):
        explicit_grudges("n1|n9", NODES)
    with pytest.raises(NemesisSpecError, match="unknown node"):
        pick_targets("n9", NODES, random.Random(1), leader=None)


def test_overlap_detection() -> None:
    apart = [FaultStep("partition", "one", 1.0, 1.0), FaultStep("kill", "one", 2.5, 1.0)]
    assert not _overlapping(apart)
    assert _overlapping(
        [FaultStep("partition", "one", 1.0, 2.0), FaultStep("kill", "n1", 2.5, 1.0)]
    )
    assert _overlapping(list(reversed(apart)))  # out of order: run on separate timelines


def test_a_bad_explicit_schedule_step_is_named_in_the_error() -> None:
    good = [{"fault": "partition", "option": "n1|n2+n3", "start": 1.0, "duration": 0.5}]
    assert validate_schedule(good, 3) == [FaultStep("partition", "n1|n2+n3", 1.0, 0.5)]
    for bad in (
        {"fault": "kill", "option": "n4", "start": 1.0, "duration": 1.0},
        {"fault": "kill", "opt": "n1", "start": 1.0, "duration": 1.0},
        {"fault": "pause", "option": "n1", "start": -1.0, "duration": 1.0},
        {"fault": "flood", "option": "one", "start": 1.0, "duration": 1.0},
    ):
        with pytest.raises(NemesisSpecError, match="schedule step 2"):
            validate_schedule([*good, bad], 3)
