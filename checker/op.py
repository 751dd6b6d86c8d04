"""The operation of a history (conventions §1): Jepsen's map, as a slots dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OP_TYPES = ("invoke", "ok", "fail", "info")
NEMESIS = "nemesis"


@dataclass(slots=True)
class Op:
    index: int
    time: int  # nanoseconds since the run started
    type: str  # one of OP_TYPES
    process: int | str  # an integer for a client, "nemesis" for the nemesis
    f: str
    value: Any = None
    error: Any = None
    node: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys, kept for round trips

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "time": self.time,
            "type": self.type,
            "process": self.process,
            "f": self.f,
            "value": self.value,
        }
        if self.error is not None:
            out["error"] = self.error
        if self.node is not None:
            out["node"] = self.node
        out.update(self.extra)
        return out
