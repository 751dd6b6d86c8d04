"""The Elle-style list-append checker at scale: time and memory per history size.

Usage: ``python3 bench/elle_bench.py [--sizes 10000,100000,1000000] [--plant-size N]
[--seed S] [--model M]``.

Each row runs in a fresh child process: it generates a list-append history with
:mod:`checker.elle.generate` (seeded; 1–4 micro-ops per txn; the client count is drawn in
10–50 from the row's seed; 1% failed and 0.5% info txns; keys rotate after 32 appends),
then times ``checker.elle.check`` on it (strict serializability by default, so real-time
and process edges are in the graph). It prints wall and CPU seconds, the child's peak
resident memory and how much of it the check added, txns per CPU second, and the growth
exponent of CPU time in the history size (a least-squares slope of log time on log size;
1.0 is linear).

Then the planted-anomaly rows: one history per kind of :data:`generate.PLANTS` with that
anomaly planted in the middle; each row must find the planted anomaly under its own name.
The exit status is 1 if one does not (or a clean history is not valid), else 0.

No anchor runs here: Elle itself needs a JVM and Clojure, which this machine does not
have. This is a benchmark, not a test: run it by hand (the machines are shared; CPU
seconds are the figure to compare, wall seconds follow the machine's load).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

EXPECTED_NAME = {
    "G0": "G0",
    "G1c": "G1c",
    "G-single": "G-single",
    "G2-item": "G2-item",
    "G1a": "G1a",
    "incompatible-order": "incompatible-order",
}


def _rss_mib() -> float:
    with open("/proc/self/statm") as stream:
        pages = int(stream.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def child(size: int, seed: int, plant: str | None, model: str) -> dict[str, object]:
    import gc

    from checker.elle import check
    from checker.elle.generate import list_append_history

    clients = random.Random(seed).randint(10, 50)
    started = time.perf_counter()
    ops = list_append_history(size, seed=seed, clients=clients, plant=plant)
    generate_seconds = time.perf_counter() - started
    gc.collect()
    before = _rss_mib()
    wall, cpu = time.perf_counter(), time.process_time()
    result = check(ops, "list-append", consistency_model=model)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "size": size,
        "seed": seed,
        "clients": clients,
        "plant": plant,
        "ops": len(ops),
        "generate_seconds": generate_seconds,
        "wall": wall,
        "cpu": cpu,
        "peak_mib": peak,
        "check_mib": max(0.0, peak - before),
        "valid": result["valid"],
        "anomaly_types": result["anomaly-types"],
        "edges": result["graph"]["edges"],
    }


def run_child(size: int, seed: int, plant: str | None, model: str) -> dict[str, object]:
    argv = [sys.executable, __file__, "--child", str(size), str(seed), plant or "-", model]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child {argv[3:]} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def growth_exponent(rows: list[dict[str, object]]) -> float | None:
    points = [(math.log(float(r["size"])), math.log(max(float(r["cpu"]), 1e-9))) for r in rows]
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="txn counts (add 1000000)")
    parser.add_argument("--plant-size", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", default="strict-serializable")
    parser.add_argument("--no-plants", action="store_true")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        size, seed, plant, model = args.child
        row = child(int(size), int(seed), None if plant == "-" else plant, model)
        print(json.dumps(row))
        return 0

    from checker.elle.generate import PLANTS

    print(f"list-append, model {args.model}, seed {args.seed}")
    header = (
        f"{'txns':>9} {'clients':>7} {'edges':>9} {'wall s':>8} {'CPU s':>8} "
        f"{'txns/CPU s':>10} {'peak MiB':>9} {'check MiB':>9}  verdict"
    )
    print(header)
    rows = []
    failed = False
    for size in (int(s) for s in args.sizes.split(",")):
        row = run_child(size, args.seed, None, args.model)
        rows.append(row)
        print(
            f"{size:>9} {row['clients']:>7} {row['edges']:>9} {row['wall']:>8.2f} "
            f"{row['cpu']:>8.2f} {size / row['cpu']:>10.0f} {row['peak_mib']:>9.0f} "
            f"{row['check_mib']:>9.0f}  {row['valid']}"
        )
        failed = failed or row["valid"] is not True
    exponent = growth_exponent(rows)
    if exponent is not None:
        print(f"growth exponent of CPU time in txns: {exponent:.2f} (1.00 = linear)")
    if not args.no_plants:
        print(f"\nplanted anomalies ({args.plant_size} txns each)")
        print(f"{'planted':>20} {'clients':>7} {'CPU s':>7}  found")
        for i, plant in enumerate(PLANTS):
            row = run_child(args.plant_size, args.seed + 1 + i, plant, args.model)
            hit = EXPECTED_NAME[plant] in row["anomaly_types"] and row["valid"] is False
            failed = failed or not hit
            print(
                f"{plant:>20} {row['clients']:>7} {row['cpu']:>7.2f}  "
                f"{'OK ' if hit else 'MISSED '}{', '.join(row['anomaly_types'])}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
