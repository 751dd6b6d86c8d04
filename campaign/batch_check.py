"""``raftlab check FILE... --executor local|dask|dask://HOST:PORT --jobs N``: batch checks
on a process pool or on Dask, one task per file.

The checker imports nothing from the project's other packages, so the executors
(`campaign.sweep`) wrap its per-file step from here: each task is
`checker.batch.check_task` on one file, and its one-line summary and exit code come back
as plain data. The lines are printed in the order the files were given, each as soon as
every file before it is done, so the output is the same whichever executor ran the
checks (and the same as ``raftlab check FILE...`` in one process, timings aside); the
exit code is the worst file's (254 bad input, else 1 invalid, else 2 unknown, else 0).

Files are read where the worker runs, by absolute path (they are not shipped): a pool or
a LocalCluster shares this machine's files; the workers of a ``dask://`` scheduler must
see the same paths (a shared file system, or the same copy at the same place). Before
anything is submitted to Dask every worker is asked whether it sees each file with the
size this machine sees, and the batch is refused (exit 254) when one does not: a worker
reading another file under the same name would give its verdict for the wrong history.

`campaign.cli` routes ``raftlab check`` here only when ``--executor`` or ``--jobs`` is
given (or ``--help``, to list them); without them ``raftlab check`` is the checker's own
command, and neither this module, `campaign.sweep` nor Dask is imported.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from checker.batch import check_task, worst_code
from checker.cli import EXIT_BAD_INPUT, _parse_init
from checker.cli import check_command as checker_check_command

EXIT_INTERRUPTED = 130
EXIT_INTERNAL_ERROR = 255

# The checker's options a batch task carries (command parameter -> check_file keyword).
PASSED_THROUGH = {
    "model_name": "model",
    "init_text": "init",
    "format_name": "format",
    "time_limit": "time_limit",
    "nil_read": "nil_read",
}


class BadBatch(click.ClickException):
    """A batch that cannot run as asked (exit 254, the message only)."""

    exit_code = EXIT_BAD_INPUT

    def show(self, file: Any = None) -> None:
        click.echo(f"raftlab check: {self.format_message()}", err=True)


# --- the batch ---------------------------------------------------------------------------


@dataclass(slots=True)
class BatchCheckResult:
    total: int
    summaries: list[dict[str, Any]] = field(default_factory=list)  # in the files' order
    interrupted: bool = False
    wall_seconds: float = 0.0
    ready_seconds: float = 0.0  # of wall_seconds: until the workers were up (and checked)
    workers: int = 1

    @property
    def code(self) -> int:
        return worst_code(summary["code"] for summary in self.summaries)

    def summary_line(self) -> str:
        verdicts = [summary["valid"] for summary in self.summaries]
        bad = sum(summary["code"] == EXIT_BAD_INPUT for summary in self.summaries)
        unknown = len(verdicts) - verdicts.count(True) - verdicts.count(False) - bad
        return (
            f"{len(self.summaries)} of {self.total} files: {verdicts.count(True)} valid, "
            f"{verdicts.count(False)} invalid, {unknown} unknown, {bad} bad input"
        )


def make_tasks(files: Sequence[str | Path], **options: Any) -> list[dict[str, Any]]:
    """One task per file: its absolute path (workers may not share our working directory),
    the name to print (as given), and `checker.batch.check_file`'s keyword options."""
    return [
        {"path": str(Path(given).absolute()), "display": str(given), **options}
        for given in files
    ]


def file_views(paths: Sequence[str]) -> list[int | None]:
    """What this process sees at each path: the size of the history it would read, or
    None when there is none (run on every Dask worker before a batch is submitted)."""
    views: list[int | None] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():  # a run folder: the history `checker.cli._history_path` reads
            path = next(
                (path / n for n in ("history.jsonl", "history.edn") if (path / n).is_file()),
                path,
            )
        try:
            views.append(path.stat().st_size if path.is_file() else None)
        except OSError:
            views.append(None)
    return views


def refuse_unseen_files(client: Any, paths: Sequence[str]) -> None:
    """BadBatch unless every Dask worker sees every file as this machine does."""
    ours = file_views(paths)
    for worker, theirs in client.run(file_views, list(paths)).items():
        for path, mine, seen in zip(paths, ours, theirs, strict=True):
            if mine != seen:
                def describe(size: int | None) -> str:
                    return "no such file" if size is None else f"{size} bytes"

                raise BadBatch(
                    f"Dask worker {worker} does not see {path} as {socket.gethostname()} "
                    f"does ({describe(seen)} there, {describe(mine)} here): files are read "
                    "where the workers run, so they must see the same paths (a shared file "
                    "system)"
                )


