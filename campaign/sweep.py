"""Seed sweeps on local processes or on Dask: one task per seed, its summary back.

``raftlab sim --seeds A..B --executor local|dask|dask://HOST:PORT`` and
``bench/bug_matrix.py --executor`` run their simulations through an `Executor`:

* ``local`` — today's behaviour: in this process when ``--jobs 1``, else a process pool
  of ``--jobs`` workers;
* ``dask`` — a ``distributed.LocalCluster`` on this machine (``--jobs`` worker processes,
  one thread each);
* ``dask://HOST:PORT`` — an existing scheduler (its workers must have raftlab and the same
  trio installed: checked before anything is submitted).

A task is one seed. It returns a plain summary (verdict, failing checkers, anomalies,
replay line, timings) and, for a run that is not valid (or every run with ``--keep-all``),
the files of its results folder **as bytes**: the worker writes the folder in a temporary
directory, reads it back and deletes it, and this process writes the files into the
user's ``results/``. That is the same path for every executor, so a failing seed's folder
lands in ``results/`` whether the worker ran here or on another machine.

Why a re-run is safe: a simulation is a function of its configuration (same seed → same
history bytes, tests/sim), so a seed whose worker was lost is simply run again — by the
Dask scheduler itself (up to its ``allowed-failures``), or here by a fresh process pool.

Why one simulation per process at a time: trio's scheduler draws from a module-level
random generator that `campaign.sim.determinism` seeds for the run; two runs in threads of
one process would share it and lose determinism. Local workers are processes; Dask
workers are started with one thread each; and `run_seed_task` holds a process-wide lock so
a scheduler whose workers have several threads still runs one simulation at a time each.
"""

from __future__ import annotations

import abc
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOCAL = "local"
DASK = "dask"
DASK_PREFIX = "dask://"
MAX_ATTEMPTS = 3  # a seed whose worker is lost this many times fails the sweep (Dask's default)

_SIMULATION_LOCK = threading.Lock()


class SweepError(RuntimeError):
    """The sweep cannot run or cannot finish (bad executor, lost workers, version skew)."""


# --- executors --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExecutorSpec:
    kind: str  # LOCAL or DASK
    address: str | None = None  # tcp://HOST:PORT of an existing scheduler, or None

    def describe(self, jobs: int) -> str:
        if self.kind == LOCAL:
            return "in this process" if jobs <= 1 else f"{jobs} local processes"
        if self.address is None:
            return f"a Dask LocalCluster of {jobs} worker processes"
        return f"the Dask scheduler at {self.address}"


