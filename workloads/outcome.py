"""How the result of a client call becomes an op completion: ``ok``, ``fail`` or ``info``.

Conventions §3 and Jepsen's semantics: ``ok`` took effect, ``fail`` certainly did not,
``info`` may or may not have. Getting this wrong is not cosmetic: a ``fail`` recorded for
a write that did happen makes the checker reject a correct system (or, worse, hides a
lost write), so every doubt resolves to ``info``.

Decisions (documented for users coming from Jepsen):
- A client error is definite only when the client says so (``definite=True``) *and* its
  code does not by its nature mean "outcome unknown" (``timeout``, ``node_crashed``,
  ``outcome_unknown``: those are ``info`` whatever the flag says). ``connection_lost``
  follows the flag: raftnode.client marks it definite only when the request was never
  sent. An unknown code without a definite flag is indefinite. ``info`` is always safe
  for a write, ``fail`` is not.
- Reads (``get``, ``mget``) record indefinite errors as ``fail``, as Jepsen's clients do:
  a read changes nothing, so dropping it from the history is sound, and the process need
  not be retired. The error code is kept on the op.
- An exception that is not a client error (a bug in a client, an OS error the client did
  not wrap) becomes ``info`` with ``error = "exception:<TypeName>"``; a cancelled op
  (end of the run, Ctrl-C) becomes ``info`` with ``error = "cancelled"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# conventions §3 / ARCHITECTURE.md "Wire": which codes say the operation did not happen
# (``unavailable``: no node could be reached, nothing was sent) and which say it may have
# (``outcome_unknown``: a write that may have reached a leader before its retries ran out).
# One table for the client and the workloads, so the two can never disagree.
from raftnode.client import DEFINITE_CODES, INDEFINITE_CODES
from workloads.client import ClientErrorLike

__all__ = ["DEFINITE_CODES", "INDEFINITE_CODES", "ALWAYS_INDEFINITE_CODES"]

# Codes that mean "the outcome is unknown" whatever flag comes with them.
ALWAYS_INDEFINITE_CODES: frozenset[str] = INDEFINITE_CODES - {"connection_lost"}

OK = "ok"
FAIL = "fail"
INFO = "info"

CANCELLED = "cancelled"


@dataclass(slots=True, frozen=True)
class Outcome:
    """The completion of one op, before the recorder stamps index and time."""

    type: str  # ok / fail / info
    value: Any = None
    error: Any = None
    node: str | None = None


def is_client_error(exc: BaseException) -> bool:
    return isinstance(exc, ClientErrorLike) and isinstance(getattr(exc, "code", None), str)


def error_is_definite(exc: BaseException) -> bool:
    """True only when the client vouches that the op did not happen (see module doc)."""
    if not is_client_error(exc):
        return False
    code = exc.code  # type: ignore[attr-defined]
    return getattr(exc, "definite", False) is True and code not in ALWAYS_INDEFINITE_CODES


def outcome_of_error(exc: BaseException, *, read: bool, value: Any = None) -> Outcome:
    """Map an exception raised by a client call to ``fail`` or ``info``.

    ``value`` is kept on the completion (the invoke's value, as Jepsen keeps it on
    ``fail`` and ``info``) so that a keyed op still names its key.
    """
    if is_client_error(exc):
        code: str = exc.code  # type: ignore[attr-defined]
        node = getattr(exc, "node", None)  # raftnode.client names the node that answered
        node = node if isinstance(node, str) else None
        if error_is_definite(exc) or read:
            return Outcome(FAIL, value, code, node)
        return Outcome(INFO, value, code, node)
    # Not a client error: we cannot know whether the request left; a read still may fail.
    reason = f"exception:{type(exc).__name__}"
    return Outcome(FAIL if read else INFO, value, reason)
