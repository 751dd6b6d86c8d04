"""The state-machine seam: what the drivers apply committed entries to."""

from __future__ import annotations

from typing import Any, Protocol


class StateMachine(Protocol):
    def apply(self, index: int, data: bytes) -> Any:
        """Apply one committed command entry; return the reply for the client that sent it.

        Must be deterministic: every replica applies the same entries in the same order
        and must reach the same state and the same replies.
        """
        ...

    def query(self, request: dict[str, Any]) -> Any:
        """Answer a read-only request from local state (after ReadIndex says it may)."""
        ...

    def snapshot(self) -> bytes:
        """The whole state (sessions included), as bytes."""
        ...

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a snapshot's."""
        ...
