"""What every workload offers the runner, the campaign and the simulation.

A workload is one file holding a class with this shape and one registration line in
`workloads/__init__.py`:

- ``name``: the ``--workload`` name;
- `next_op(rng)`: the next op to invoke, from the runner's seeded `random.Random` (never
  the global one, never the clock: the simulation replays a seed byte for byte);
- `invoke(client, request)`: one client call, mapped to an `Outcome` (conventions §3,
  through `workloads.outcome`); client errors may propagate, the runner maps them;
- `is_read(f)`: reads record indefinite errors as ``fail`` (see `workloads.outcome`);
- `setup(client)`: state the run needs before the first op (bank accounts), retried by
  the runner until it succeeds;
- `final_ops()`: the reads done after healing, each retried until it gets an answer;
- `check(history)`: the workload's checkers: ``{"valid": worst, "checkers": {name:
  result}}``, every result with a tri-state ``valid`` (conventions §2);
- `config()`: the options, written into campaign.json so `raftlab analyze` can rebuild
  the same workload and re-check a stored history.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

from checker.op import Op
from checker.results import worst
from workloads.client import KVClient
from workloads.outcome import Outcome


@dataclass(slots=True, frozen=True)
class OpRequest:
    """An op the generator wants invoked: its function and its invoke value."""

    f: str
    value: Any = None


class KeyRotation:
    """Jepsen's independent keys: ``active`` keys are worked on at once; a key retires
    after ``per_key`` ops and a fresh one takes its slot, so each key's history stays
    small enough for the linearizability search."""

    __slots__ = ("slots", "counts", "next_key", "per_key")

    def __init__(self, active: int, per_key: int) -> None:
        self.slots = list(range(active))
        self.counts: dict[int, int] = {}  # key -> ops drawn on it
        self.next_key = active
        self.per_key = per_key

    def pick(self, rng: random.Random) -> int:
        """The key of the next op (one draw from ``rng``)."""
        slot = rng.randrange(len(self.slots))
        key = self.slots[slot]
        used = self.counts.get(key, 0) + 1
        self.counts[key] = used
        if used >= self.per_key:
            self.slots[slot] = self.next_key
            self.next_key += 1
        return key


class Workload(Protocol):
    name: str

    def next_op(self, rng: random.Random) -> OpRequest: ...

    async def invoke(self, client: KVClient, request: OpRequest) -> Outcome: ...

    def is_read(self, f: str) -> bool: ...

    async def setup(self, client: KVClient) -> None: ...

    def final_ops(self) -> list[OpRequest]: ...

    def check(self, history: list[Op], *, time_limit: float | None = None) -> dict[str, Any]: ...

    def config(self) -> dict[str, Any]: ...


def client_ops(history: list[Op]) -> list[Op]:
    """The ops of client processes (nemesis ops removed), in history order."""
    return [op for op in history if isinstance(op.process, int)]


def checker_failed(name: str, error: BaseException) -> dict[str, Any]:
    """Conventions §2: a checker that raises becomes "unknown" with the error recorded."""
    return {"valid": "unknown", "error": f"{name} checker raised {type(error).__name__}: {error}"}


def combine(checkers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Several checkers' results as one: the worst ``valid`` (False < "unknown" < True)."""
    return {
        "valid": worst(result.get("valid") for result in checkers.values()),
        "checkers": checkers,
    }
