"""`raftlab analyze DIR`: re-check a stored run and rewrite its verdict files.

Reads ``campaign.json`` (which workload, which checker options) and ``history.jsonl``, runs
the workload's checkers again (keeping, marked ``carried_over``, the verdicts of checkers
that need more than the history, such as the simulation's), and rewrites ``results.json``, ``junit.xml`` and
``report.html`` (and ``history.edn`` / ``history.txt`` if a crash left them unwritten).
The exit code is the verdict's (conventions §2). Useful after a checker improves, after a
run was cut short, or with a longer ``--check-time-limit`` for an "unknown" verdict.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from campaign.results import (
    HISTORY_EDN,
    HISTORY_TXT,
    LATEST,
    REPORT_FILE,
    ResultsError,
    RunData,
    count_completions,
    read_run_folder,
    write_history_files,
    write_verdict_files,
)
from campaign.verdict import exit_code, results_document


def resolve_run_dir(path: Path) -> Path:
    """A run folder, or a folder with a ``latest`` link (``results/`` or ``results/<name>/``)."""
    path = Path(path)
    if not path.exists():
        raise click.UsageError(f"{path}: no such directory")
    if (path / "campaign.json").is_file() or (path / "history.jsonl").is_file():
        return path
    if (path / LATEST).exists():
        return resolve_run_dir((path / LATEST).resolve())
    raise click.UsageError(
        f"{path}: not a run folder (no campaign.json) and no '{LATEST}' link in it"
    )


def reanalyze(run_dir: Path, *, check_time_limit: float | None = None) -> RunData:
    """Re-check the run in `run_dir` and rewrite its verdict files; return what was written."""
    from campaign.checking import check_history

    data = read_run_folder(run_dir)
    config = data.config.get("config", {}) if isinstance(data.config, dict) else {}
    if not isinstance(config, dict):
        raise ResultsError(f"{run_dir}/campaign.json: 'config' is not an object")
    if check_time_limit is not None:
        config = {**config, "check_time_limit": check_time_limit}
    checkers = check_history(config, data.ops)
    previous = data.results if isinstance(data.results, dict) else {}
    # Checkers that judge what only the run saw (the simulation's election safety, node
    # crashes…) cannot be re-run from the history: keep their verdicts, marked as such,
    # so re-analysing never turns an invalid run valid by forgetting.
    previous_checkers = previous.get("checkers")
    if isinstance(previous_checkers, dict):
        for name, result in previous_checkers.items():
            if name not in checkers and isinstance(result, dict) and name != "run":
                checkers[name] = {**result, "carried_over": True}
    extra = {
        key: value
        for key, value in previous.items()
        if key not in ("valid", "checkers", "counts", "reanalyzed")
    }
    extra["reanalyzed"] = True
    data.results = results_document(checkers, counts=count_completions(data.ops), extra=extra)
    if not (run_dir / HISTORY_EDN).exists() or not (run_dir / HISTORY_TXT).exists():
        write_history_files(run_dir, data.ops, include_jsonl=False)
    write_verdict_files(run_dir, data)
    return data


@click.command("analyze")
@click.argument(
    "run_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("results") / LATEST
)
@click.option(
    "--check-time-limit",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Seconds the linearizability search may take before it says 'unknown' (default: the run's).",
)
def analyze_command(run_dir: Path, check_time_limit: float | None) -> None:
    """Re-check a stored run (default: results/latest) and rewrite its results and report."""
    folder = resolve_run_dir(run_dir)
    try:
        data = reanalyze(folder, check_time_limit=check_time_limit)
    except ResultsError as error:
        raise click.UsageError(str(error)) from None
    results = data.results or {}
    valid = results.get("valid")
    for name, result in (results.get("checkers") or {}).items():
        click.echo(f"  {name}: {result.get('valid')}")
    click.echo(f"{folder}: valid={valid}")
    from campaign.anomaly import echo_anomalies  # the anomaly in words, as `raftlab test` ends

    echo_anomalies(folder, click.echo)
    click.echo(f"report: {folder / REPORT_FILE}")
    sys.exit(exit_code(valid))
