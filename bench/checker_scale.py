"""The linearizability checker at scale: long and concurrent cas-register histories.

Usage: ``python3 bench/checker_scale.py [--time-limit S] [--quick] [--rows NAME,...]``.

Each row generates one seeded history with :func:`checker.generate.cas_register_history`
(one cas-register, N clients, M operations, unique values or (rows "-v5") values drawn
from range(5), valid or with one planted stale read), checks
it with :func:`checker.linearizable.check` in a fresh process (so that the peak memory is
the row's own) and prints the verdict, the wall time, the configurations visited, the
peak resident memory, Porcupine's figure from issue 14 (same kind of history, Go, these
machines) and whether the issue's aim for the row is met. Then the growth exponent of the
time over the history length (5 clients, valid), and the batch row: reading and checking
a folder of generated EDN histories in one process (``raftlab check FILE...``) against
Knossos' figure (122 histories, 4.3 s with a JVM per file).

Aims are judged on CPU seconds: these machines are shared, and other work on them
inflates the wall time (both are printed).

This is a benchmark, not a test: run it by hand (the machines are shared).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

SEED = 14
# (name, clients, ops, stale reads, Porcupine's seconds or None for its time-out at 60 s,
#  the aim in seconds: Porcupine's figure for valid rows, 60 s (decided) for planted ones)
ROWS: list[tuple[str, int, int, int, float | None, float]] = [
    ("5c-1k", 5, 1_000, 0, None, 60.0),
    ("5c-5k", 5, 5_000, 0, 0.007, 0.007),
    ("5c-10k", 5, 10_000, 0, None, 60.0),
    ("5c-20k", 5, 20_000, 0, 0.075, 0.075),
    ("5c-100k", 5, 100_000, 0, None, 2.0),
    ("10c-20k", 10, 20_000, 0, 0.42, 0.42),
    ("20c-20k", 20, 20_000, 0, None, 60.0),
    ("50c-5k", 50, 5_000, 0, None, 60.0),
    ("5c-20k-v5", 5, 20_000, 0, None, 60.0),
    ("10c-20k-v5", 10, 20_000, 0, None, 60.0),
    ("5c-20k-stale", 5, 20_000, 1, None, 60.0),
    ("20c-5k-stale", 20, 5_000, 1, None, 60.0),
    ("20c-20k-stale", 20, 20_000, 1, None, 60.0),
]
# raftlab's figures in issue 14, before this work (None: not given; "t/o": timed out)
BEFORE = {
    "5c-5k": "0.13",
    "5c-10k": "0.60",
    "5c-20k": "4.5",
    "10c-20k": "6.2",
    "20c-20k": "38",
    "50c-5k": "1.3",
    "5c-20k-stale": "42",
    "20c-5k-stale": "t/o",
}
# Rows whose written values are drawn from range(5) (Knossos' and Porcupine's generators:
# many reads of each value, the case where the old search rescanned every read of a value).
VALUE_RANGE = {"5c-20k-v5": 5, "10c-20k-v5": 5}
KNOSSOS_BATCH = {"files": 122, "per_process_s": 4.3, "one_process_read_s": 4.6}


def run_row(
    clients: int, ops: int, stale: int, time_limit: float, value_range: int | None = None
) -> dict[str, object]:
    """Generate and check one history (in this process); the figures as a dict."""
    from checker.generate import cas_register_history
    from checker.linearizable import check

    history = cas_register_history(
        clients, ops, seed=SEED, stale_reads=stale, value_range=value_range
    )
    started = time.perf_counter()
    started_cpu = time.process_time()
    result = check(history, "cas-register", time_limit=time_limit, explain=False)
    cpu = time.process_time() - started_cpu
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "valid": result["valid"],
        "seconds": seconds,
        "cpu": cpu,
        "configs": result.get("configs", 0),
        "peak_mb": peak_kb / 1024,
        "error": result.get("error"),
    }


def _row_in_child(
    clients: int, ops: int, stale: int, time_limit: float, value_range: int | None
) -> dict[str, object]:
    command = [
        sys.executable,
        __file__,
        "--child",
        json.dumps([clients, ops, stale, time_limit, value_range]),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"valid": "crash", "seconds": math.nan, "cpu": math.nan, "configs": 0, "peak_mb": math.nan,
                "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout)


def _aim(name: str, stale: int, aim: float, figures: dict[str, object]) -> str:
    valid = figures["valid"]
    expected = not stale
    if valid is not expected:
        return f"SHORT: verdict {valid} (expected {expected})"
    seconds = float(figures["cpu"])  # type: ignore[arg-type]
    if seconds <= aim:
        return "met"
    return f"SHORT: {seconds:.3f} s > {aim:g} s ({seconds / aim:.1f}x)"


def _exponent(points: list[tuple[int, float]]) -> float | None:
    points = [(n, s) for n, s in points if s > 0 and not math.isnan(s)]
    if len(points) < 2:
        return None
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(s) for _, s in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    num = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    den = sum((x - mx) ** 2 for x in xs)
    return num / den if den else None


def batch_row(files: int, ops: int) -> str:
    """Write ``files`` EDN histories and check them all with one ``raftlab check`` process."""
    from checker.generate import cas_register_history
    from checker.history import write_edn

    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for number in range(files):
            history = cas_register_history(5, ops, seed=SEED + number,
                                           stale_reads=1 if number % 4 == 0 else 0)
            path = Path(folder) / f"h{number:03}.edn"
            write_edn(path, history)
            paths.append(str(path))
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "campaign", "check", *paths],
            capture_output=True, text=True, cwd=PROJECT_ROOT, check=False,
        )
        seconds = time.perf_counter() - started
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        started = time.perf_counter()
        from checker.history import read_history

        for path in paths:
            read_history(path)
        read_seconds = time.perf_counter() - started
    status = "met" if seconds <= KNOSSOS_BATCH["per_process_s"] else "SHORT"
    return (
        f"batch: {files} EDN files x {ops} ops: one process {seconds:.2f} s "
        f"(exit {done.returncode}, {len(lines)} lines); reading alone {read_seconds:.2f} s | "
        f"Knossos {KNOSSOS_BATCH['per_process_s']} s (its corpus, 122 files) | {status}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--rows", default="", help="comma-separated row names (default: all)")
    parser.add_argument("--quick", action="store_true", help="rows up to 20k ops only")
    parser.add_argument("--batch-files", type=int, default=122)
    parser.add_argument("--batch-ops", type=int, default=500)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        clients, ops, stale, limit, value_range = json.loads(args.child)
        print(json.dumps(run_row(clients, ops, stale, limit, value_range)))
        return 0
    wanted = {name for name in args.rows.split(",") if name}
    print(f"seed {SEED}, time limit {args.time_limit:g} s per row, python {sys.version.split()[0]},"
          f" {os.cpu_count()} cores")
    header = (f"{'row':<15}{'verdict':<9}{'wall s':>9}{'CPU s':>8}{'configs':>10}{'peak MB':>9}"
              f"{'before':>8}{'Porcupine':>11}  aim")
    print(header)
    growth: list[tuple[int, float]] = []
    for name, clients, ops, stale, porcupine, aim in ROWS:
        if wanted and name not in wanted:
            continue
        if args.quick and ops > 20_000:
            continue
        value_range = VALUE_RANGE.get(name)
        figures = _row_in_child(clients, ops, stale, args.time_limit, value_range)
        if clients == 5 and not stale and value_range is None:
            growth.append((ops, float(figures["cpu"])))  # type: ignore[arg-type]
        porcupine_text = f"{porcupine:g}" if porcupine is not None else (
            "t/o" if aim == 60.0 and (stale or clients >= 20) else "-")
        verdict = {True: "valid", False: "invalid"}.get(figures["valid"], str(figures["valid"]))
        print(
            f"{name:<15}{verdict:<9}{float(figures['seconds']):>9.3f}"  # type: ignore[arg-type]
            f"{float(figures['cpu']):>8.3f}"  # type: ignore[arg-type]
            f"{figures['configs']:>10}{float(figures['peak_mb']):>9.1f}"  # type: ignore[arg-type]
            f"{BEFORE.get(name, '-'):>8}{porcupine_text:>11}  {_aim(name, stale, aim, figures)}"
        )
    exponent = _exponent(growth)
    if exponent is not None:
        print(f"growth exponent of time over history length (5 clients, valid): {exponent:.2f}")
    if not wanted:
        print(batch_row(args.batch_files, args.batch_ops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
