"""Errors the core raises to its driver."""

from __future__ import annotations


class NotLeader(Exception):
    """A proposal or read reached a node that is not the leader.

    ``leader_hint`` is the leader this node last heard of in its current term, or None:
    the client should retry there (a definite failure: nothing was appended).
    """

    def __init__(self, leader_hint: str | None) -> None:
        super().__init__(
            f"not the leader (leader hint: {leader_hint})" if leader_hint else "not the leader"
        )
        self.leader_hint = leader_hint


class InvariantViolation(AssertionError):
    """A Raft safety invariant would break (e.g. commit regressing, truncating committed
    entries). Raised loudly, never silenced: it means a bug in the core or in what the
    driver fed it. With a teaching bug switch on (``RaftConfig.bugs``) the checks that
    the bug is meant to break are relaxed, so the harness sees the damage instead."""
