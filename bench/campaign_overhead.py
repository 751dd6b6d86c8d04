"""What the proxies cost: the same campaign with and without them in the peer path.

A local cluster of node processes, the register workload, no faults; once with every
peer link through the nemesis's frame-aware proxies (as every `raftlab test` runs), once
with the nodes dialling each other directly. Prints one JSON line per mode (ok ops/s,
p50 and p99 latency of ok ops) and one with the ratios (proxied / direct).

    python3 bench/campaign_overhead.py [--time-limit 20] [--rate 1000] [--concurrency 10n]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import trio

from campaign.results import read_history_file
from campaign.run import CampaignConfig, run_campaign


def latencies_ms(run_dir: Path) -> tuple[list[float], float]:
    ops = read_history_file(run_dir)
    invoked: dict[object, int] = {}
    latencies: list[float] = []
    first = last = None
    for op in ops:
        if op.process == "nemesis":
            continue
        if op.type == "invoke":
            invoked[op.process] = op.time
        elif op.type == "ok" and op.process in invoked:
            latencies.append((op.time - invoked.pop(op.process)) / 1e6)
            first = op.time if first is None else first
            last = op.time
    span = ((last or 0) - (first or 0)) / 1e9
    return latencies, span


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def measure(proxies: bool, args: argparse.Namespace, results_dir: Path) -> dict:
    config = CampaignConfig(
        name="proxied" if proxies else "direct",
        workload="register",
        nemesis="none",
        nodes=args.nodes,
        time_limit=args.time_limit,
        concurrency=args.concurrency,
        rate=args.rate,
        seed=args.seed,
        results_dir=str(results_dir),
        recovery_time=0.5,
        proxies=proxies,
    )
    outcome = trio.run(lambda: run_campaign(config, argv=["bench/campaign_overhead.py"]))
    latencies, span = latencies_ms(outcome.run_dir)
    return {
        "mode": "proxied" if proxies else "direct",
        "valid": outcome.valid,
        "ok_ops": len(latencies),
        "ops_per_s": round(len(latencies) / span, 1) if span > 0 else None,
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--concurrency", default="10n")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="raftlab-overhead-") as scratch:
        direct = measure(False, args, Path(scratch))
        proxied = measure(True, args, Path(scratch))
    print(json.dumps(direct))
    print(json.dumps(proxied))
    ratios = {
        "ratio": "proxied / direct",
        "ops_per_s": round(proxied["ops_per_s"] / direct["ops_per_s"], 3)
        if proxied["ops_per_s"] and direct["ops_per_s"]
        else None,
        "p50": round(proxied["p50_ms"] / direct["p50_ms"], 3) if direct["p50_ms"] else None,
        "p99": round(proxied["p99_ms"] / direct["p99_ms"], 3) if direct["p99_ms"] else None,
    }
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
