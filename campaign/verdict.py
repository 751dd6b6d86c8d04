"""From checker results to a verdict, a results.json document and an exit code (conventions §2)."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_UNKNOWN = 2
EXIT_BAD_ARGUMENTS = 254
EXIT_INTERNAL_ERROR = 255

UNKNOWN = "unknown"


def normalize_valid(value: Any) -> bool | str:
    """`True`, `False` or ``"unknown"``; anything else (a missing key, None) is unknown."""
    if value is True or value is False:
        return value
    return UNKNOWN


def merge_valid(values: list[Any]) -> bool | str:
    """The worst of several verdicts: False < "unknown" < True (checker.results.merge)."""
    from checker.results import merge

    return normalize_valid(merge([{"valid": normalize_valid(v)} for v in values]).get("valid"))


def exit_code(valid: Any) -> int:
    valid = normalize_valid(valid)
    if valid is True:
        return EXIT_VALID
    if valid is False:
        return EXIT_INVALID
    return EXIT_UNKNOWN


def run_checker(name: str, check: Callable[[], Mapping[str, Any]]) -> dict[str, Any]:
    """Run one checker; one that raises becomes "unknown" with its error recorded (§2)."""
    started = time.perf_counter()
    try:
        result = dict(check())
    except Exception as error:  # a checker bug must not lose the run's other results
        result = {
            "valid": UNKNOWN,
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(limit=8),
        }
    result["valid"] = normalize_valid(result.get("valid"))
    result.setdefault("checker", name)
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def results_document(
    checkers: Mapping[str, Mapping[str, Any]],
    *,
    counts: Mapping[str, Mapping[str, int]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """results.json: the merged verdict first, then each checker's result.

    With no checker at all the verdict is "unknown": nothing was judged, so nothing is valid.
    """
    checker_results = {name: dict(result) for name, result in checkers.items()}
    if checker_results:
        valid = merge_valid([result.get("valid") for result in checker_results.values()])
    else:
        valid = UNKNOWN
    document: dict[str, Any] = {"valid": valid, "checkers": checker_results}
    if counts is not None:
        document["counts"] = {f: dict(row) for f, row in counts.items()}
    if extra:
        document.update(extra)
    return document
