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

import trio._core._run as trio_run_internals


def trio_internals_present() -> bool:
    """The canary: the two names we depend on still exist in trio."""
    return hasattr(trio_run_internals, "_ALLOW_DETERMINISTIC_SCHEDULING") and hasattr(
        trio_run_internals, "_r"
    )


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