def run_batch_check(
    tasks: Sequence[dict[str, Any]],
    *,
    executor: Any,
    jobs: int,
    echo: Callable[[str], None] = print,
    progress: bool = True,
    dashboard: str | None = None,
) -> BatchCheckResult:
    """Check every task's file on `executor` (an `ExecutorSpec`); echo the lines in the
    tasks' order. Ctrl-C cancels what has not finished and returns the files done so far
    with ``interrupted=True``. SweepError when the executor cannot run the batch."""
    from campaign.sweep import DaskExecutor, _progress, open_executor, sigint_deferred

    result = BatchCheckResult(total=len(tasks))
    by_index: dict[int, dict[str, Any]] = {}
    next_line = 0  # the first file whose line is not printed yet
    started = time.perf_counter()
    with open_executor(executor, jobs, dashboard=dashboard) as pool:
        result.workers = pool.workers
        if isinstance(pool, DaskExecutor):
            refuse_unseen_files(pool.client, [task["path"] for task in tasks])
        result.ready_seconds = time.perf_counter() - started
        bar = _progress(len(tasks), progress, unit="files", title="check")
        try:
            if bar is not None:
                bar.start()
                task_id = bar.add_task("check", total=len(tasks), failing=0)
            failing = 0
            for index, summary in pool.map_unordered(check_task, tasks):
                with sigint_deferred():  # each line counted once and printed once
                    by_index[index] = summary
                    failing += summary["code"] != 0
                    while next_line in by_index:
                        echo(by_index[next_line]["line"])
                        next_line += 1
                    if bar is not None:
                        bar.update(task_id, advance=1, failing=failing)
        except KeyboardInterrupt:
            result.interrupted = True
            pool.cancel()
        finally:
            if bar is not None:
                bar.stop()
    # Interrupted: the files done after a gap are printed too (still in order).
    for index in sorted(i for i in by_index if i >= next_line):
        echo(by_index[index]["line"])
    result.summaries = [by_index[index] for index in sorted(by_index)]
    result.wall_seconds = time.perf_counter() - started
    return result


# --- the command -------------------------------------------------------------------------

EXECUTOR_OPTIONS: list[click.Parameter] = [
    click.Option(
        ["--executor"],
        default="local",
        show_default=True,
        metavar="local|dask|dask://HOST:PORT",
        help="Check the files as tasks, one per file: local (--jobs processes; in this "
        "process for --jobs 1), dask (a Dask LocalCluster of --jobs workers) or "
        "dask://HOST:PORT (an existing scheduler; its workers read the files at the same "
        "paths). Same lines and exit code on each.",
    ),
    click.Option(
        ["--jobs"],
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Workers for --executor (--jobs alone means --executor local).",
    ),
]

HELP_SUFFIX = """

With --executor or --jobs every FILE gets the one-line summary of a batch check (even a
single FILE), printed in the order given; the exit code is the worst, as above. Files are
read where the workers run: a dask:// scheduler's workers must see the same paths."""


@click.pass_context
def _batch_check(ctx: click.Context, **params: Any) -> None:
    from campaign.sweep import SweepError, parse_executor

    for param in ctx.command.params:  # an option of the checker a batch does not carry
        if param.name in PASSED_THROUGH or param.name in ("history_files", "executor", "jobs"):
            continue
        given = ctx.get_parameter_source(param.name) not in (ParameterSource.DEFAULT, None)
        if given and params[param.name] != param.get_default(ctx):
            # --out, --checker elle-*, --consistency-model: one file's outputs, in process
            raise click.UsageError(f"{param.opts[0]} takes one FILE and no --executor or --jobs")
    try:
        spec = parse_executor(params["executor"])
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--executor") from None
    _parse_init(params["init_text"])  # a bad --init: exit 254 before any task runs
    options = {keyword: params[name] for name, keyword in PASSED_THROUGH.items()}
    tasks = make_tasks(params["history_files"], **options)
    try:
        result = run_batch_check(tasks, executor=spec, jobs=params["jobs"], echo=click.echo)
    except SweepError as error:
        click.echo(f"raftlab check: error: {error}", err=True)
        sys.exit(EXIT_INTERNAL_ERROR)
    if result.interrupted:
        click.echo(f"raftlab check: interrupted: {result.summary_line()}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(result.code)


batch_check_command = click.Command(
    name="check",
    params=[*checker_check_command.params, *EXECUTOR_OPTIONS],
    callback=_batch_check,
    help=(checker_check_command.help or "") + HELP_SUFFIX,
    short_help=checker_check_command.short_help,
)

