"""Shrinking a failing simulation to a minimal fault schedule, with Hypothesis.

A failing run's schedule is a list of fault steps. Hypothesis searches the sub-schedules
(``st.lists`` of step indices, unique and sorted) for one whose run still fails, then
shrinks it as it shrinks any list: fewer steps first, earlier steps preferred. The
predicate is a whole simulation, which is deterministic for a given seed and schedule,
so what Hypothesis sees is a pure function and its answer replays exactly: the result
carries the replay command.

The run's seed stays fixed (it also drives the network and the workload); what shrinks
is the nemesis. ``derandomize=True`` makes the search itself reproducible.

``max_runs`` bounds the simulations (Hypothesis's shrink phase is not bounded by
``max_examples``): past it, every untried sub-schedule counts as passing, so the search
stops improving. What is returned is still a schedule whose run failed (every answer
comes from a real, deterministic run), only perhaps not the smallest one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from campaign.sim.nemesis import FaultStep
from campaign.sim.run import SimConfig, run_simulation, schedule_for


@dataclass(slots=True)
class ShrinkResult:
    original: list[FaultStep]
    minimal: list[FaultStep] | None  # None: the original run did not fail
    runs: int
    config: SimConfig | None  # the minimal run's configuration (schedule explicit)


def with_schedule(config: SimConfig, steps: list[FaultStep]) -> SimConfig:
    return replace(
        config,
        schedule=[step.to_dict() for step in steps],
        workload_options=dict(config.workload_options),
        bugs=list(config.bugs),
    )


def shrink(
    config: SimConfig,
    *,
    max_examples: int = 60,
    max_runs: int | None = None,
    fails: Callable[[SimConfig], bool] | None = None,
    on_run: Callable[[list[FaultStep], bool], Any] | None = None,
) -> ShrinkResult:
    """The smallest sub-schedule of ``config``'s schedule whose run is still invalid."""
    original = schedule_for(config)
    is_failing = fails or (lambda cfg: run_simulation(cfg).valid is False)
    runs = 0
    cache: dict[tuple[int, ...], bool] = {}

    def still_fails(indices: list[int]) -> bool:
        nonlocal runs
        key = tuple(indices)
        if key not in cache:
            if max_runs is not None and runs >= max_runs:
                return False  # out of budget: not tried, so not claimed to fail
            runs += 1
            steps = [original[i] for i in indices]
            cache[key] = is_failing(with_schedule(config, steps))
            if on_run is not None:
                on_run(steps, cache[key])
        return cache[key]

    everything = list(range(len(original)))
    if not still_fails(everything):
        return ShrinkResult(original, None, runs, None)
    sub_schedules = st.lists(
        st.sampled_from(everything) if everything else st.nothing(),
        unique=True,
        max_size=len(everything),
    ).map(sorted)
    try:
        minimal_indices = find(
            sub_schedules,
            still_fails,
            settings=settings(
                max_examples=max_examples,
                database=None,
                deadline=None,
                derandomize=True,
                phases=[Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck),
            ),
        )
    except NoSuchExample:
        minimal_indices = everything  # nothing smaller found: the whole schedule is minimal
    minimal = [original[i] for i in minimal_indices]
    return ShrinkResult(original, minimal, runs, with_schedule(config, minimal))
