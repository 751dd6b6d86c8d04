"""The end of a run in words: what `raftlab test` and `raftlab sim` print after the verdict.

The words themselves come from `checker.summary` (shared with `raftlab check`); this reads
them off a stored run folder, so the terminal, junit.xml and the report say the same.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from campaign.results import RESULTS_FILE, ResultsError, read_history_file, read_json


def run_anomaly_lines(run_dir: Path, *, report: str | None = None) -> list[str]:
    """The anomalies of a stored run in a few lines (empty when it is valid)."""
    from checker.summary import summary_lines

    try:
        results = read_json(Path(run_dir) / RESULTS_FILE)
    except ResultsError:
        return []  # nothing judged, nothing to name (the caller prints the verdict)
    if not isinstance(results, dict):
        return []
    try:
        ops = read_history_file(run_dir)
    except ResultsError:
        ops = None  # the checkers' own words still name the culprit
    return summary_lines(results, ops, report=report)


def echo_anomalies(run_dir: Path, echo: Callable[[str], object] = print) -> None:
    """Print a run's anomalies, one per line (nothing for a valid run)."""
    for line in run_anomaly_lines(run_dir):
        echo(line)
