"""Seed-sweep throughput: seeds per second on 1 and 2 local workers and on a Dask
LocalCluster, Dask's overhead per seed, and a projection to 100 and 1000 cores; and the
batch check's throughput: history files per second on the same three executors.

Every executor runs the same seeds through ``campaign.sweep.run_sim_sweep`` (the path of
``raftlab sim --seeds``), and the summaries are checked identical before any figure is
printed. The overhead per task is measured apart with a task that does nothing, on the
local pool and on Dask: that is the scheduling cost a seed pays on top of its simulation.
The batch check runs the same generated histories (``checker.generate``, a third of them
with a stale read planted) through ``campaign.batch_check.run_batch_check`` (the path of
``raftlab check FILE... --executor``); its lines, timings masked, and its exit code are
checked identical across executors.

    python3 bench/sweep_bench.py [--seeds 16] [--time 3] [--nodes 3] [--noop 400]
        [--files 48] [--file-ops 2000] [--part all|sweep|check]

Projection (on paper): with ``s`` seconds of simulation per seed on one core and a
central scheduler that hands out at most ``R`` tasks per second (its no-op rate measured
here on one core that it shares with the workers, a pessimistic bound),
``rate(N cores) = min(N / s, R)``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from campaign.batch_check import make_tasks, run_batch_check  # noqa: E402
from campaign.sim.run import SimConfig  # noqa: E402
from campaign.sweep import (  # noqa: E402
    DASK,
    LOCAL,
    ExecutorSpec,
    comparable,
    open_executor,
    run_sim_sweep,
)


def noop(item: int) -> dict[str, Any]:
    return {"n": item}


def sweep(label: str, spec: ExecutorSpec, jobs: int, configs: list[SimConfig]) -> dict:
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as scratch:
        started = time.perf_counter()
        result = run_sim_sweep(
            configs, executor=spec, jobs=jobs, results_dir=Path(scratch),
            echo=lambda line: None, progress=False,
        )
        wall = time.perf_counter() - started
    sim_wall = sum(s["wall_seconds"] for s in result.summaries)
    row = {
        "kind": "sweep",
        "executor": label,
        "seeds": len(configs),
        "wall_s": round(wall, 2),  # startup (pool or cluster) included
        "seeds_per_s": round(len(configs) / wall, 3),
        "sim_s_per_seed": round(sim_wall / len(configs), 3),
        "summary": result.summary_line(),
    }
    print(json.dumps(row), flush=True)
    row["_comparable"] = [comparable(s) for s in result.summaries]
    return row


def overhead(label: str, spec: ExecutorSpec, jobs: int, count: int) -> dict:
    with open_executor(spec, jobs) as pool:
        list(pool.map_unordered(noop, list(range(jobs * 2))))  # warm: workers up, imports done
        started = time.perf_counter()
        done = sum(1 for _ in pool.map_unordered(noop, list(range(count))))
        wall = time.perf_counter() - started
    row = {
        "kind": "overhead",
        "executor": label,
        "tasks": done,
        "us_per_task": round(wall / done * 1e6, 1),
        "tasks_per_s": round(done / wall, 1),
    }
    print(json.dumps(row), flush=True)
    return row


TIMING = re.compile(r", \d+\.\d{3} s")  # a batch line's one field that depends on when


def batch_check(label: str, spec: ExecutorSpec, jobs: int, files: list[Path]) -> dict:
    lines: list[str] = []
    started = time.perf_counter()
    result = run_batch_check(
        make_tasks(files), executor=spec, jobs=jobs, echo=lines.append, progress=False
    )
    wall = time.perf_counter() - started
    check_s = sum(s["seconds"] for s in result.summaries)
    row = {
        "kind": "check",
        "executor": label,
        "files": len(files),
        "ops": sum(s["ops"] for s in result.summaries),
        "wall_s": round(wall, 2),  # startup (pool or cluster) included
        "start_s": round(result.ready_seconds, 2),  # until the workers were up
        "files_per_s": round(len(files) / wall, 2),
        "files_per_s_started": round(len(files) / (wall - result.ready_seconds), 2),
        "check_s_per_file": round(check_s / len(files), 4),
        "exit_code": result.code,
        "summary": result.summary_line(),
    }
    print(json.dumps(row), flush=True)
    row["_lines"] = [TIMING.sub(", T s", line) for line in lines]
    return row


def batch_checks(count: int, ops: int) -> bool:
    """Files per second of ``raftlab check FILE... --executor`` on each executor."""
    from checker.generate import cas_register_history
    from checker.history import write_jsonl

    with tempfile.TemporaryDirectory(prefix="sweep-bench-check-") as scratch:
        files = []
        for number in range(count):
            path = Path(scratch) / f"history-{number:03}.jsonl"
            history = cas_register_history(4, ops, seed=number, stale_reads=number % 3 == 0)
            write_jsonl(path, history)
            files.append(path)
        rows = [
            batch_check("local x1", ExecutorSpec(LOCAL), 1, files),
            batch_check("local x2", ExecutorSpec(LOCAL), 2, files),
            batch_check("dask LocalCluster x2", ExecutorSpec(DASK), 2, files),
        ]
    same = all(
        (row["_lines"], row["exit_code"]) == (rows[0]["_lines"], rows[0]["exit_code"])
        for row in rows
    )
    print()
    print(f"batch check, {count} files of {2 * ops} ops: lines and exit code identical "
          f"across executors: {same}")
    print(f"{'executor':24} {'files/s':>8} {'wall s':>8} {'vs local x1':>12} "
          f"{'start s':>8} {'files/s once started':>21}")
    for row in rows:
        ratio = row["files_per_s"] / rows[0]["files_per_s"]
        print(f"{row['executor']:24} {row['files_per_s']:8.2f} {row['wall_s']:8.2f} "
              f"{ratio:11.2f}x {row['start_s']:8.2f} {row['files_per_s_started']:21.2f}")
    print(f"checking alone: {rows[0]['check_s_per_file'] * 1000:.1f} ms per file on one core")
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--time", type=float, default=3.0, help="simulated seconds per seed")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--noop", type=int, default=400, help="no-op tasks for the overhead")
    parser.add_argument("--files", type=int, default=48, help="histories for the batch check")
    parser.add_argument("--file-ops", type=int, default=2000, help="operations per history")
    parser.add_argument("--part", choices=("all", "sweep", "check"), default="all")
    args = parser.parse_args()
    same = True
    if args.part in ("all", "check"):
        same = batch_checks(args.files, args.file_ops)
        if args.part == "check":
            return 0 if same else 1
        print()
    configs = [
        SimConfig(seed=seed, time=args.time, nodes=args.nodes, name="sweep-bench")
        for seed in range(1, args.seeds + 1)
    ]
    rows = [
        sweep("local x1", ExecutorSpec(LOCAL), 1, configs),
        sweep("local x2", ExecutorSpec(LOCAL), 2, configs),
        sweep("dask LocalCluster x2", ExecutorSpec(DASK), 2, configs),
    ]
    sweep_same = all(row["_comparable"] == rows[0]["_comparable"] for row in rows)
    local_overhead = overhead("local x2", ExecutorSpec(LOCAL), 2, args.noop)
    dask_overhead = overhead("dask LocalCluster x2", ExecutorSpec(DASK), 2, args.noop)

    per_seed = rows[0]["sim_s_per_seed"]  # one core, no pool: the simulation itself
    scheduler_rate = dask_overhead["tasks_per_s"]
    print()
    print(f"summaries identical across executors: {sweep_same}")
    print(f"{'executor':24} {'seeds/s':>8} {'wall s':>8} {'vs local x1':>12}")
    for row in rows:
        ratio = row["seeds_per_s"] / rows[0]["seeds_per_s"]
        print(f"{row['executor']:24} {row['seeds_per_s']:8.3f} {row['wall_s']:8.2f} {ratio:11.2f}x")
    print(
        f"overhead per task: local pool {local_overhead['us_per_task']:.0f} us, "
        f"Dask {dask_overhead['us_per_task']:.0f} us "
        f"({dask_overhead['us_per_task'] / 1e6 / per_seed:.2%} of a {per_seed:.2f} s seed)"
    )
    for cores in (100, 1000):
        compute = cores / per_seed
        projected = min(compute, scheduler_rate)
        bound = "scheduler" if scheduler_rate < compute else "compute"
        print(
            f"projection {cores} cores: min({cores}/{per_seed:.2f} s, {scheduler_rate:.0f} "
            f"tasks/s) = {projected:.0f} seeds/s ({bound}-bound); "
            f"100,000 seeds in {100_000 / projected / 60:.1f} min"
        )
    return 0 if same and sweep_same else 1


if __name__ == "__main__":
    sys.exit(main())
