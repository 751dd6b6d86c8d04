"""raftlab as a library: run a simulation or a campaign, or check a history, from Python.

    from raftlab import run_simulation, run_campaign, check_history

    result = run_simulation(seeds="1..5", time=20, nemesis="partition,kill")
    result.valid        # True, False or "unknown" (the worst over the seeds)
    result.anomalies    # one line each: "stale read: process 34 read 804 from key 1 ..."
    result.run_dir      # the results folder of the (first failing) run
    result.exit_code    # what `raftlab sim` would exit with
    result.raise_for_verdict()  # AssertionError with the summary unless valid

The names are imported lazily (PEP 562), so ``import raftlab`` — which the pytest plugin
does in every pytest run — costs nothing until a function is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from raftlab.api import (
        RunResult,
        VerdictError,
        check_history,
        run_campaign,
        run_simulation,
    )

__all__ = ["RunResult", "VerdictError", "check_history", "run_campaign", "run_simulation"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from raftlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'raftlab' has no attribute {name!r}")