def parse_executor(text: str) -> ExecutorSpec:
    """``local`` | ``dask`` | ``dask://HOST:PORT`` → an ExecutorSpec (ValueError if not)."""
    text = text.strip()
    if text == LOCAL:
        return ExecutorSpec(LOCAL)
    if text == DASK:
        return ExecutorSpec(DASK)
    if text.startswith(DASK_PREFIX):
        host, sep, port = text[len(DASK_PREFIX) :].rpartition(":")
        if sep and host and port.isdigit() and 0 < int(port) < 65536:
            return ExecutorSpec(DASK, f"tcp://{host}:{port}")
    raise ValueError(f"{text!r}: expected local, dask, or dask://HOST:PORT")


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole foreground process group; the parent cancels the sweep and
    # ends its workers, which must not die half-way through a write on their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def sigint_deferred() -> Iterator[None]:
    """Ctrl-C waits until the block is done, then raises KeyboardInterrupt as usual.

    For the bookkeeping of a completed task (record its summary, print its line): an
    interrupt half-way would print a line twice or count a task it never printed. Only
    the main thread can change a signal handler; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


class Executor(abc.ABC):
    """Runs ``fn(item)`` for every item; yields ``(index, result)`` as they complete."""

    workers: int = 1

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abc.abstractmethod
    def map_unordered(
        self, fn: Callable[..., Any], items: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        """``fn(item)`` for every item, yielded as ``(index in items, result)`` in the
        order the tasks complete."""

    # Deliberate no-op defaults (B027): an executor with nothing to cancel or release
    # (the in-process one) inherits them.
    def cancel(self) -> None:  # noqa: B027
        """Drop every task not yet finished (Ctrl-C); `close` follows."""

    def close(self) -> None:  # noqa: B027
        """Release the workers."""


class InProcessExecutor(Executor):
    """``--jobs 1``: one seed after the other in this process (no pool, no pickling)."""

    def map_unordered(
        self, fn: Callable[..., Any], items: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        for index, item in enumerate(items):
            yield index, fn(item)


class LocalPoolExecutor(Executor):
    """A pool of worker processes; a broken pool (a worker killed) is replaced and the
    seeds it had not returned are submitted again, at most MAX_ATTEMPTS times each."""

    def __init__(self, jobs: int) -> None:
        self.workers = jobs
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        self._pool = ProcessPoolExecutor(max_workers=self.workers, initializer=_ignore_sigint)
        return self._pool

    def map_unordered(
        self, fn: Callable[..., Any], items: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        attempts = [0] * len(items)
        todo = list(range(len(items)))
        while todo:
            pool = self._new_pool()
            # At most 2 tasks per worker in flight: a broken pool loses few, and the
            # submissions for 100,000 seeds do not all sit in memory at once.
            pending: dict[Any, int] = {}
            queue = iter(list(todo))
            todo = []

            broken = not self._top_up(pool, fn, items, queue, pending, attempts, todo)
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True
                        todo.append(index)
                        continue
                    yield index, result
                if not broken:
                    broken = not self._top_up(pool, fn, items, queue, pending, attempts, todo)
            pool.shutdown(wait=True)
            self._pool = None
            todo.extend(queue)
            todo.sort()
            lost = [index for index in todo if attempts[index] >= MAX_ATTEMPTS]
            if lost:
                raise SweepError(
                    f"item {lost[0]} lost its worker process {MAX_ATTEMPTS} times; giving up"
                )

    def _top_up(
        self,
        pool: ProcessPoolExecutor,
        fn: Callable[..., Any],
        items: Sequence[Any],
        queue: Iterator[int],
        pending: dict[Any, int],
        attempts: list[int],
        todo: list[int],
    ) -> bool:
        """Keep 2 tasks per worker in flight; False when the pool turned out broken."""
        while len(pending) < 2 * self.workers:
            index = next(queue, None)
            if index is None:
                return True
            attempts[index] += 1
            try:
                pending[pool.submit(fn, items[index])] = index
            except BrokenProcessPool:
                todo.append(index)
                return False
        return True

    def cancel(self) -> None:
        pool = self._pool
        if pool is None:
            return
        pool.shutdown(wait=False, cancel_futures=True)
        # The running seeds are abandoned: end their processes (ours, by pid).
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            if process.is_alive():
                process.kill()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def dask_setup(worker: Any) -> None:
    """Dask's preload hook, run in each LocalCluster worker process: Ctrl-C at the terminal
    reaches the whole process group, and the sweep (not each worker) handles it — it
    cancels the tasks and closes the cluster, which ends the workers."""
    if threading.current_thread() is threading.main_thread():
        _ignore_sigint()


def _worker_versions() -> dict[str, str]:
    import importlib.metadata

    import trio

    try:
        raftlab = importlib.metadata.version("raftlab")
    except importlib.metadata.PackageNotFoundError:
        raftlab = "unknown"
    return {"raftlab": raftlab, "trio": trio.__version__}


def _dashboard_options(dashboard: str | None) -> dict[str, Any]:
    """LocalCluster options for the scheduler's HTTP server.

    ``dashboard_address=None`` alone does not stop the scheduler's HTTP server (it still
    serves its health and metrics routes): it binds the default port 8787 and, when another
    cluster holds it, warns "Port 8787 is already in use" (dask/distributed#8136). So with no
    dashboard asked for, the server binds an ephemeral port on loopback (port 0: nothing to
    warn about) and the dashboard itself is off (``dashboard=False`` overrides the
    ``dashboard_address is not None`` that LocalCluster derives it from)."""
    if dashboard is not None:
        return {"dashboard_address": dashboard}
    return {"dashboard_address": "127.0.0.1:0", "scheduler_kwargs": {"dashboard": False}}


class DaskExecutor(Executor):
    """Dask `distributed`: a LocalCluster of `jobs` single-threaded worker processes, or a
    client of an existing scheduler. Lost workers: the scheduler re-runs their tasks."""

    def __init__(self, address: str | None, jobs: int, dashboard: str | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise SweepError(
                "--executor dask needs Dask's `distributed`: pip install 'raftlab[dask]'"
            ) from None
        self._cluster = None
        self._futures: list[Any] = []
        if address is None:
            self._cluster = LocalCluster(
                n_workers=jobs,
                threads_per_worker=1,  # one simulation per process: see the module doc
                processes=True,
                **_dashboard_options(dashboard),
                host="127.0.0.1",
                # logging.CRITICAL: the sweep's own lines stay readable. A failing task
                # reaches us as its exception; what the workers log at ERROR is mostly a
                # heartbeat to a scheduler that Ctrl-C has just closed.
                silence_logs=50,
                preload=["campaign.sweep"],  # dask_setup below: workers ignore Ctrl-C
            )
            self.client = Client(self._cluster)
        else:
            try:
                self.client = Client(address, timeout="10s")
            except OSError as error:
                raise SweepError(f"no Dask scheduler at {address}: {error}") from None
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        self._check_versions()

    def _check_versions(self) -> None:
        """Same seed → same bytes only with the same raftlab and the same trio."""
        ours = _worker_versions()
        theirs = self.client.run(_worker_versions)
        for worker, versions in theirs.items():
            if versions != ours:
                self.close()
                raise SweepError(
                    f"Dask worker {worker} runs {versions}, this process {ours}: "
                    "results would not replay; install the same versions on every worker"
                )

    def map_unordered(
        self, fn: Callable[..., Any], items: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        from distributed import as_completed

        token = f"{os.getpid()}-{time.monotonic_ns()}"
        keys = [f"raftlab-sweep-{token}-{index}" for index in range(len(items))]
        index_of = {key: index for index, key in enumerate(keys)}
        # One batched submission, results fetched in batches as they complete: a round
        # trip to the scheduler per seed would cost more than many seeds' simulations.
        self._futures = self.client.map(fn, list(items), key=keys, pure=False, retries=0)
        from distributed.scheduler import KilledWorker

        completed = as_completed(self._futures, with_results=True, raise_errors=False)
        for batch in completed.batches():
            for future, result in batch:
                if future.status == "error":
                    error = future.exception()
                    if isinstance(error, KilledWorker):
                        raise SweepError(
                            f"item {index_of[future.key]} lost its Dask worker too many times "
                            "(the scheduler's allowed-failures); giving up"
                        ) from None
                    raise error
                future.release()
                yield index_of[future.key], result

    def cancel(self) -> None:
        if self._futures:
            self.client.cancel(self._futures, force=True)
            self._futures = []

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None


def open_executor(spec: ExecutorSpec, jobs: int, *, dashboard: str | None = None) -> Executor:
    """`dashboard` (``HOST:PORT``) serves a LocalCluster's Dask dashboard there (it needs
    bokeh); by default a LocalCluster has none. A ``dask://`` scheduler serves its own."""
    if spec.kind == LOCAL:
        return InProcessExecutor() if jobs <= 1 else LocalPoolExecutor(jobs)
    return DaskExecutor(spec.address, max(1, jobs), dashboard=dashboard)


