"""The detection matrix: does the harness catch each teaching bug switch?

Every bug switch runs in the deterministic simulation with its recipe from
``campaign/sim/scenarios.py`` over the recipe's fixed seeds; the correct build runs every
recipe over ``CORRECT_SEEDS`` and must show zero detections. A run *detects* when its
verdict is ``false`` (a checker found a violation); ``unknown`` (a checker ran out of
time) is reported apart and never counts as a detection.

Per switch it prints: detected yes/no, the seeds that detect it, the median simulated and
wall seconds of a detecting run (a run is the unit of detection: its checkers decide at
the end), the simulated and wall seconds spent from the first listed seed up to the first
detection (what finding it costs when the seeds are tried in order), and the checkers
that caught it. Then a smaller set as real campaigns (``raftlab test``: node processes,
TCP proxies, ports 19500-19999): the correct build, ``stale-local-reads``
(``--unsafe-local-reads``) and ``txn-stale-reads`` (``--target-option unsafe_bugs=...``,
list-append checked by Elle); skipped with a note if ``raftlab test`` does not run.

Output: one JSON line per run and per switch, then a human table.

    python3 bench/bug_matrix.py [--bugs a,b] [--max-seeds K] [--no-real] [--jobs N]
        [--executor local|dask|dask://HOST:PORT]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from campaign.sim.run import SimConfig, run_simulation  # noqa: E402
from campaign.sim.scenarios import CORRECT_BUILD, CORRECT_SEEDS, SCENARIOS  # noqa: E402

REAL_PORTS = (19500, 19999)


@dataclass(slots=True)
class RunRecord:
    row: str  # a bug name, or "correct"
    recipe: str  # the scenario the configuration comes from
    seed: int
    valid: Any
    failing: list[str]
    simulated_s: float
    wall_s: float
    ops: int
    anomalies: list[str] = field(default_factory=list)  # what failing Elle checkers named

    @property
    def detected(self) -> bool:
        return self.valid is False

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "run",
            "row": self.row,
            "recipe": self.recipe,
            "seed": self.seed,
            "valid": self.valid,
            "detected": self.detected,
            "failing_checkers": self.failing,
            "simulated_s": round(self.simulated_s, 3),
            "wall_s": round(self.wall_s, 3),
            "ops": self.ops,
            "anomalies": self.anomalies,
        }


@dataclass(slots=True)
class RowSummary:
    row: str
    runs: list[RunRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        detecting = [run for run in self.runs if run.detected]
        checkers = Counter(name for run in detecting for name in run.failing)
        first = next((i for i, run in enumerate(self.runs) if run.detected), None)
        spent = self.runs[: first + 1] if first is not None else []
        return {
            "kind": "row",
            "row": self.row,
            "runs": len(self.runs),
            "detected": bool(detecting),
            "detecting_seeds": sorted({(run.recipe, run.seed) for run in detecting})
            if self.row == CORRECT_BUILD
            else [run.seed for run in detecting],
            "unknown_seeds": [run.seed for run in self.runs if run.valid not in (True, False)],
            "median_sim_s": _median([run.simulated_s for run in detecting]),
            "median_wall_s": _median([run.wall_s for run in detecting]),
            "sim_s_to_first": round(sum(run.simulated_s for run in spent), 1) if spent else None,
            "wall_s_to_first": round(sum(run.wall_s for run in spent), 1) if spent else None,
            "checkers": dict(checkers.most_common()),
            "anomalies": sorted({name for run in detecting for name in run.anomalies}),
            "wall_s_total": round(sum(run.wall_s for run in self.runs), 1),
        }


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def run_one(row: str, recipe: str, config: SimConfig) -> RunRecord:
    started = time.perf_counter()
    outcome = run_simulation(config)
    return RunRecord(
        row=row,
        recipe=recipe,
        seed=config.seed,
        valid=outcome.valid,
        failing=sorted(
            name for name, result in outcome.checkers.items() if result.get("valid") is False
        ),
        simulated_s=outcome.simulated_seconds,
        wall_s=time.perf_counter() - started,
        ops=len(outcome.ops),
        anomalies=sorted(
            {
                str(kind)
                for result in outcome.checkers.values()
                if result.get("valid") is False
                for kind in result.get("anomaly-types") or ()
            }
        ),
    )


def planned_runs(bugs: list[str], max_seeds: int | None) -> list[tuple[str, str, SimConfig]]:
    runs: list[tuple[str, str, SimConfig]] = []
    for bug in bugs:
        scenario = SCENARIOS[bug]
        for seed in scenario.seeds[:max_seeds]:
            runs.append((bug, bug, scenario.config(seed)))
    for bug in bugs:
        for seed in CORRECT_SEEDS[:max_seeds]:
            runs.append((CORRECT_BUILD, bug, SCENARIOS[bug].config(seed, with_bug=False)))
    return runs


def _run_tuple(job: tuple[str, str, SimConfig]) -> dict[str, Any]:
    # Plain fields across the process boundary: this module is __main__, and a slotted
    # class of __main__ does not survive Dask's by-value pickling of the result.
    return dataclasses.asdict(run_one(*job))


def simulate(
    bugs: list[str], max_seeds: int | None, jobs: int, executor: str = "local"
) -> dict[str, RowSummary]:
    from campaign.sweep import map_configs, parse_executor

    rows = {bug: RowSummary(bug) for bug in bugs}
    rows[CORRECT_BUILD] = RowSummary(CORRECT_BUILD)
    plan = planned_runs(bugs, max_seeds)
    order = {(row, recipe, config.seed): i for i, (row, recipe, config) in enumerate(plan)}
    records = []
    # local: in this process (--jobs 1) or a process pool; dask / dask://HOST:PORT: Dask.
    for fields in map_configs(_run_tuple, plan, executor=parse_executor(executor), jobs=jobs):
        record = RunRecord(**fields)
        records.append(record)
        print(json.dumps(record.to_dict()), flush=True)
    # Completion order differs between executors; rows keep the plan's (seed) order.
    for record in sorted(records, key=lambda r: order[(r.row, r.recipe, r.seed)]):
        rows[record.row].runs.append(record)
    return rows


# --- real campaigns -------------------------------------------------------------------

REAL_CAMPAIGNS: dict[str, list[str]] = {
    # The CI gate's shape: partitions and kills on three nodes must come out valid.
    CORRECT_BUILD: [
        "--nodes",
        "3",
        "--nemesis",
        "partition,kill",
        "--nemesis-interval",
        "2",
        "--time-limit",
        "10",
        "--recovery-time",
        "1",
        "--seed",
        "4",
        "--base-port",
        "19500",
    ],  # fmt: skip
    # Reads served from local state while the leader is cut off (etcd #741).
    "stale-local-reads": [
        "--nodes",
        "3",
        "--unsafe-local-reads",
        "--workload",
        "register",
        "--workload-option",
        "value_range=1000",
        "--workload-option",
        "active_keys=2",
        "--workload-option",
        "ops_per_key=400",
        "--concurrency",
        "10n",
        "--nemesis",
        "partition-leader",
        "--nemesis-interval",
        "2",
        "--election-timeout-ms",
        "300",
        "--heartbeat-ms",
        "30",
        "--time-limit",
        "8",
        "--recovery-time",
        "1",
        "--seed",
        "5",
        "--base-port",
        "19600",
    ],  # fmt: skip
    # A txn's reads taken on the leader at proposal, its writes at commit (isolation).
    "txn-stale-reads": [
        "--nodes", "3", "--workload", "list-append", "--workload-option", "key_count=3",
        "--concurrency", "5n", "--nemesis", "partition,kill", "--nemesis-interval", "2",
        "--time-limit", "6", "--recovery-time", "1", "--seed", "4",
        "--target-option", "unsafe_bugs=txn-stale-reads", "--base-port", "19700",
    ],  # fmt: skip
}


def real_campaign(row: str, args: list[str], results_dir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    command = [sys.executable, "-m", "campaign", "test", "--results-dir", str(results_dir)]
    command += [*args, "--name", f"matrix-{row}"]
    try:
        completed = subprocess.run(
            command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
        )
    except subprocess.TimeoutExpired:
        return {"kind": "real", "row": row, "skipped": "raftlab test did not finish in 300 s"}
    wall = time.perf_counter() - started
    results_path = results_dir / f"matrix-{row}" / "latest" / "results.json"
    if completed.returncode not in (0, 1, 2) or not results_path.is_file():
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        return {
            "kind": "real",
            "row": row,
            "skipped": f"raftlab test exited {completed.returncode}: {' | '.join(tail)}",
        }
    results = json.loads(results_path.read_text())
    checkers = results.get("checkers") or {}
    return {
        "kind": "real",
        "row": row,
        "valid": results.get("valid"),
        "detected": results.get("valid") is False,
        "failing_checkers": sorted(n for n, r in checkers.items() if r.get("valid") is False),
        "wall_s": round(wall, 1),
        "command": "raftlab test " + " ".join(args),
    }


def real_campaigns(bugs: list[str]) -> list[dict[str, Any]]:
    rows = [row for row in REAL_CAMPAIGNS if row == CORRECT_BUILD or row in bugs]
    out = []
    with tempfile.TemporaryDirectory(prefix="bug-matrix-") as tmp:
        for row in rows:
            record = real_campaign(row, REAL_CAMPAIGNS[row], Path(tmp))
            print(json.dumps(record), flush=True)
            out.append(record)
    return out


# --- the table ------------------------------------------------------------------------


def print_table(summaries: list[dict[str, Any]], real: list[dict[str, Any]]) -> None:
    header = (
        f"{'switch':<24} {'detected':<8} {'seeds':<18} {'med sim s':>9} {'med wall s':>10} "
        f"{'to 1st (sim/wall s)':>19}  checkers"
    )
    print()
    print("Simulation (a run detects when its verdict is false)")
    print(header)
    print("-" * len(header))
    for summary in summaries:
        if summary["row"] == CORRECT_BUILD:
            seeds = f"{len(summary['detecting_seeds'])}/{summary['runs']} runs"
        else:
            seeds = f"{summary['detecting_seeds']}/{summary['runs']}".replace(" ", "")
        to_first = (
            f"{summary['sim_s_to_first']}/{summary['wall_s_to_first']}"
            if summary["sim_s_to_first"] is not None
            else "-"
        )
        unknown = f" (unknown: {summary['unknown_seeds']})" if summary["unknown_seeds"] else ""
        print(
            f"{summary['row']:<24} {'yes' if summary['detected'] else 'no':<8} {seeds:<18} "
            f"{_cell(summary['median_sim_s']):>9} {_cell(summary['median_wall_s']):>10} "
            f"{to_first:>19}  {', '.join(summary['checkers']) or '-'}{unknown}"
            + (f" [{', '.join(summary['anomalies'])}]" if summary.get("anomalies") else "")
        )
    undetected = [s["row"] for s in summaries if s["row"] != CORRECT_BUILD and not s["detected"]]
    for row in undetected:
        print()
        print(f"{row}: {SCENARIOS[row].why}")
    if real:
        print()
        print("Real campaigns (raftlab test: processes, TCP, proxies)")
        for record in real:
            if "skipped" in record:
                print(f"{record['row']:<24} skipped: {record['skipped']}")
            else:
                print(
                    f"{record['row']:<24} {'yes' if record['detected'] else 'no':<8} "
                    f"valid={record['valid']} wall={record['wall_s']}s "
                    f"{', '.join(record['failing_checkers']) or '-'}"
                )


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bugs", default=None, help="comma-separated switches (default: all)")
    parser.add_argument("--max-seeds", type=int, default=None, help="at most K seeds per row")
    parser.add_argument("--no-real", action="store_true", help="skip the real campaigns")
    parser.add_argument("--jobs", type=int, default=1, help="simulations in parallel")
    parser.add_argument(
        "--executor", default="local", help="local | dask | dask://HOST:PORT (campaign/sweep.py)"
    )
    args = parser.parse_args()
    bugs = sorted(SCENARIOS) if args.bugs is None else [b.strip() for b in args.bugs.split(",")]
    unknown = [bug for bug in bugs if bug not in SCENARIOS]
    if unknown:
        parser.error(f"no scenario for {', '.join(unknown)}; known: {', '.join(sorted(SCENARIOS))}")
    rows = simulate(bugs, args.max_seeds, max(1, args.jobs), args.executor)
    summaries = [rows[bug].to_dict() for bug in bugs] + [rows[CORRECT_BUILD].to_dict()]
    for summary in summaries:
        print(json.dumps(summary), flush=True)
    real = [] if args.no_real else real_campaigns(bugs)
    print_table(summaries, real)
    correct = rows[CORRECT_BUILD].to_dict()
    # Exit status: 0 when the correct build shows zero detections.
    return 1 if correct["detected"] else 0


if __name__ == "__main__":
    sys.exit(main())
