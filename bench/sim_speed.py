"""How fast the deterministic simulation runs: simulated seconds per wall-clock second.

5 nodes, the register workload, partitions and kills, at several request rates. Each
configuration runs over ``--seeds`` (different histories) ``--repeat`` times; the machine's
other load only ever slows a run down, so the best of the repeats of each seed is the
figure (as ``timeit`` takes the minimum), and the median is printed beside it. One JSON
line per configuration: messages per simulated second, ops, speed-up over real time, and
the ratios to issue 5's figures (a prototype reached about 70x at about 200 messages per
simulated second; raftlab aims above 100x).

    python3 bench/sim_speed.py [--time 60] [--seeds 1,2,3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from campaign.sim.run import SimConfig, run_simulation  # noqa: E402

PROTOTYPE_SPEEDUP = 70.0
TARGET_SPEEDUP = 100.0
CONFIGS = (
    ("light", 5.0),
    ("prototype's point (~200 msg/s)", 10.0),
    ("moderate", 20.0),
    ("busy", 100.0),
)


def measure(label: str, rate: float, args: argparse.Namespace) -> dict:
    simulated = messages = ops = 0.0
    best_wall = median_wall = 0.0
    valid = []
    for seed in args.seeds:
        walls = []
        for _ in range(args.repeat):
            config = SimConfig(
                seed=seed,
                time=args.time,
                nodes=5,
                workload="register",
                nemesis="partition,kill",
                nemesis_interval=5.0,
                rate=rate,
            )
            outcome = run_simulation(config)
            walls.append(outcome.wall_seconds)
        simulated += outcome.simulated_seconds  # the same every repeat: deterministic
        messages += outcome.messages
        ops += len(outcome.ops)
        best_wall += min(walls)
        median_wall += statistics.median(walls)
        valid.append(outcome.valid)
    speedup = simulated / best_wall
    return {
        "config": label,
        "nodes": 5,
        "workload": "register",
        "nemesis": "partition,kill",
        "rate": rate,
        "seeds": args.seeds,
        "repeat": args.repeat,
        "simulated_s": round(simulated, 1),
        "wall_s_best": round(best_wall, 2),
        "speedup": round(speedup, 1),
        "speedup_median": round(simulated / median_wall, 1),
        "messages_per_sim_s": round(messages / simulated, 1),
        "ops": int(ops),
        "valid": valid,
        "vs_prototype": round(speedup / PROTOTYPE_SPEEDUP, 2),
        "vs_target": round(speedup / TARGET_SPEEDUP, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", type=float, default=60.0, help="simulated seconds per run")
    parser.add_argument(
        "--seeds", type=lambda s: [int(x) for x in s.split(",") if x], default=[1, 2, 3]
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per seed (best counts)")
    args = parser.parse_args()
    for label, rate in CONFIGS:
        print(json.dumps(measure(label, rate, args)), flush=True)


if __name__ == "__main__":
    main()