# --- one seed ----------------------------------------------------------------------------


def _valid_text(valid: Any) -> str:
    return "true" if valid is True else "false" if valid is False else "unknown"


def run_seed_task(task: dict[str, Any]) -> dict[str, Any]:
    """One seed, on whichever worker: ``{"config": SimConfig.to_dict(), "keep": bool}`` in,
    a summary out (plain data; ``files`` maps a results-folder path to its bytes)."""
    from campaign.anomaly import run_anomaly_lines
    from campaign.sim.cli import replay_command, write_sim_results
    from campaign.sim.run import SimConfig, run_simulation

    config = SimConfig(**task["config"])
    started = time.perf_counter()
    with _SIMULATION_LOCK:
        outcome = run_simulation(config)
    summary: dict[str, Any] = {
        "seed": config.seed,
        "valid": outcome.valid,
        "failing": [
            name for name, result in outcome.checkers.items() if result.get("valid") is not True
        ],
        "ops": len(outcome.ops),
        "messages": outcome.messages,
        "simulated_seconds": outcome.simulated_seconds,
        "wall_seconds": outcome.wall_seconds,
        "replay": replay_command(config),
        "anomalies": [],
        "files": None,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
    if outcome.valid is not True or task.get("keep"):
        scratch = Path(tempfile.mkdtemp(prefix="raftlab-seed-"))
        try:
            run_dir = write_sim_results(outcome, scratch)
            summary["anomalies"] = run_anomaly_lines(run_dir)[:1]
            summary["files"] = {
                path.relative_to(run_dir).as_posix(): path.read_bytes()
                for path in sorted(run_dir.rglob("*"))
                if path.is_file() and not path.is_symlink()
            }
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    summary["task_seconds"] = time.perf_counter() - started
    return summary


def comparable(summary: dict[str, Any]) -> dict[str, Any]:
    """A seed's summary without what depends on where and when it ran (timings, worker,
    the folder's timestamped files): what must not depend on the executor."""
    timeless = {"wall_seconds", "task_seconds", "worker", "files", "run_dir"}
    return {key: value for key, value in summary.items() if key not in timeless}


def seed_line(summary: dict[str, Any]) -> str:
    """As `raftlab sim --seeds` has always printed a seed."""
    failing = summary["failing"]
    speed = summary["simulated_seconds"] / max(summary["wall_seconds"], 1e-9)
    line = (
        f"seed {summary['seed']}: valid={_valid_text(summary['valid'])}"
        + (f" ({', '.join(failing)})" if failing else "")
        + f"  ops={summary['ops']} sim={summary['simulated_seconds']:.1f}s "
        f"wall={summary['wall_seconds']:.2f}s ({speed:.0f}x)"
    )
    if summary.get("run_dir"):
        line += f"  {summary['run_dir']}"
    if summary["valid"] is not True:
        for anomaly in summary["anomalies"]:
            line += f"\n  {anomaly}"
        line += f"\n  replay: {summary['replay']}"
    return line


def materialise(summary: dict[str, Any], results_dir: Path, name: str) -> Path | None:
    """Write a seed's shipped folder into the user's results/ (a new timestamped folder)."""
    from campaign.results import new_run_dir, update_latest_links

    files = summary.get("files")
    if not files:
        return None
    run_dir = new_run_dir(results_dir, name, datetime.now(UTC))
    for relative, data in files.items():
        target = run_dir / relative
        if run_dir.resolve() not in target.resolve().parents:
            raise SweepError(f"a worker shipped a path outside its folder: {relative!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    update_latest_links(run_dir)
    return run_dir


# --- the sweep ---------------------------------------------------------------------------


@dataclass(slots=True)
class SweepResult:
    total: int
    summaries: list[dict[str, Any]] = field(default_factory=list)  # in the seeds' order
    interrupted: bool = False
    wall_seconds: float = 0.0
    workers: int = 1

    @property
    def verdicts(self) -> list[Any]:
        return [summary["valid"] for summary in self.summaries]

    @property
    def not_valid(self) -> list[int]:
        return [s["seed"] for s in self.summaries if s["valid"] is not True]

    def summary_line(self) -> str:
        verdicts = self.verdicts
        count = self.total if not self.interrupted else len(verdicts)
        unknown = len(verdicts) - verdicts.count(True) - verdicts.count(False)
        not_valid = self.not_valid
        return (
            f"{count} seeds: {verdicts.count(True)} valid, {verdicts.count(False)} invalid, "
            f"{unknown} unknown"
            + (f"; not valid: {', '.join(map(str, not_valid))}" if not_valid else "")
        )


def _progress(  # noqa: ANN202 - a rich Progress or None
    total: int, enabled: bool, unit: str = "seeds", title: str = "sweep"
):
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"-- {unit}/s" if speed is None else f"{speed:.2f} {unit}/s")

    console = Console(stderr=True)
    if not console.is_terminal:
        return None  # CI logs get the per-seed lines and the summary, not a redrawn bar
    return Progress(
        TextColumn(title),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[red]{task.fields[failing]} failing"),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def run_sim_sweep(
    configs: Sequence[Any],
    *,
    executor: ExecutorSpec,
    jobs: int,
    results_dir: Path,
    keep_all: bool = False,
    echo: Callable[[str], None] = print,
    progress: bool = True,
) -> SweepResult:
    """Run every SimConfig on `executor`; echo a line per seed as it completes; write the
    folders of the seeds that are not valid (all with `keep_all`) into `results_dir`.

    Ctrl-C cancels what has not finished and returns the seeds done so far with
    ``interrupted=True``. The summaries come back in the order of `configs`."""
    tasks = [{"config": config.to_dict(), "keep": keep_all} for config in configs]
    result = SweepResult(total=len(tasks))
    by_index: dict[int, dict[str, Any]] = {}
    started = time.perf_counter()
    bar = _progress(len(tasks), progress)
    with open_executor(executor, jobs) as pool:
        result.workers = pool.workers
        try:
            if bar is not None:
                bar.start()
                task_id = bar.add_task("sweep", total=len(tasks), failing=0)
            failing = 0
            for index, summary in pool.map_unordered(run_seed_task, tasks):
                with sigint_deferred():  # the folder written, the seed counted and printed
                    run_dir = materialise(summary, results_dir, configs[index].name)
                    summary.pop("files", None)
                    summary["run_dir"] = None if run_dir is None else str(run_dir)
                    by_index[index] = summary
                    failing += summary["valid"] is not True
                    echo(seed_line(summary))
                    if bar is not None:
                        bar.update(task_id, advance=1, failing=failing)
        except KeyboardInterrupt:
            result.interrupted = True
            pool.cancel()
        finally:
            if bar is not None:
                bar.stop()
    result.summaries = [by_index[index] for index in sorted(by_index)]
    result.wall_seconds = time.perf_counter() - started
    return result


def map_configs(
    fn: Callable[[Any], Any], items: Iterable[Any], *, executor: ExecutorSpec, jobs: int
) -> Iterator[Any]:
    """For batch callers (bench/bug_matrix.py): ``fn(item)`` for each, in completion order."""
    items = list(items)
    with open_executor(executor, jobs) as pool:
        try:
            for _, result in pool.map_unordered(fn, items):
                yield result
        except BaseException:
            pool.cancel()
            raise
