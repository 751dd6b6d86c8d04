"""Checker results: the tri-state verdict and its composition (conventions §2).

A result is a map with at least ``"valid"``: ``True``, ``False`` or ``"unknown"``.
Composing results takes the worst, ``False`` < ``"unknown"`` < ``True`` (Jepsen's
``merge-valid``): one invalid part makes the whole invalid, and a whole made of valid
parts and undecided ones is undecided, never valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

UNKNOWN = "unknown"

_RANK: dict[Any, int] = {False: 0, UNKNOWN: 1, True: 2}


def normalize(valid: Any) -> bool | str:
    """``True``, ``False`` or ``"unknown"``; anything else (None, a typo) is unknown."""
    if valid is True or valid is False:
        return valid
    return UNKNOWN


def worst(verdicts: Iterable[Any]) -> bool | str:
    """The worst of several verdicts; ``"unknown"`` when there are none (nothing was judged)."""
    result: bool | str | None = None
    for verdict in verdicts:
        verdict = normalize(verdict)
        if result is None or _RANK[verdict] < _RANK[result]:
            result = verdict
        if result is False:
            break
    return UNKNOWN if result is None else result


def merge(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One result from several: ``valid`` is the worst, the parts are kept under ``results``.

    An empty list merges to ``"unknown"``: nothing was judged, so nothing is known valid.
    """
    parts = [dict(result) for result in results]
    return {"valid": worst(result.get("valid") for result in parts), "results": parts}


def unknown(error: str, **details: Any) -> dict[str, Any]:
    """An undecided result naming why (a budget ran out, a checker raised)."""
    return {"valid": UNKNOWN, "error": error, **details}


def is_valid(result: Mapping[str, Any]) -> bool:
    return result.get("valid") is True


def is_invalid(result: Mapping[str, Any]) -> bool:
    return result.get("valid") is False


def is_unknown(result: Mapping[str, Any]) -> bool:
    return normalize(result.get("valid")) == UNKNOWN
