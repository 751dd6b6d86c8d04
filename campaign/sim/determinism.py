"""Making one ``trio.run`` replay exactly from a seed.

Trio shuffles each batch of runnable tasks with a module-level ``random.Random``; unless
``_ALLOW_DETERMINISTIC_SCHEDULING`` is set it also reverses batches at random. Hypothesis
and pytest-trio flip the same two switches to make examples reproducible. We do the same,
so the simulation's interleavings are a function of the seed. Those are private names of
trio 0.32 (pinned in pyproject.toml); ``tests/sim/test_determinism.py`` is the canary that
fails if a trio upgrade renames them.

Python salts string hashes per process; nothing in the simulation's path may depend on
the iteration order of a set of strings. ``tests/sim`` runs the same seed in two processes
with different PYTHONHASHSEED values and compares the histories.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio
import trio._core._run as trio_run_internals


def trio_internals_present() -> bool:
    """The canary: the two names we depend on still exist in trio."""
    return hasattr(trio_run_internals, "_ALLOW_DETERMINISTIC_SCHEDULING") and hasattr(
        trio_run_internals, "_r"
    )


def next_deadline() -> float:
    """The earliest Trio deadline of the current run (``inf`` if none).

    ``trio.lowlevel.current_statistics().seconds_to_next_deadline`` says the same, but
    builds a statistics object (with the I/O manager's) each time: the simulation's
    network asks at every idle point, and that was 5% of a run. The private path is
    trio 0.32's (pinned); the canary test checks it, and the public one is the fallback.
    """
    runner = getattr(trio_run_internals.GLOBAL_RUN_CONTEXT, "runner", None)
    deadlines = getattr(runner, "deadlines", None)
    if deadlines is not None and hasattr(deadlines, "next_deadline"):
        return float(deadlines.next_deadline())
    statistics = trio.lowlevel.current_statistics()
    return trio.current_time() + statistics.seconds_to_next_deadline


@contextmanager
def deterministic_scheduling(seed: int) -> Iterator[None]:
    """Within this block, trio's scheduler draws its choices from ``seed``."""
    if not trio_internals_present():
        raise RuntimeError(
            "trio's deterministic-scheduling hooks (_ALLOW_DETERMINISTIC_SCHEDULING, _r) "
            "are gone: the simulation cannot be deterministic with this trio version"
        )
    previous_flag = trio_run_internals._ALLOW_DETERMINISTIC_SCHEDULING
    previous_state = trio_run_internals._r.getstate()
    trio_run_internals._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    trio_run_internals._r.seed(seed)
    try:
        yield
    finally:
        trio_run_internals._ALLOW_DETERMINISTIC_SCHEDULING = previous_flag  # type: ignore[misc]
        trio_run_internals._r.setstate(previous_state)
