"""Judge a history with its workload's checkers: shared by `raftlab test` and `raftlab analyze`.

The workload is rebuilt from the configuration recorded in campaign.json
(``workload`` and ``workload_options``), so a stored run is re-checked exactly as it was
checked when it ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from campaign.verdict import UNKNOWN, normalize_valid, run_checker
from checker.op import Op


class UnknownWorkloadError(ValueError):
    """campaign.json names a workload this raftlab does not know."""


def workload_names() -> list[str]:
    from workloads import WORKLOADS

    return sorted(WORKLOADS)


def build_workload(config: Mapping[str, Any]) -> Any:
    """The workload of a run, from ``config["workload"]`` and ``config["workload_options"]``."""
    from workloads import WORKLOADS

    name = config.get("workload")
    if name not in WORKLOADS:
        raise UnknownWorkloadError(
            f"unknown workload {name!r}; known: {', '.join(sorted(WORKLOADS))}"
        )
    options = config.get("workload_options") or {}
    if not isinstance(options, Mapping):
        raise UnknownWorkloadError(f"workload_options must be a map, got {options!r}")
    return WORKLOADS[name](**options)


def split_checker_results(
    workload_name: str, result: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """One entry per checker, whichever shape the workload's `check` returned.

    Workloads give ``{"valid": worst, "checkers": {name: result}}`` or
    ``{"valid": worst, name: result, ...}``; a bare result is the workload's one checker.
    """
    if isinstance(result.get("checkers"), Mapping):
        parts = {str(name): dict(part) for name, part in result["checkers"].items()}
    else:
        parts = {
            str(name): dict(part)
            for name, part in result.items()
            if isinstance(part, Mapping) and "valid" in part
        }
    if not parts:
        parts = {workload_name: dict(result)}
    for part in parts.values():
        part["valid"] = normalize_valid(part.get("valid"))
    # A workload whose own verdict is worse than its parts' (it saw something the parts
    # do not say) must not be overruled by them.
    overall = normalize_valid(result.get("valid"))
    worst_part = min((p["valid"] for p in parts.values()), key=_rank)
    if _rank(overall) < _rank(worst_part):
        parts[f"{workload_name}-overall"] = {"valid": overall}
    return parts


def _rank(valid: Any) -> int:
    return {False: 0, UNKNOWN: 1, True: 2}[normalize_valid(valid)]


def check_history(config: Mapping[str, Any], ops: Sequence[Op]) -> dict[str, dict[str, Any]]:
    """Every checker's result for `ops` under the run's configuration (never raises)."""
    try:
        workload = build_workload(config)
    except Exception as error:  # noqa: BLE001 - an unbuildable workload is an unknown verdict
        return {"workload": {"valid": UNKNOWN, "error": f"{type(error).__name__}: {error}"}}
    time_limit = config.get("check_time_limit")
    history = list(ops)
    name = str(config.get("workload"))
    combined = run_checker(name, lambda: workload.check(history, time_limit=time_limit))
    seconds = combined.pop("seconds", None)
    if "error" in combined and combined["valid"] == UNKNOWN and "traceback" in combined:
        return {name: combined}
    parts = split_checker_results(name, combined)
    if seconds is not None and len(parts) == 1:
        next(iter(parts.values())).setdefault("seconds", seconds)
    return parts
