"""Knossos' ``mutex``: ``acquire`` needs it free, ``release`` needs it held."""

from __future__ import annotations

from typing import Any

from checker.models.base import Model
from checker.op import Op


class MutexModel(Model):
    name = "mutex"
    functions = frozenset({"acquire", "release"})

    def init(self, value: Any = None) -> bool:
        return bool(value)  # nil or false: free; true: held

    def step(self, state: bool, op: Op) -> bool | None:
        if op.f == "acquire":
            return None if state else True
        return False if state else None

    def describe(self, state: bool) -> str:
        return "held" if state else "free"

    def blind(self, op: Op) -> bool:
        return False  # acquire and release both depend on the state (they can fail)
