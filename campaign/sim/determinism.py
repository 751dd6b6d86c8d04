"""Making one ``trio.run`` replay exactly from a seed.

Trio shuffles each batch of runnable tasks with a module-level ``random.Random``; unless
``_ALLOW_DETERMINISTIC_SCHEDULING`` is set it also reverses batches at random. Hypothesis
and pytest-trio flip the same two switches to make examples reproducible. We do the same,
so the simulation's interleavings are a function of the seed. Those are private names of
trio 0.32 (pinned in pyproject.toml); ``tests/sim/test_determinism.py`` is the canary that
fails if a trio upgrade renames them.

Python's string hashing is salted per process (PYTHONHASHSEED); any iteration over a set
of strings would then differ between two processes given the same seed. The simulation's
command re-executes itself with ``PYTHONHASHSEED=0`` (see ``ensure_fixed_hash_seed``) so
that a replay command run in a fresh process reproduces the history byte for byte.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import trio._core._run as trio_run_internals

HASH_SEED = "0"


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


def ensure_fixed_hash_seed(argv: list[str] | None = None) -> None:
    """Re-execute this process with PYTHONHASHSEED fixed, unless it already is."""
    if os.environ.get("PYTHONHASHSEED") == HASH_SEED:
        return
    env = dict(os.environ, PYTHONHASHSEED=HASH_SEED)
    args = [sys.executable, "-m", "campaign", *(sys.argv[1:] if argv is None else argv)]
    os.execve(sys.executable, args, env)
